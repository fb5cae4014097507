/**
 * L4 relaying: dial an upstream with a connect timeout, then move bytes both ways with
 * backpressure, half-close and an idle timeout.
 *
 * Reads. Through Node's stream API every read lands in a freshly allocated Buffer (up to 64 KiB)
 * that goes through the Readable machinery; at several Gbit/s those garbage Buffers pile up until
 * V8 collects external memory (hundreds of MiB of RSS) and the per-chunk work halves throughput.
 * So the relay takes over the sockets' reads (the onread slots that `net.connect({ onread })`
 * fills, and `handle.useUserBuffer`), with two kinds of buffer:
 * - one buffer shared by every relayed socket: reads and their callbacks run one at a time on this
 *   thread, and the callback copies the bytes out (a small copy from Node's Buffer pool) before
 *   writing them, so idle or chatty connections hold no buffer at all;
 * - a buffer of its own (64 KiB, pooled) for a direction that carries bulk data (a read of 16 KiB
 *   or more): no copy, the chunk is written straight from it, and when the kernel did not take it
 *   all synchronously reading stops until that write completes (the pending write still points
 *   into the buffer; this is also the backpressure). After a run of small reads it goes back.
 * These are Node internals: they are checked, and without them the relay uses 'data' events.
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
  /**
   * Bytes already written to the upstream that are not payload (the PROXY header). The relay
   * counts only the bytes it moves itself, so this is accepted for compatibility and not needed.
   */
  upstreamPreludeBytes?: number;
  /**
   * Read bulk directions into a reused buffer instead of a new Buffer per read (see the module
   * comment); default true. False keeps Node's allocation for every read.
   */
  reuseBuffers?: boolean;
  /** Called once, when both sockets are closed. */
  onEnd?: (stats: RelayStats) => void;
}

export interface Relay {
  readonly downstream: Socket;
  readonly upstream: Socket;
  /** Bytes relayed so far in each direction. */
  bytes(): { toUpstream: number; toDownstream: number };
  /** Directions reading into reused buffers rather than a new Buffer per read (0, 1 or 2). */
  reusedBuffers(): number;
  /** Ends the relay now (destroys both sockets); `reason` defaults to "aborted". */
  close(reason?: RelayEndReason): void;
  /** Resolves when both sockets are closed. */
  readonly done: Promise<RelayStats>;
}

/** Size of a read buffer (Node's own read size). */
const RELAY_BUFFER_BYTES = 64 * 1024;
/** A read at least this large moves its direction to a buffer of its own (no copy). */
const BULK_READ_BYTES = 16 * 1024;
/** After this many smaller reads in a row, a direction gives its own buffer back. */
const SMALL_READS_TO_RELEASE = 16;
/** Free buffers kept for the next bulk directions (the rest is left to the GC). */
const POOL_MAX = 16;
const pool: Buffer[] = [];
/**
 * Every relayed socket that is not moving bulk data reads into this one buffer: reads and their
 * callbacks run one at a time on this thread, and each callback copies what it read out of it.
 */
const shared = Buffer.allocUnsafe(RELAY_BUFFER_BYTES);

interface Slots {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}
interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: (buf: Uint8Array) => void;
}
type SocketInternals = Socket & {
  _handle?: StreamHandle | null;
  _readableState?: { ended?: boolean };
} & Record<symbol, unknown>;

/**
 * The socket's onread slots (those `net.connect({ onread })` fills: buffer, callback, buffer
 * function), found once by their names; null when this Node does not have them.
 */
let slots: Slots | null | undefined;
function slotsOf(socket: Socket): Slots | null {
  if (slots !== undefined) return slots;
  const found = new Map<string | undefined, symbol>();
  for (const s of Object.getOwnPropertySymbols(socket)) found.set(s.description, s);
  const buffer = found.get("kBuffer");
  const callback = found.get("kBufferCb");
  const generator = found.get("kBufferGen");
  slots = buffer && callback && generator ? { buffer, callback, generator } : null;
  return slots;
}

/** One direction: reads from `src`, writes to `dst`. Methods are bound once (no per-chunk closures). */
class Pump {
  bytes = 0;
  /** Reading through the onread slots (else: 'data' events with a Buffer allocated per read). */
  adopted = false;
  /** This direction's own read buffer while it carries bulk data. */
  own: Buffer | undefined;
  /** The buffer the next read goes to (returned to Node after each read). */
  private next: Buffer = shared;
  private smallReads = 0;
  /** Writes from `own` whose callback has not run yet. */
  private inFlight = 0;
  /** Reading is stopped until the writes from `own` complete (they point into it). */
  private held = false;
  /** Reading is stopped until `dst` drains. */
  private paused = false;
  private readonly relay: RelayState;
  private readonly src: SocketInternals;
  private readonly dst: Socket;

  constructor(relay: RelayState, src: Socket, dst: Socket) {
    this.relay = relay;
    this.src = src as SocketInternals;
    this.dst = dst;
    this.onData = this.onData.bind(this);
    this.onDrain = this.onDrain.bind(this);
    this.onRead = this.onRead.bind(this);
    this.nextBuffer = this.nextBuffer.bind(this);
    this.afterWrite = this.afterWrite.bind(this);
    this.onEnd = this.onEnd.bind(this);
  }

  start(reuseBuffers: boolean): void {
    this.src.on("data", this.onData);
    this.src.on("end", this.onEnd);
    this.dst.on("drain", this.onDrain);
    // A FIN that came before the relay started (nothing else was buffered): 'end' is already past.
    if (this.src.readableEnded) {
      this.onEnd();
      return;
    }
    if (reuseBuffers) this.adopt();
    // A socket paused earlier (e.g. after a PROXY header) does not flow by adding a listener.
    if (!this.paused) this.src.resume();
  }

  /**
   * Moves `src` to the onread slots: what is already buffered is written first, then every read
   * lands in `shared` (or `own`) and comes to onRead. Internals are checked, not assumed.
   */
  private adopt(): void {
    const src = this.src;
    const s = slotsOf(src);
    const handle = src._handle;
    if (s === null || handle == null || typeof handle.useUserBuffer !== "function") return;
    if (src[s.buffer] !== null || src[s.callback] !== null || src._readableState?.ended !== false) return;
    // read() hands buffered chunks to onData (a 'data' event each).
    while (src.readableLength > 0 && src.read() !== null);
    src[s.buffer] = shared;
    src[s.callback] = this.onRead;
    src[s.generator] = this.nextBuffer;
    handle.useUserBuffer(shared);
    this.adopted = true;
  }

  /** Stream mode (or bytes buffered before adopt): Node allocated `chunk`. */
  onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.relay.lastActivity = performance.now();
    if (!this.dst.write(chunk)) {
      this.paused = true;
      this.src.pause();
    }
  }

  onDrain(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.held && !this.src.destroyed) this.src.resume();
  }

  /** `n` bytes were read into `buf` (`shared` or `own`). Returning false stops reading. */
  onRead(n: number, buf: Uint8Array): boolean {
    this.bytes += n;
    this.relay.lastActivity = performance.now();
    const dst = this.dst;
    if (buf !== this.own) {
      // The shared buffer is read into by every socket: copy (small reads come from Node's pool).
      const chunk = Buffer.allocUnsafe(n);
      chunk.set(n === buf.length ? buf : buf.subarray(0, n));
      if (n >= BULK_READ_BYTES) {
        this.own = pool.pop() ?? Buffer.allocUnsafe(RELAY_BUFFER_BYTES);
        this.next = this.own;
        this.smallReads = 0;
      }
      if (!dst.write(chunk)) {
        this.paused = true;
        return false;
      }
      return true;
    }
    this.inFlight++;
    dst.write(n === buf.length ? buf : buf.subarray(0, n), this.afterWrite);
    // Not all taken by the kernel: the rest still points into `own`, so read nothing more into
    // it until the write completes (this is also the backpressure).
    if (dst.writableLength > 0) {
      this.held = true;
      return false;
    }
    // All written synchronously (this write and any before it): nothing points into `own`.
    if (n >= BULK_READ_BYTES) this.smallReads = 0;
    else if (++this.smallReads >= SMALL_READS_TO_RELEASE) this.releaseOwn();
    return true;
  }

  /** Node asks, after each read, where the next one goes. */
  nextBuffer(): Buffer {
    return this.next;
  }

  afterWrite(): void {
    if (--this.inFlight > 0 || !this.held) return;
    this.held = false;
    if (!this.paused && !this.src.destroyed) this.src.resume();
  }

  onEnd(): void {
    // Half-close: pass the FIN on once what was read has been written.
    if (!this.dst.destroyed) this.dst.end();
  }

  private releaseOwn(): void {
    const buf = this.own;
    this.own = undefined;
    this.next = shared;
    if (buf !== undefined && pool.length < POOL_MAX) pool.push(buf);
  }

  /** Once both sockets are closed (no read or write can touch the buffer any more). */
  release(): void {
    if (this.inFlight === 0) this.releaseOwn();
    else {
      this.own = undefined;
      this.next = shared;
    }
  }
}

interface RelayState {
  lastActivity: number;
}

/**
 * Relays bytes between two connected sockets until both are closed. A FIN from one side is passed
 * on (half-close: the other direction keeps flowing); an error or reset on one side destroys the
 * other; no traffic for `idleTimeoutMs` closes both. Both sockets must allow half-open (servers
 * created with `allowHalfOpen: true`, upstreams from `dialTcp`).
 */
export function relayTcp(downstream: Socket, upstream: Socket, options: RelayOptions = {}): Relay {
  const started = performance.now();
  const state: RelayState = { lastActivity: started };
  const toUp = new Pump(state, downstream, upstream);
  const toDown = new Pump(state, upstream, downstream);
  let reason: RelayEndReason | undefined;
  let error: Error | undefined;
  let open = 2;
  let idleTimer: NodeJS.Timeout | undefined;
  let resolveDone!: (s: RelayStats) => void;
  const done = new Promise<RelayStats>((r) => {
    resolveDone = r;
  });
  const bytes = () => ({ toUpstream: toUp.bytes, toDownstream: toDown.bytes });
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
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    toUp.release();
    toDown.release();
    const stats: RelayStats = {
      bytesToUpstream: toUp.bytes,
      bytesToDownstream: toDown.bytes,
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
  const idleMs = options.idleTimeoutMs ?? 0;
  if (idleMs > 0) {
    // One timer per relay, re-armed at most once per idle period (not on every chunk): each
    // chunk only records the time.
    const check = () => {
      const idle = performance.now() - state.lastActivity;
      if (idle >= idleMs) {
        idleTimer = undefined;
        end("idle-timeout");
        return;
      }
      idleTimer = setTimeout(check, Math.max(1, Math.ceil(idleMs - idle)));
      idleTimer.unref();
    };
    idleTimer = setTimeout(check, idleMs);
    idleTimer.unref();
  }
  const reuse = options.reuseBuffers !== false;
  toUp.start(reuse);
  toDown.start(reuse);
  return {
    downstream,
    upstream,
    bytes,
    reusedBuffers: () => (toUp.adopted ? 1 : 0) + (toDown.adopted ? 1 : 0),
    close: (why = "aborted") => end(why),
    done,
  };
}
