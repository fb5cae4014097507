/**
 * Active health probes of one endpoint: an HTTP(S) GET that must answer an expected status
 * (the API server's /readyz), or a bare TCP connect. Each probe opens its own connection (what a
 * client of the load balancer would do) and closes it; a probe never throws.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, isIP } from "node:net";

export interface ProbeResult {
  readonly ok: boolean;
  /** Time until the answer (or the failure). */
  readonly latencyMs: number;
  /** HTTP status, for HTTP probes that got an answer. */
  readonly status?: number;
  /** Why the probe failed: "timeout", an errno code, "status 500", a TLS error text. */
  readonly error?: string;
}

export interface TlsProbeOptions {
  /** PEM CA bundle to verify the server with; without it (or with insecure) nothing is verified. */
  ca?: string | Buffer;
  /** Skip verification (HAProxy `verify none`). Default: true when no `ca` is given. */
  insecure?: boolean;
  /** Client certificate and key (PEM), for servers that require one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** SNI and the name to verify; default the host when it is a DNS name. */
  serverName?: string;
}

export interface HttpProbeOptions {
  host: string;
  port: number;
  /** Default "/readyz". */
  path?: string;
  /** HTTPS options, or false for plain HTTP. Default HTTPS without verification. */
  tls?: TlsProbeOptions | false;
  /** Statuses that mean healthy; default [200]. */
  expectStatus?: readonly number[];
  /** Whole probe (connect, TLS, answer); default 2000. */
  timeoutMs?: number;
  /** Extra request headers (e.g. a Host or an Authorization for a protected check path). */
  headers?: Record<string, string>;
}

function elapsed(start: number): number {
  return Math.round((performance.now() - start) * 1000) / 1000;
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}

/**
 * GET `path` on a fresh connection; ok when the status is one of `expectStatus`. The body is read
 * (at most 64 KiB) and discarded, so the server sees a complete exchange (no "TLS handshake
 * error"/"broken pipe" noise in its logs).
 */
export function httpProbe(options: HttpProbeOptions): Promise<ProbeResult> {
  const start = performance.now();
  const timeoutMs = options.timeoutMs ?? 2000;
  const expect = options.expectStatus ?? [200];
  const tls = options.tls === undefined ? {} : options.tls;
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const finish = (r: Omit<ProbeResult, "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ...r, latencyMs: elapsed(start) });
    };
    const common = {
      host: options.host,
      port: options.port,
      path: options.path ?? "/readyz",
      method: "GET",
      agent: false as const,
      headers: {
        "user-agent": "kproxy-health-check",
        accept: "*/*",
        connection: "close",
        ...options.headers,
      },
    };
    const req =
      tls === false
        ? httpRequest(common)
        : httpsRequest({
            ...common,
            rejectUnauthorized: tls.insecure !== undefined ? !tls.insecure : tls.ca !== undefined,
            ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
            ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
            ...(tls.key !== undefined ? { key: tls.key } : {}),
            ...(tls.serverName !== undefined
              ? { servername: tls.serverName }
              : isIP(options.host) === 0
                ? { servername: options.host }
                : {}),
          });
    const timer = setTimeout(() => finish({ ok: false, error: "timeout" }), timeoutMs);
    req.on("error", (err) => finish({ ok: false, error: errorText(err) }));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      res.on("data", (chunk: Buffer) => {
        read += chunk.length;
        if (read > 65_536) res.destroy();
      });
      const done = () =>
        finish(
          expect.includes(status) ? { ok: true, status } : { ok: false, status, error: `status ${status}` },
        );
      res.on("end", done);
      res.on("close", done);
      res.on("error", done);
    });
    req.end();
  });
}

export interface TcpProbeOptions {
  host: string;
  port: number;
  /** Default 2000. */
  timeoutMs?: number;
}

/** Connects and closes at once; ok when the TCP handshake completes in time. */
export function tcpProbe(options: TcpProbeOptions): Promise<ProbeResult> {
  const start = performance.now();
  const timeoutMs = options.timeoutMs ?? 2000;
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const socket = connect({ host: options.host, port: options.port });
    const finish = (r: Omit<ProbeResult, "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...r, latencyMs: elapsed(start) });
    };
    const timer = setTimeout(() => finish({ ok: false, error: "timeout" }), timeoutMs);
    socket.once("connect", () => finish({ ok: true }));
    socket.once("error", (err) => finish({ ok: false, error: errorText(err) }));
  });
}
