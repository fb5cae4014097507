/**
 * A lean HTTP/1.1 reverse-proxy byte path: a net/tls server with its own request-head parser
 * (http1.ts), and a keep-alive pool of raw TCP/TLS connections to one upstream. Bodies are relayed
 * without decoding (Content-Length: exactly N bytes; chunked: the raw chunks, with a scanner to
 * find the end; close-delimited: until EOF), each piece written as it arrives, with backpressure
 * both ways. One state object per client connection carries its current exchange; requests on a
 * connection (pipelined or not) are answered in order. What this path does not handle (upgrades,
 * static files) is handed over with `detach()`.
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { createGunzip, type Gunzip, constants as zlibConstants } from "node:zlib";
import { KproxyError } from "@kproxy/core";
import type { Dispatcher } from "undici";
import { upstreamError } from "./errors.js";
import type { FlatHeaders } from "./headers.js";
import { HOP_BY_HOP_HEADERS } from "./headers.js";
import {
  type BodyFraming,
  bodyFraming,
  ChunkedScanner,
  connectionTokensOf,
  findHeadEnd,
  HttpParseError,
  leadingEmptyLines,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  statusLine,
} from "./http1.js";

/**
 * True when `dispatcher` is undici's plain Agent (not a ProxyAgent, EnvHttpProxyAgent or
 * Socks5ProxyAgent): requests go straight to the API server, so the pool may dial it directly.
 * (Checked by name so that the lean path does not load undici itself.)
 */
export function isDirectDispatcher(dispatcher: Dispatcher): boolean {
  return dispatcher.constructor?.name === "Agent";
}

let dateText = "";
let dateSecond = 0;
/** The Date header value, recomputed at most once a second. */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

// ---------------------------------------------------------------------------------------------
// Upstream pool

export interface UpstreamPoolOptions {
  host: string;
  port: number;
  /** TLS options for each new connection (asked per dial: client certificates may rotate); undefined: plain TCP. */
  tls?: () => Promise<tls.ConnectionOptions>;
  /** "host:port" for error messages. */
  target: string;
  /** Idle connections kept. Default 64. */
  maxIdle?: number;
  /** Idle connections are closed after this long. Default 90 s (Go's IdleConnTimeout). */
  idleTimeoutMs?: number;
  /** Default 30 s. */
  connectTimeoutMs?: number;
  /** TCP keep-alive probe delay. Default 30 s (client-go's dialer). */
  keepAliveMs?: number;
}

/** Something that can own an upstream connection while an exchange uses it. */
interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamClose(up: UpstreamConnection): void;
  onUpstreamDrain(): void;
  onUpstreamReady(up: UpstreamConnection): void;
  onUpstreamFailed(err: unknown): void;
}

/** Bytes of an upstream connection's reusable read buffer. */
const READ_BUFFER_BYTES = 64 * 1024;
/** Pieces of a read written to a TLS client up to this size are copied (see FastConnection). */
const COPY_WRITE_LIMIT = 16 * 1024;

/**
 * One connection to the upstream; its listeners stay for its whole life and call the current
 * owner. Reads land in a buffer of the connection's own (`onread`), reused from read to read: an
 * owner that keeps a reference past the callback (a client write still pending, a decompressor)
 * calls `retain()` and the next read goes to a fresh buffer.
 */
export class UpstreamConnection {
  owner: UpstreamOwner | undefined;
  /** True once it has carried a complete exchange (a failure on it may be a stale keep-alive). */
  reused = false;
  idleSince = 0;
  error: Error | undefined;
  socket!: net.Socket;
  private readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  private retained = false;
  /** For net/tls.connect's `onread`. */
  readonly onread = {
    buffer: (): Buffer => {
      if (this.retained) {
        this.retained = false;
        this.readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
      }
      return this.readBuffer;
    },
    callback: (n: number, buf: Buffer): boolean => {
      const o = this.owner;
      if (o === undefined) {
        this.socket.destroy(); // bytes on an idle connection: it cannot be reused safely
        return false;
      }
      o.onUpstreamData(buf.subarray(0, n));
      return true;
    },
  };

  constructor(private readonly pool: UpstreamPool) {}

  /** The bytes of the last read are still referenced: do not reuse the read buffer. */
  retain(): void {
    this.retained = true;
  }

  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on("end", () => this.owner?.onUpstreamEnd());
    socket.on("error", (err) => {
      this.error = err;
    });
    socket.on("close", () => {
      const o = this.owner;
      this.owner = undefined;
      if (o !== undefined) o.onUpstreamClose(this);
      else this.pool.forget(this);
    });
    socket.on("drain", () => this.owner?.onUpstreamDrain());
  }
}

/** A keep-alive pool of HTTP/1.1 connections to one upstream. */
export class UpstreamPool {
  private readonly idle: UpstreamConnection[] = [];
  private readonly all = new Set<UpstreamConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private session: Buffer | undefined;
  private closed = false;
  readonly target: string;

  constructor(private readonly options: UpstreamPoolOptions) {
    this.target = options.target;
  }

  /** Open connections (idle and busy). */
  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Hands `owner` a connection: an idle one at once, else a new one once connected. */
  acquire(owner: UpstreamOwner): void {
    while (this.idle.length > 0) {
      const up = this.idle.pop() as UpstreamConnection;
      const s = up.socket;
      if (s.destroyed || !s.writable || s.readyState !== "open") {
        s.destroy();
        continue;
      }
      up.owner = owner;
      owner.onUpstreamReady(up);
      return;
    }
    this.dial(owner);
  }

  /** Returns a connection after a complete exchange. */
  release(up: UpstreamConnection): void {
    up.owner = undefined;
    up.reused = true;
    const s = up.socket;
    if (this.closed || s.destroyed || this.idle.length >= (this.options.maxIdle ?? 64)) {
      s.destroy();
      return;
    }
    if (s.isPaused()) s.resume();
    up.idleSince = Date.now();
    this.idle.push(up);
    this.sweeper ??= setInterval(() => this.sweep(), 5_000).unref();
  }

  forget(up: UpstreamConnection): void {
    this.all.delete(up);
    const i = this.idle.indexOf(up);
    if (i >= 0) this.idle.splice(i, 1);
  }

  close(): void {
    this.closed = true;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    for (const up of this.idle) up.socket.destroy();
    this.idle.length = 0;
  }

  /** Closes every connection, busy ones included. */
  destroy(): void {
    this.close();
    for (const up of this.all) up.socket.destroy();
  }

  private sweep(): void {
    const limit = Date.now() - (this.options.idleTimeoutMs ?? 90_000);
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const up = this.idle[i] as UpstreamConnection;
      if (up.idleSince < limit) {
        this.idle.splice(i, 1);
        up.socket.destroy();
      }
    }
    if (this.idle.length === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private dial(owner: UpstreamOwner): void {
    const o = this.options;
    if (this.closed) {
      owner.onUpstreamFailed(new KproxyError("UPSTREAM_CLOSED", "the upstream pool is closed"));
      return;
    }
    const connect = (tlsOptions: tls.ConnectionOptions | undefined) => {
      const up = new UpstreamConnection(this);
      let socket: net.Socket;
      if (tlsOptions !== undefined) {
        const servername = tlsOptions.servername ?? (net.isIP(o.host) === 0 ? o.host : undefined);
        socket = tls.connect({
          ...tlsOptions,
          host: o.host,
          port: o.port,
          ALPNProtocols: ["http/1.1"],
          ...(servername !== undefined && servername !== "" ? { servername } : {}),
          ...(this.session !== undefined ? { session: this.session } : {}),
          // tls.connect honours net's onread (documented; missing from @types/node's TLS options)
          ...({ onread: up.onread } as object),
        });
        socket.on("session", (session: Buffer) => {
          this.session = session;
        });
      } else socket = net.connect({ host: o.host, port: o.port, onread: up.onread });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, o.keepAliveMs ?? 30_000);
      const timer = setTimeout(() => {
        socket.destroy(Object.assign(new Error("i/o timeout"), { code: "ETIMEDOUT" }));
      }, o.connectTimeoutMs ?? 30_000);
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        owner.onUpstreamFailed(err);
      };
      socket.once("error", onError);
      socket.once(tlsOptions !== undefined ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        socket.off("error", onError);
        up.attach(socket);
        this.all.add(up);
        up.owner = owner;
        owner.onUpstreamReady(up);
      });
    };
    if (o.tls === undefined) connect(undefined);
    else o.tls().then(connect, (err) => owner.onUpstreamFailed(err));
  }
}

// ---------------------------------------------------------------------------------------------
// Client side

/** What a forwarded exchange came to (for access logs and metrics). */
export interface FastForwardResult {
  /** Status sent to the client; 0 when none was. */
  status: number;
  /** Response body bytes received from upstream (before any decompression). */
  upstreamBytes: number;
  error?: KproxyError;
  /** The client went away before the response was complete. */
  clientAborted: boolean;
}

export interface FastForward {
  pool: UpstreamPool;
  method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** Upstream headers, Host included (Content-Length and Transfer-Encoding are set from the request's framing). */
  headers: FlatHeaders;
  /** The proxy added `Accept-Encoding: gzip`: a gzip response is decompressed for the client. */
  requestedGzip: boolean;
  /**
   * Called when the upstream failed before any response byte reached the client; it must answer
   * with `conn.respond` (kubectl: 500 text).
   */
  onError: (conn: FastConnection, error: KproxyError) => void;
  /** Called once when the exchange is over. */
  onDone?: (conn: FastConnection, result: FastForwardResult) => void;
  /**
   * Sees the upstream response head (final statuses only) before anything is written to the
   * client, and may edit `headers` (name, value, … as received) in place: rewrite Location,
   * remove headers. Throwing a KproxyError fails the exchange as an upstream failure (onError
   * answers). Returning a `ResponseBodyRewrite` buffers the body (when it has one) and sends what
   * `rewrite` makes of it with an exact Content-Length.
   */
  onResponseHead?: (status: number, headers: string[]) => ResponseBodyRewrite | undefined;
}

/** A whole-body transformation of one response (see FastForward.onResponseHead). */
export interface ResponseBodyRewrite {
  /** Larger bodies are relayed as they are (streamed from that point on). */
  maxBytes: number;
  /**
   * The whole body as received (framing removed, Content-Encoding kept) → the body to send. May
   * edit `headers` (e.g. drop Content-Encoding after decoding). Throwing a KproxyError answers
   * through onError instead.
   */
  rewrite: (body: Buffer, headers: string[]) => Buffer;
  /** Called when the body is relayed unrewritten because it is larger than maxBytes. */
  onSkip?: (reason: string) => void;
}

export interface FastHttpServerOptions {
  /** Serve HTTPS with these (cert, key, …). */
  tls?: tls.TlsOptions;
  /** Largest request head; larger ones get 431. Default 1 MiB. */
  maxHeaderBytes?: number;
  /** Called for each request head, in order per connection: answer with respond, forward or detach. */
  onRequest: (conn: FastConnection, head: RequestHead) => void;
  /**
   * Close a client connection that has no request in progress and sent nothing for this long
   * (idle keep-alive connections, heads that never complete). Default: no limit.
   */
  idleTimeoutMs?: number;
}

/** A response's header lines for the client: hop-by-hop and Connection-named headers dropped. */
function responseHeaderLines(
  headers: readonly string[],
  tokens: Set<string> | undefined,
  dropLength: boolean,
  dropEncoding: boolean,
): string {
  let text = "";
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || tokens?.has(lower)) continue;
    if (dropLength && lower === "content-length") continue;
    if (dropEncoding && lower === "content-encoding") continue;
    text += `${name}: ${headers[i + 1]}\r\n`;
  }
  return text;
}

const GUNZIP_OPTIONS = { flush: zlibConstants.Z_SYNC_FLUSH, finishFlush: zlibConstants.Z_SYNC_FLUSH };
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
const CRLF = "\r\n";
const LAST_CHUNK = "0\r\n\r\n";
/** Bytes buffered from a client before we stop reading it (pipelined requests, early body). */
const CLIENT_BUFFER_LIMIT = 256 * 1024;
const UPSTREAM_HEAD_LIMIT = 1 << 20;

// Request body handling.
const BODY_NONE = 0;
const BODY_LENGTH = 1;
const BODY_CHUNKED = 2;
// Where request body bytes go.
const SINK_QUEUE = 0;
const SINK_UPSTREAM = 1;
const SINK_DISCARD = 2;
// Response relay modes.
const RES_NONE = 0;
const RES_LENGTH = 1;
const RES_CHUNKED_PASS = 2;
const RES_CHUNKED_DECODE = 3;
const RES_EOF = 4;

/** One client connection and its current exchange. */
export class FastConnection implements UpstreamOwner {
  /** The client's IP (IPv4-mapped addresses unwrapped); undefined for Unix sockets. */
  readonly clientIp: string | undefined;
  /** Free for the application (per-request bookkeeping). */
  started = 0;

  private pending: Buffer | undefined;
  private scanFrom = 0;
  private busy = false;
  private parsing = false;
  private closeAfter = false;
  private clientEnded = false;
  private detached = false;
  private dead = false;
  private head: RequestHead | undefined;
  private keepAliveHeader = false;

  // request body
  private bodyMode = BODY_NONE;
  /** The request's framing as received (bodyMode changes as the body is consumed). */
  private reqFraming = BODY_NONE;
  private reqLength = 0;
  private bodyRemaining = 0;
  private bodyScanner: ChunkedScanner | undefined;
  private bodyDone = true;
  private sink = SINK_QUEUE;
  private queue: Buffer[] = [];
  private queued = 0;
  private expectContinue = false;
  private hadBody = false;
  private pausedForBody = false;
  private pausedForPipeline = false;

  // forward
  private fwd: FastForward | undefined;
  private upHead = "";
  private up: UpstreamConnection | undefined;
  private retries = 0;
  private requestSent = false;

  // response
  private resDone = true;
  private resHeadBuf: Buffer | undefined;
  private resMode = RES_NONE;
  private resRemaining = 0;
  private resScanner: ChunkedScanner | undefined;
  private chunkOut = false;
  private upReusable = false;
  private headersSent = false;
  private status = 0;
  private upstreamBytes = 0;
  private gunzip: Gunzip | undefined;
  /** A decompressor saw bytes of the current read (it may still hold them after it ended). */
  private gunzipUsed = false;
  /** A write of the current read's bytes (not a copy) was handed to the client socket. */
  private wroteReadBuffer = false;
  /**
   * TLS clients: a write completes only after a later turn of the event loop, so writing a piece
   * of the upstream connection's reusable read buffer would cost that connection a new 64 KiB
   * buffer on each response. Pieces up to COPY_WRITE_LIMIT are copied instead.
   */
  private readonly copySmallWrites: boolean;
  private error: KproxyError | undefined;
  /** A response body being buffered for a ResponseBodyRewrite. */
  private collect:
    | {
        rewrite: ResponseBodyRewrite;
        status: number;
        headers: string[];
        tokens: Set<string> | undefined;
        streamHead: string;
        gzip: boolean;
        chunks: Buffer[];
        size: number;
      }
    | undefined;
  private readonly onPayload = (buf: Buffer, start: number, end: number) => {
    this.emit(buf.subarray(start, end));
  };

  constructor(
    private readonly server: FastHttpServer,
    readonly socket: net.Socket,
  ) {
    const ip = socket.remoteAddress;
    this.clientIp =
      ip === undefined || ip === ""
        ? undefined
        : ip.startsWith("::ffff:") && ip.includes(".")
          ? ip.slice(7)
          : ip;
    this.copySmallWrites = socket instanceof tls.TLSSocket;
    socket.on("data", (chunk: Buffer) => this.onClientData(chunk));
    socket.on("end", () => this.onClientEnd());
    socket.on("error", () => {});
    socket.on("close", () => this.onClientClose());
    socket.on("drain", () => this.onClientDrain());
  }

  /** The request being answered (until its exchange is over). */
  get request(): RequestHead | undefined {
    return this.head;
  }

  /** The status sent for the current request (0 before any). */
  get statusSent(): number {
    return this.status;
  }

  /** True while a request is being answered. */
  get active(): boolean {
    return this.busy;
  }

  // ----- client input

  private onClientData(chunk: Buffer): void {
    if (this.detached || this.dead) return;
    let rest: Buffer | undefined = chunk;
    if (this.busy && !this.bodyDone && this.pending === undefined) {
      const n = this.consumeBody(chunk, 0);
      if (this.dead) return;
      rest = n < chunk.length ? chunk.subarray(n) : undefined;
    }
    if (rest !== undefined) {
      this.pending = this.pending === undefined ? rest : Buffer.concat([this.pending, rest]);
    }
    if (!this.busy) this.parseNext();
    else if (
      this.pending !== undefined &&
      this.pending.length > CLIENT_BUFFER_LIMIT &&
      !this.pausedForPipeline
    ) {
      this.pausedForPipeline = true;
      this.socket.pause();
    }
  }

  private parseNext(): void {
    if (this.parsing) return;
    this.parsing = true;
    try {
      while (!this.busy && !this.dead && !this.detached && this.pending !== undefined) {
        let buf = this.pending;
        if (this.scanFrom === 0) {
          const skip = leadingEmptyLines(buf, 0);
          if (skip === buf.length) {
            this.pending = undefined;
            break;
          }
          if (skip > 0) buf = this.pending = buf.subarray(skip);
        }
        const max = this.server.maxHeaderBytes;
        const end = findHeadEnd(buf, Math.max(0, this.scanFrom - 3));
        if (end < 0) {
          this.scanFrom = buf.length;
          if (buf.length > max) this.failRequest(431);
          break;
        }
        this.scanFrom = 0;
        if (end > max) {
          this.failRequest(431);
          break;
        }
        const headText = buf.toString("latin1", 0, end);
        this.pending = end < buf.length ? buf.subarray(end) : undefined;
        let head: RequestHead;
        let framing: BodyFraming;
        try {
          head = parseRequestHead(headText);
          framing = bodyFraming(head.headers, true);
        } catch (err) {
          this.failRequest(err instanceof HttpParseError ? err.status : 400);
          break;
        }
        this.begin(head, framing);
        this.server.onRequest(this, head);
        if (this.detached || this.dead) break;
        if (!this.bodyDone && this.pending !== undefined) {
          const p = this.pending;
          this.pending = undefined;
          const n = this.consumeBody(p, 0);
          if (this.dead) break;
          if (n < p.length)
            this.pending =
              this.pending === undefined ? p.subarray(n) : Buffer.concat([p.subarray(n), this.pending]);
        }
      }
    } finally {
      this.parsing = false;
    }
    // Read on when idle, or when the current request still needs body bytes.
    if (this.pausedForPipeline && (!this.busy || !this.bodyDone) && !this.dead) {
      this.pausedForPipeline = false;
      this.socket.resume();
    }
    if (!this.busy && this.clientEnded && !this.dead && !this.detached) this.socket.end();
  }

  private begin(head: RequestHead, framing: BodyFraming): void {
    this.busy = true;
    this.head = head;
    this.retries = 0;
    this.requestSent = false;
    this.resDone = false;
    this.headersSent = false;
    this.status = 0;
    this.upstreamBytes = 0;
    this.error = undefined;
    this.sink = SINK_QUEUE;
    this.queue.length = 0;
    this.queued = 0;
    this.expectContinue = false;
    // Keep-alive: HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive".
    const tokens = connectionTokensOf(head.headers);
    if (head.minor === 0) {
      const ka = tokens?.has("keep-alive") === true;
      this.keepAliveHeader = ka;
      if (!ka) this.closeAfter = true;
    } else {
      this.keepAliveHeader = false;
      if (tokens?.has("close")) this.closeAfter = true;
    }
    if (this.server.closing) this.closeAfter = true;
    this.reqFraming =
      framing.kind === "length" ? BODY_LENGTH : framing.kind === "chunked" ? BODY_CHUNKED : BODY_NONE;
    this.reqLength = framing.kind === "length" ? framing.length : 0;
    if (framing.kind === "length") {
      this.bodyMode = BODY_LENGTH;
      this.bodyRemaining = framing.length;
      this.bodyDone = false;
    } else if (framing.kind === "chunked") {
      this.bodyMode = BODY_CHUNKED;
      this.bodyScanner ??= new ChunkedScanner();
      this.bodyScanner.reset();
      this.bodyDone = false;
    } else {
      this.bodyMode = BODY_NONE;
      this.bodyDone = true;
    }
    this.hadBody = !this.bodyDone;
    if (!this.bodyDone && head.minor >= 1) {
      for (let i = 0; i < head.headers.length; i += 2) {
        const name = head.headers[i] as string;
        if (name.length === 6 && name.toLowerCase() === "expect") {
          this.expectContinue = (head.headers[i + 1] as string).toLowerCase() === "100-continue";
        }
      }
    }
  }

  /** Feeds request body bytes from buf[start…]; returns the index just past the body (or buf.length). */
  private consumeBody(buf: Buffer, start: number): number {
    if (this.bodyMode === BODY_LENGTH) {
      const take = Math.min(this.bodyRemaining, buf.length - start);
      this.sendBody(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take));
      this.bodyRemaining -= take;
      if (this.bodyRemaining === 0) this.endBody();
      return start + take;
    }
    let end: number;
    try {
      end = (this.bodyScanner as ChunkedScanner).scan(buf, start);
    } catch {
      // A malformed request body: nothing sensible can follow on this connection.
      this.kill();
      return buf.length;
    }
    if (end < 0) {
      this.sendBody(start === 0 ? buf : buf.subarray(start));
      return buf.length;
    }
    this.sendBody(buf.subarray(start, end));
    this.endBody();
    return end;
  }

  private sendBody(b: Buffer): void {
    if (b.length === 0) return;
    if (this.sink === SINK_UPSTREAM) {
      const up = this.up as UpstreamConnection;
      if (!up.socket.write(b) && !this.pausedForBody) {
        this.pausedForBody = true;
        this.socket.pause();
      }
    } else if (this.sink === SINK_QUEUE) {
      this.queue.push(b);
      this.queued += b.length;
      if (this.queued > CLIENT_BUFFER_LIMIT && !this.pausedForBody) {
        this.pausedForBody = true;
        this.socket.pause();
      }
    }
  }

  private endBody(): void {
    this.bodyDone = true;
    this.bodyMode = BODY_NONE;
    if (this.sink === SINK_UPSTREAM) this.requestSent = true;
    if (this.resDone) this.finish();
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.detached) return;
    if (!this.busy) {
      if (!this.dead) this.socket.end();
      return;
    }
    if (!this.bodyDone) {
      // The request body was cut short.
      this.kill();
      return;
    }
    this.closeAfter = true;
  }

  private onClientClose(): void {
    this.server.forget(this);
    if (this.detached) return;
    const wasBusy = this.busy;
    this.dead = true;
    this.gunzip?.destroy();
    this.gunzip = undefined;
    const up = this.up;
    this.up = undefined;
    if (up !== undefined) {
      up.owner = undefined;
      up.socket.destroy();
    }
    if (wasBusy && this.fwd !== undefined) {
      const fwd = this.fwd;
      this.fwd = undefined;
      this.busy = false;
      fwd.onDone?.(this, {
        status: this.status,
        upstreamBytes: this.upstreamBytes,
        clientAborted: !this.resDone,
        ...(this.error !== undefined ? { error: this.error } : {}),
      });
    }
    this.busy = false;
  }

  private onClientDrain(): void {
    const up = this.up;
    if (up?.socket.isPaused()) up.socket.resume();
    if (this.gunzip?.isPaused()) this.gunzip.resume();
  }

  /** Destroys the connection (and the exchange's upstream connection). */
  kill(): void {
    if (this.dead) return;
    this.socket.destroy();
    this.onClientClose();
  }

  private failRequest(status: number): void {
    // As Node's and Go's servers do for unparsable requests: a short text answer, then close.
    const text = `${status} ${statusLine(status).slice(13, -2)}`;
    this.dead = true;
    this.pending = undefined;
    this.socket.end(
      `HTTP/1.1 ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${text}`,
      "latin1",
    );
  }

  // ----- answers

  /**
   * Answers the current request locally. `headers` is pre-rendered ("Name: value\r\n" lines);
   * Date, Content-Length and Connection are added. HEAD requests get no body.
   */
  respond(status: number, headers: string, body: string, close = false): void {
    if (this.dead || this.detached) return;
    if (close || (this.expectContinue && !this.bodyDone)) this.closeAfter = true;
    const head = this.head as RequestHead;
    const length = Buffer.byteLength(body);
    let text = `${statusLine(status)}${headers}Date: ${httpDate()}\r\nContent-Length: ${length}\r\n`;
    if (this.closeAfter) text += "Connection: close\r\n";
    else if (this.keepAliveHeader) text += "Connection: keep-alive\r\n";
    text += CRLF;
    if (head.method !== "HEAD") text += body;
    this.socket.write(text, length === body.length ? "latin1" : "utf8");
    this.status = status;
    this.headersSent = true;
    this.resDone = true;
    this.sink = SINK_DISCARD;
    if (!this.bodyDone && this.closeAfter) {
      // The rest of the request body will not be read (a client waiting for 100-continue would
      // never send it): close after this answer instead of waiting for it.
      this.closeAfter = true;
      this.bodyDone = true;
      this.bodyMode = BODY_NONE;
    }
    this.queue.length = 0;
    this.queued = 0;
    if (this.pausedForBody) {
      this.pausedForBody = false;
      this.socket.resume();
    }
    if (this.bodyDone) this.finish();
  }

  /**
   * Hands the connection over (for an upgrade or another server): stops reading it and returns
   * the bytes already read after the request head. The caller owns the socket from now on.
   */
  detach(): { socket: net.Socket; head: Buffer } {
    this.detached = true;
    this.busy = false;
    this.server.forget(this);
    const socket = this.socket;
    socket.pause();
    socket.removeAllListeners("data");
    socket.removeAllListeners("end");
    socket.removeAllListeners("drain");
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    socket.removeAllListeners("timeout");
    socket.setTimeout(0);
    const head = this.pending ?? Buffer.alloc(0);
    this.pending = undefined;
    return { socket, head };
  }

  /** Forwards the current request upstream and relays the response. */
  forward(spec: FastForward): void {
    if (this.dead || this.detached) {
      spec.onDone?.(this, { status: 0, upstreamBytes: 0, clientAborted: true });
      return;
    }
    // (onError may forward again, to another upstream: a retry of a request without a body.)
    this.fwd = spec;
    this.error = undefined;
    this.requestSent = false;
    this.collect = undefined;
    this.upHead = this.renderUpstreamHead(spec);
    if (this.expectContinue && !this.bodyDone) {
      this.socket.write("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
    }
    spec.pool.acquire(this);
  }

  private renderUpstreamHead(spec: FastForward): string {
    let text = `${spec.method} ${spec.path} HTTP/1.1\r\n`;
    const h = spec.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      const n = name.length;
      if (
        (n === 14 && name.toLowerCase() === "content-length") ||
        (n === 17 && name.toLowerCase() === "transfer-encoding")
      ) {
        continue;
      }
      text += `${name}: ${h[i + 1]}\r\n`;
    }
    // (From the framing as received: an answer decided asynchronously may find the body read already.)
    if (this.reqFraming === BODY_CHUNKED) text += "Transfer-Encoding: chunked\r\n";
    else if (this.reqFraming === BODY_LENGTH) text += `Content-Length: ${this.reqLength}\r\n`;
    else if (spec.method !== "GET" && spec.method !== "HEAD") {
      // Go's transferWriter: a body-less request other than GET/HEAD says Content-Length: 0.
      text += "Content-Length: 0\r\n";
    }
    return `${text}\r\n`;
  }

  onUpstreamReady(up: UpstreamConnection): void {
    if (this.dead || this.fwd === undefined) {
      up.owner = undefined;
      if (this.dead) up.socket.destroy();
      else this.fwd?.pool.release(up);
      return;
    }
    this.up = up;
    this.resHeadBuf = undefined;
    const s = up.socket;
    if (this.queue.length > 0) {
      s.cork();
      s.write(this.upHead, "latin1");
      for (const b of this.queue) s.write(b);
      s.uncork();
      this.queue.length = 0;
      this.queued = 0;
    } else s.write(this.upHead, "latin1");
    if (this.bodyDone) this.requestSent = true;
    else this.sink = SINK_UPSTREAM;
    if (this.pausedForBody && s.writableLength < s.writableHighWaterMark) {
      this.pausedForBody = false;
      this.socket.resume();
    }
  }

  onUpstreamFailed(err: unknown): void {
    if (this.dead) return;
    this.failBeforeResponse(upstreamError(err, (this.fwd as FastForward).pool.target));
  }

  onUpstreamDrain(): void {
    if (this.pausedForBody) {
      this.pausedForBody = false;
      this.socket.resume();
    }
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.dead) return;
    const up = this.up;
    const client = this.socket;
    client.cork();
    try {
      if (this.resMode === RES_NONE && !this.headersSent) this.onResponseHeadBytes(chunk);
      else this.relay(chunk, 0);
    } catch (err) {
      this.failUpstream(err);
    }
    client.uncork();
    // `chunk` lives in the upstream connection's read buffer: if a write still refers to it (or
    // a decompressor got it), the next read must go elsewhere.
    const retained = (this.wroteReadBuffer && client.writableLength > 0) || this.gunzipUsed;
    this.gunzipUsed = false;
    this.wroteReadBuffer = false;
    if (retained && up !== undefined) up.retain();
  }

  private onResponseHeadBytes(chunk: Buffer): void {
    let buf = this.resHeadBuf === undefined ? chunk : Buffer.concat([this.resHeadBuf, chunk]);
    for (;;) {
      const end = findHeadEnd(buf, 0);
      if (end < 0) {
        if (buf.length > UPSTREAM_HEAD_LIMIT) {
          throw new KproxyError(
            "UPSTREAM_PROTOCOL",
            "net/http: server response headers exceeded 1048576 bytes; aborted",
          );
        }
        // `chunk` (and any slice of it) lives in the reusable read buffer: keep a copy.
        this.resHeadBuf = buf.buffer === chunk.buffer ? Buffer.from(buf) : buf;
        return;
      }
      this.resHeadBuf = undefined;
      let res: ReturnType<typeof parseResponseHead>;
      try {
        res = parseResponseHead(buf.toString("latin1", 0, end));
      } catch (err) {
        throw new KproxyError("UPSTREAM_PROTOCOL", (err as Error).message, { cause: err });
      }
      if (res.status >= 100 && res.status < 200) {
        // Informational answers are not relayed (as Go's ReverseProxy before 1.20 and undici).
        if (res.status === 101) throw new KproxyError("UPSTREAM_PROTOCOL", "unexpected 101 response");
        buf = buf.subarray(end);
        if (buf.length === 0) return;
        continue;
      }
      this.startResponse(res.status, res.minor, res.headers);
      if (this.resMode === RES_NONE) {
        if (end < buf.length) this.upReusable = false; // bytes after a body-less response
        this.responseDone();
      } else if (end < buf.length) this.relay(buf, end);
      return;
    }
  }

  private startResponse(status: number, minor: number, headers: string[]): void {
    const head = this.head as RequestHead;
    const fwd = this.fwd as FastForward;
    const tokens = connectionTokensOf(headers);
    this.upReusable = minor >= 1 ? tokens?.has("close") !== true : tokens?.has("keep-alive") === true;
    let framing: BodyFraming;
    if (head.method === "HEAD" || status === 204 || status === 304) framing = { kind: "none" };
    else {
      try {
        framing = bodyFraming(headers, false);
      } catch (err) {
        throw new KproxyError("UPSTREAM_PROTOCOL", (err as Error).message, { cause: err });
      }
    }
    let rewrite = fwd.onResponseHead !== undefined ? fwd.onResponseHead(status, headers) : undefined;
    if (framing.kind === "none") rewrite = undefined;
    // The proxy asked for gzip and got it: the client gets it decompressed.
    let gzip = false;
    if (fwd.requestedGzip && framing.kind !== "none") {
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        if (name.length === 16 && name.toLowerCase() === "content-encoding") {
          gzip = (headers[i + 1] as string).toLowerCase() === "gzip";
        }
      }
    }
    // (A body being rewritten is decompressed by the rewrite, or when it proves too large.)
    const decompress = gzip && rewrite === undefined;
    // Re-framed for the client: decompressed, or rewritten (streamed re-chunked if too large).
    const reframe = gzip || rewrite !== undefined;
    let text =
      statusLine(status) + responseHeaderLines(headers, tokens, reframe || framing.kind === "chunked", gzip);
    const http10 = head.minor === 0;
    this.chunkOut = false;
    this.resScanner = undefined;
    switch (framing.kind) {
      case "none":
        this.resMode = RES_NONE;
        break;
      case "length":
        this.resMode = RES_LENGTH;
        this.resRemaining = framing.length;
        break;
      case "chunked":
        this.resScanner ??= new ChunkedScanner();
        this.resMode = reframe || http10 ? RES_CHUNKED_DECODE : RES_CHUNKED_PASS;
        if (this.resMode === RES_CHUNKED_PASS) text += "Transfer-Encoding: chunked\r\n";
        break;
      case "eof":
        this.resMode = RES_EOF;
        this.upReusable = false;
        break;
    }
    if (reframe || this.resMode === RES_EOF) {
      if (http10) this.closeAfter = true;
      else if (this.resMode !== RES_CHUNKED_PASS) {
        this.chunkOut = true;
        text += "Transfer-Encoding: chunked\r\n";
      }
    } else if (this.resMode === RES_CHUNKED_DECODE) this.closeAfter = true; // HTTP/1.0 client
    if (rewrite !== undefined) {
      // The head waits for the whole body (or for it to prove too large).
      this.collect = { rewrite, status, headers, tokens, streamHead: text, gzip, chunks: [], size: 0 };
      return;
    }
    this.socket.write(text + this.connectionLine(), "latin1");
    this.headersSent = true;
    this.status = status;
    if (decompress) this.startGunzip();
  }

  private connectionLine(): string {
    if (this.closeAfter) return "Connection: close\r\n\r\n";
    if (this.keepAliveHeader) return "Connection: keep-alive\r\n\r\n";
    return CRLF;
  }

  /** A buffered body proved too large to rewrite: send the streaming head and what was buffered. */
  private flushCollect(): void {
    const c = this.collect;
    if (c === undefined) return;
    this.collect = undefined;
    c.rewrite.onSkip?.(`body larger than ${c.rewrite.maxBytes} bytes`);
    this.socket.write(c.streamHead + this.connectionLine(), "latin1");
    this.headersSent = true;
    this.status = c.status;
    if (c.gzip) this.startGunzip();
    for (const b of c.chunks) this.emit(b);
  }

  /** The buffered body is complete: rewrite it and send it with its Content-Length. False when it failed. */
  private sendCollected(): boolean {
    const c = this.collect;
    if (c === undefined) return true;
    this.collect = undefined;
    let body: Buffer;
    try {
      body = c.rewrite.rewrite(
        c.chunks.length === 1 ? (c.chunks[0] as Buffer) : Buffer.concat(c.chunks, c.size),
        c.headers,
      );
    } catch (err) {
      this.chunkOut = false;
      this.failBeforeResponse(
        err instanceof KproxyError ? err : upstreamError(err, (this.fwd as FastForward).pool.target),
      );
      return false;
    }
    this.chunkOut = false;
    const text = `${statusLine(c.status)}${responseHeaderLines(c.headers, c.tokens, true, false)}Content-Length: ${body.length}\r\n${this.connectionLine()}`;
    const s = this.socket;
    s.cork();
    s.write(text, "latin1");
    if (body.length > 0) s.write(body);
    s.uncork();
    this.headersSent = true;
    this.status = c.status;
    return true;
  }

  private startGunzip(): void {
    const gunzip = createGunzip(GUNZIP_OPTIONS);
    this.gunzip = gunzip;
    gunzip.on("data", (out: Buffer) => {
      if (this.dead) return;
      if (!this.writeOut(out)) gunzip.pause();
    });
    gunzip.on("drain", () => {
      const up = this.up;
      if (up?.socket.isPaused()) up.socket.resume();
    });
    gunzip.on("error", (err) => {
      this.error = upstreamError(err, (this.fwd as FastForward).pool.target);
      this.kill();
    });
    gunzip.on("end", () => {
      if (this.dead) return;
      this.gunzip = undefined;
      if (this.chunkOut) this.socket.write(LAST_CHUNK, "latin1");
      this.resDone = true;
      this.finishResponse();
    });
  }

  /** Writes decoded payload to the client (re-chunked when needed); false on backpressure. */
  private writeOut(b: Buffer): boolean {
    if (b.length === 0) return true;
    const s = this.socket;
    if (this.copySmallWrites && b.length <= COPY_WRITE_LIMIT) {
      const copy = Buffer.allocUnsafe(b.length);
      b.copy(copy);
      b = copy;
    } else this.wroteReadBuffer = true;
    if (this.chunkOut) {
      s.cork();
      s.write(`${b.length.toString(16)}\r\n`, "latin1");
      s.write(b);
      const ok = s.write(CRLF, "latin1");
      s.uncork();
      return ok;
    }
    return s.write(b);
  }

  /** One piece of response payload (or raw chunked bytes) from upstream. */
  private emit(b: Buffer): void {
    const c = this.collect;
    if (c !== undefined) {
      c.chunks.push(Buffer.from(b)); // `b` may live in the reusable read buffer
      c.size += b.length;
      if (c.size > c.rewrite.maxBytes) this.flushCollect();
      return;
    }
    if (this.gunzip !== undefined) {
      this.gunzipUsed = true;
      if (!this.gunzip.write(b)) this.up?.socket.pause();
      return;
    }
    if (!this.writeOut(b)) this.up?.socket.pause();
  }

  private relay(buf: Buffer, start: number): void {
    const len = buf.length - start;
    this.upstreamBytes += len;
    switch (this.resMode) {
      case RES_LENGTH: {
        const take = Math.min(this.resRemaining, len);
        this.emit(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take));
        this.resRemaining -= take;
        if (this.resRemaining === 0) {
          if (take < len) this.upReusable = false; // bytes beyond the body: do not trust the connection
          this.responseDone();
        }
        return;
      }
      case RES_CHUNKED_PASS: {
        const scanner = this.resScanner as ChunkedScanner;
        const end = scanner.scan(buf, start);
        if (end < 0) {
          this.emit(start === 0 ? buf : buf.subarray(start));
          return;
        }
        this.emit(buf.subarray(start, end));
        if (end < buf.length) this.upReusable = false;
        this.responseDone();
        return;
      }
      case RES_CHUNKED_DECODE: {
        const end = (this.resScanner as ChunkedScanner).scan(buf, start, this.onPayload);
        if (end >= 0) {
          if (end < buf.length) this.upReusable = false;
          this.responseDone();
        }
        return;
      }
      case RES_EOF:
        this.emit(start === 0 ? buf : buf.subarray(start));
        return;
      default:
        // Bytes after a body-less response.
        this.upReusable = false;
    }
  }

  /** The upstream response is complete. */
  private responseDone(): void {
    const up = this.up;
    this.up = undefined;
    this.resMode = RES_NONE;
    if (up !== undefined) {
      if (this.upReusable && this.bodyDone && this.requestSent) (this.fwd as FastForward).pool.release(up);
      else {
        up.owner = undefined;
        up.socket.destroy();
      }
    }
    if (!this.bodyDone) {
      // The upstream answered before reading the whole request body: skip the rest, then close.
      this.sink = SINK_DISCARD;
      this.closeAfter = true;
      if (this.pausedForBody) {
        this.pausedForBody = false;
        this.socket.resume();
      }
    }
    if (this.collect !== undefined && !this.sendCollected()) return;
    if (this.gunzip !== undefined) {
      this.gunzip.end();
      return;
    }
    if (this.chunkOut) this.socket.write(LAST_CHUNK, "latin1");
    this.resDone = true;
    this.finishResponse();
  }

  private finishResponse(): void {
    const fwd = this.fwd;
    if (fwd !== undefined && this.bodyDone) this.finish();
  }

  onUpstreamEnd(): void {
    if (this.resMode === RES_EOF && (this.headersSent || this.collect !== undefined)) {
      const s = this.socket;
      s.cork();
      this.responseDone();
      s.uncork();
    }
  }

  onUpstreamClose(up: UpstreamConnection): void {
    up.owner = undefined;
    (this.fwd?.pool ?? undefined)?.forget(up);
    if (this.up !== up) return;
    this.up = undefined;
    if (this.dead) return;
    this.failUpstream(up.error, up);
  }

  private failUpstream(err: unknown, up?: UpstreamConnection): void {
    const fwd = this.fwd as FastForward;
    const current = up ?? this.up;
    if (this.up !== undefined) {
      this.up.owner = undefined;
      this.up.socket.destroy();
      this.up = undefined;
    }
    const error =
      err instanceof KproxyError
        ? err
        : err === undefined
          ? new KproxyError("UPSTREAM_RESET", this.headersSent ? "unexpected EOF" : "EOF")
          : upstreamError(err, fwd.pool.target);
    if (!this.headersSent) {
      const collecting = this.collect !== undefined;
      this.collect = undefined;
      // A kept-alive connection that the server closed: retry on a fresh one when that is safe.
      const head = this.head as RequestHead;
      // (Go's rule: only on a reused connection, only for requests that can be replayed.)
      if (
        current?.reused === true &&
        !collecting &&
        this.resHeadBuf === undefined &&
        this.retries < 3 &&
        !this.hadBody &&
        IDEMPOTENT.has(head.method) &&
        !(err instanceof KproxyError)
      ) {
        this.retries++;
        this.requestSent = false;
        fwd.pool.acquire(this);
        return;
      }
      this.resHeadBuf = undefined;
      this.failBeforeResponse(error);
      return;
    }
    // Mid-body: cut the client connection so that it sees an incomplete response (as Go does).
    this.error = error;
    this.kill();
  }

  private failBeforeResponse(error: KproxyError): void {
    this.error = error;
    this.sink = SINK_DISCARD;
    this.queue.length = 0;
    this.queued = 0;
    if (!this.bodyDone) this.closeAfter = true;
    const fwd = this.fwd as FastForward;
    fwd.onError(this, error);
    // onError may have forwarded the request again (a retry elsewhere): that exchange goes on.
    if (this.fwd !== undefined && this.fwd !== fwd) return;
    if (!this.resDone) this.kill();
  }

  /** The exchange is over (response written, request body consumed). */
  private finish(): void {
    if (!this.busy) return;
    const fwd = this.fwd;
    this.fwd = undefined;
    this.busy = false;
    if (fwd?.onDone !== undefined) {
      const result: FastForwardResult = {
        status: this.status,
        upstreamBytes: this.upstreamBytes,
        clientAborted: false,
      };
      if (this.error !== undefined) result.error = this.error;
      fwd.onDone(this, result);
    }
    this.head = undefined;
    if (this.closeAfter) {
      this.dead = true;
      this.socket.end();
      return;
    }
    if (this.server.closing) {
      this.dead = true;
      this.socket.end();
      return;
    }
    if (this.pending !== undefined || this.clientEnded || this.pausedForPipeline) this.parseNext();
  }

  /** Ends the connection if it is between requests (graceful shutdown). */
  closeIfIdle(): boolean {
    if (this.busy || this.detached) return false;
    this.dead = true;
    this.socket.end();
    return true;
  }
}

/** The client-facing server of the lean path. */
export class FastHttpServer {
  readonly server: net.Server;
  readonly maxHeaderBytes: number;
  readonly onRequest: (conn: FastConnection, head: RequestHead) => void;
  private readonly connections = new Set<FastConnection>();
  /** TLS: accepted TCP connections whose handshake has not finished. */
  private readonly handshaking = new Set<net.Socket>();
  private closingFlag = false;
  private readonly idleTimeoutMs: number;

  constructor(options: FastHttpServerOptions) {
    this.maxHeaderBytes = options.maxHeaderBytes ?? 1 << 20;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.onRequest = options.onRequest;
    if (options.tls !== undefined) {
      // Not half-open until the handshake is done: with allowHalfOpen, Node keeps a connection that
      // ends before its ClientHello (a TCP probe, a port scan) open until the 120 s handshake
      // timeout, and server.close() waits for it. Established connections are made half-open in
      // accept(), so a client that shuts down its side after a request still gets the answer.
      const server = tls.createServer({ ...options.tls, allowHalfOpen: false, ALPNProtocols: ["http/1.1"] });
      server.on("connection", (raw: net.Socket) => {
        if (this.closingFlag) {
          raw.destroy();
          return;
        }
        this.handshaking.add(raw);
        raw.once("close", () => this.handshaking.delete(raw));
      });
      server.on("secureConnection", (socket: tls.TLSSocket) => {
        const raw = (socket as unknown as { _parent?: unknown })._parent;
        if (raw instanceof net.Socket) this.handshaking.delete(raw);
        socket.allowHalfOpen = true;
        this.accept(socket);
      });
      server.on("tlsClientError", (_err, socket) => socket.destroy());
      this.server = server;
    } else {
      this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    }
  }

  get closing(): boolean {
    return this.closingFlag;
  }

  /** Connections with a request in progress. */
  get activeCount(): number {
    let n = 0;
    for (const c of this.connections) if (c.active) n++;
    return n;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private accept(socket: net.Socket): void {
    if (this.closingFlag) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new FastConnection(this, socket);
    this.connections.add(conn);
    if (this.idleTimeoutMs > 0) {
      socket.setTimeout(this.idleTimeoutMs);
      socket.on("timeout", () => {
        if (!conn.active) conn.kill();
      });
    }
  }

  forget(conn: FastConnection): void {
    this.connections.delete(conn);
  }

  /** From now on, connections close after their current request; idle ones close now. */
  startClosing(): void {
    this.closingFlag = true;
    this.closeIdle();
  }

  closeIdle(): void {
    for (const c of this.connections) if (c.closeIfIdle()) this.connections.delete(c);
  }

  closeAll(): void {
    // Connections still in their TLS handshake (they would be refused in accept() anyway). Only
    // here, where every connection goes: `_parent` (how an established one leaves this set early)
    // is Node's, not a public API.
    for (const raw of this.handshaking) raw.destroy();
    this.handshaking.clear();
    for (const c of this.connections) c.kill();
    this.connections.clear();
  }
}
