/**
 * L4 relaying: dial an upstream with a connect timeout, then move bytes both ways with
 * backpressure (stream pipes: no per-chunk allocation), half-close and an idle timeout.
 */
import { connect, type Socket } from "node:net";
import { KproxyError } from "@kproxy/core";

export interface DialOptions {
  host: string;
  port: number;
  /** Give up after this long (TCP handshake only); default 5000. */
  connectTimeoutMs?: number;
  /** Bytes written first, before anything relayed (e.g. a PROXY protocol header). */
  prelude?: Buffer;
  /** TCP keepalive initial delay; default 30000 (as k3s); 0 disables. */
  keepAliveMs?: number;
  /** Disable Nagle; default true (interactive protocols, TLS handshakes). */
  noDelay?: boolean;
  localAddress?: string;
}

/**
 * Opens a TCP connection allowing half-close. Rejects with UPSTREAM_CONNECT_TIMEOUT or
 * UPSTREAM_CONNECT_FAILED (details: target, errno code).
 */
export function dialTcp(options: DialOptions): Promise<Socket> {
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  const target = options.host.includes(":")
    ? `[${options.host}]:${options.port}`
    : `${options.host}:${options.port}`;
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect({
      host: options.host,
      port: options.port,
      allowHalfOpen: true,
      noDelay: options.noDelay ?? true,
      keepAlive: (options.keepAliveMs ?? 30_000) > 0,
      keepAliveInitialDelay: options.keepAliveMs ?? 30_000,
      ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new KproxyError("UPSTREAM_CONNECT_TIMEOUT", `dial tcp ${target}: i/o timeout after ${timeoutMs} ms`, {
          details: { target, code: "ETIMEDOUT" },
        }),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new KproxyError("UPSTREAM_CONNECT_FAILED", `dial tcp ${target}: ${err.code ?? err.message}`, {
          cause: err,
          details: { target, code: err.code },
        }),
      );
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      if (options.prelude !== undefined && options.prelude.length > 0) socket.write(options.prelude);
      resolve(socket);
    });
  });
}

export type RelayEndReason = "closed" | "idle-timeout" | "downstream-error" | "upstream-error" | "aborted";

export interface RelayStats {
  /** Bytes from the downstream to the upstream (after any prelude). */
  readonly bytesToUpstream: number;
  /** Bytes from the upstream to the downstream. */
  readonly bytesToDownstream: number;
  readonly durationMs: number;
  readonly reason: RelayEndReason;
  /** The socket error, when reason is downstream-error or upstream-error. */
  readonly error?: Error;
}

export interface RelayOptions {
  /** Close both sides after this long without a byte either way; 0 or undefined: never. */
  idleTimeoutMs?: number;
  /** Bytes already written to the upstream that are not payload (the PROXY header): not counted. */
  upstreamPreludeBytes?: number;
  /** Called once, when both sockets are closed. */
  onEnd?: (stats: RelayStats) => void;
}

export interface Relay {
  readonly downstream: Socket;
  readonly upstream: Socket;
  /** Bytes relayed so far in each direction. */
  bytes(): { toUpstream: number; toDownstream: number };
  /** Ends the relay now (destroys both sockets); `reason` defaults to "aborted". */
  close(reason?: RelayEndReason): void;
  /** Resolves when both sockets are closed. */
  readonly done: Promise<RelayStats>;
}

/**
 * Relays bytes between two connected sockets until both are closed. A FIN from one side is passed
 * on (half-close: the other direction keeps flowing); an error or reset on one side destroys the
 * other; no traffic for `idleTimeoutMs` closes both. Both sockets must allow half-open (servers
 * created with `allowHalfOpen: true`, upstreams from `dialTcp`).
 */
export function relayTcp(downstream: Socket, upstream: Socket, options: RelayOptions = {}): Relay {
  const started = performance.now();
  const prelude = options.upstreamPreludeBytes ?? 0;
  let reason: RelayEndReason | undefined;
  let error: Error | undefined;
  let open = 2;
  let resolveDone!: (s: RelayStats) => void;
  const done = new Promise<RelayStats>((r) => {
    resolveDone = r;
  });
  const bytes = () => ({
    toUpstream: Math.max(0, upstream.bytesWritten - prelude),
    toDownstream: downstream.bytesWritten,
  });
  const end = (why: RelayEndReason, err?: Error) => {
    if (reason === undefined) {
      reason = why;
      error = err;
    }
    downstream.destroy();
    upstream.destroy();
  };
  const onClose = () => {
    if (--open > 0) return;
    const b = bytes();
    const stats: RelayStats = {
      bytesToUpstream: b.toUpstream,
      bytesToDownstream: b.toDownstream,
      durationMs: performance.now() - started,
      reason: reason ?? "closed",
      ...(error !== undefined ? { error } : {}),
    };
    options.onEnd?.(stats);
    resolveDone(stats);
  };
  downstream.on("error", (err) => end("downstream-error", err));
  upstream.on("error", (err) => end("upstream-error", err));
  // A side that closes (both directions done, or destroyed) while the other is still open: once
  // a socket is fully closed nothing more can be relayed to it, so finish the other one.
  downstream.once("close", () => {
    if (!upstream.destroyed && upstream.writableFinished === false) upstream.end();
    if (!upstream.destroyed && (upstream.readableEnded || !upstream.readable)) upstream.destroy();
    onClose();
  });
  upstream.once("close", () => {
    if (!downstream.destroyed && downstream.writableFinished === false) downstream.end();
    if (!downstream.destroyed && (downstream.readableEnded || !downstream.readable)) downstream.destroy();
    onClose();
  });
  if (options.idleTimeoutMs !== undefined && options.idleTimeoutMs > 0) {
    downstream.setTimeout(options.idleTimeoutMs, () => end("idle-timeout"));
  }
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  return {
    downstream,
    upstream,
    bytes,
    close: (why = "aborted") => end(why),
    done,
  };
}
