/**
 * SPDY/3.1 framing and a minimal session, as spoken by Kubernetes clients (moby/spdystream inside client-go) for
 * `kubectl port-forward` and the SPDY fallback of `kubectl exec`.
 *
 * Frames (all integers big-endian):
 *   control: |1|version(15)|type(16)|flags(8)|length(24)|payload
 *   data:    |0|stream-id(31)|flags(8)|length(24)|data
 * Header blocks are zlib-compressed with the SPDY/3 dictionary; one compression context per direction for the whole
 * session, each block ended with a sync flush.
 */
import { EventEmitter } from "node:events";
import { Duplex } from "node:stream";
import { createDeflate, createInflate, type Deflate, type Inflate, constants as zc } from "node:zlib";

export const SPDY_VERSION = 3;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
export const DEFAULT_INITIAL_WINDOW_SIZE = 64 * 1024;
const MAX_WINDOW = 0x7fffffff;

/** The SPDY/3 header compression dictionary (1423 bytes, Adler-32 0xe3c6a7c2). */
export const SPDY3_DICTIONARY: Buffer = Buffer.from(
  "AAAAB29wdGlvbnMAAAAEaGVhZAAAAARwb3N0AAAAA3B1dAAAAAZkZWxldGUAAAAFdHJhY2UAAAAGYWNjZXB0AAAADmFjY2VwdC1jaGFyc2V0AAAAD2FjY2VwdC1lbmNvZGluZwAAAA9hY2NlcHQtbGFuZ3VhZ2UAAAANYWNjZXB0LXJhbmdlcwAAAANhZ2UAAAAFYWxsb3cAAAANYXV0aG9yaXphdGlvbgAAAA1jYWNoZS1jb250cm9sAAAACmNvbm5lY3Rpb24AAAAMY29udGVudC1iYXNlAAAAEGNvbnRlbnQtZW5jb2RpbmcAAAAQY29udGVudC1sYW5ndWFnZQAAAA5jb250ZW50LWxlbmd0aAAAABBjb250ZW50LWxvY2F0aW9uAAAAC2NvbnRlbnQtbWQ1AAAADWNvbnRlbnQtcmFuZ2UAAAAMY29udGVudC10eXBlAAAABGRhdGUAAAAEZXRhZwAAAAZleHBlY3QAAAAHZXhwaXJlcwAAAARmcm9tAAAABGhvc3QAAAAIaWYtbWF0Y2gAAAARaWYtbW9kaWZpZWQtc2luY2UAAAANaWYtbm9uZS1tYXRjaAAAAAhpZi1yYW5nZQAAABNpZi11bm1vZGlmaWVkLXNpbmNlAAAADWxhc3QtbW9kaWZpZWQAAAAIbG9jYXRpb24AAAAMbWF4LWZvcndhcmRzAAAABnByYWdtYQAAABJwcm94eS1hdXRoZW50aWNhdGUAAAATcHJveHktYXV0aG9yaXphdGlvbgAAAAVyYW5nZQAAAAdyZWZlcmVyAAAAC3JldHJ5LWFmdGVyAAAABnNlcnZlcgAAAAJ0ZQAAAAd0cmFpbGVyAAAAEXRyYW5zZmVyLWVuY29kaW5nAAAAB3VwZ3JhZGUAAAAKdXNlci1hZ2VudAAAAAR2YXJ5AAAAA3ZpYQAAAAd3YXJuaW5nAAAAEHd3dy1hdXRoZW50aWNhdGUAAAAGbWV0aG9kAAAAA2dldAAAAAZzdGF0dXMAAAAGMjAwIE9LAAAAB3ZlcnNpb24AAAAISFRUUC8xLjEAAAADdXJsAAAABnB1YmxpYwAAAApzZXQtY29va2llAAAACmtlZXAtYWxpdmUAAAAGb3JpZ2luMTAwMTAxMjAxMjAyMjA1MjA2MzAwMzAyMzAzMzA0MzA1MzA2MzA3NDAyNDA1NDA2NDA3NDA4NDA5NDEwNDExNDEyNDEzNDE0NDE1NDE2NDE3NTAyNTA0NTA1MjAzIE5vbi1BdXRob3JpdGF0aXZlIEluZm9ybWF0aW9uMjA0IE5vIENvbnRlbnQzMDEgTW92ZWQgUGVybWFuZW50bHk0MDAgQmFkIFJlcXVlc3Q0MDEgVW5hdXRob3JpemVkNDAzIEZvcmJpZGRlbjQwNCBOb3QgRm91bmQ1MDAgSW50ZXJuYWwgU2VydmVyIEVycm9yNTAxIE5vdCBJbXBsZW1lbnRlZDUwMyBTZXJ2aWNlIFVuYXZhaWxhYmxlSmFuIEZlYiBNYXIgQXByIE1heSBKdW4gSnVsIEF1ZyBTZXB0IE9jdCBOb3YgRGVjIDAwOjAwOjAwIE1vbiwgVHVlLCBXZWQsIFRodSwgRnJpLCBTYXQsIFN1biwgR01UY2h1bmtlZCx0ZXh0L2h0bWwsaW1hZ2UvcG5nLGltYWdlL2pwZyxpbWFnZS9naWYsYXBwbGljYXRpb24veG1sLGFwcGxpY2F0aW9uL3hodG1sK3htbCx0ZXh0L3BsYWluLHRleHQvamF2YXNjcmlwdCxwdWJsaWNwcml2YXRlbWF4LWFnZT1nemlwLGRlZmxhdGUsc2RjaGNoYXJzZXQ9dXRmLThjaGFyc2V0PWlzby04ODU5LTEsdXRmLSwqLGVucT0wLg==",
  "base64",
);

export type SpdyFrame =
  | { type: "data"; streamId: number; flags: number; data: Buffer }
  | {
      type: "syn_stream";
      streamId: number;
      associatedStreamId: number;
      priority: number;
      slot: number;
      flags: number;
      headerBlock: Buffer;
    }
  | { type: "syn_reply"; streamId: number; flags: number; headerBlock: Buffer }
  | { type: "rst_stream"; streamId: number; status: number }
  | { type: "settings"; flags: number; entries: Array<{ id: number; flags: number; value: number }> }
  | { type: "ping"; id: number }
  | { type: "goaway"; lastGoodStreamId: number; status: number }
  | { type: "headers"; streamId: number; flags: number; headerBlock: Buffer }
  | { type: "window_update"; streamId: number; delta: number }
  | { type: "unknown"; frameType: number; flags: number; payload: Buffer };

export class SpdyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpdyProtocolError";
  }
}

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > 0xffffff) throw new RangeError("SPDY frame payload longer than 2^24-1 bytes");
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  out.writeUInt16BE(type, 2);
  out.writeUInt32BE((((flags & 0xff) << 24) >>> 0) | payload.length, 4);
  payload.copy(out, 8);
  return out;
}

function u31(n: number): number {
  return n & 0x7fffffff;
}

/** Encodes one frame to its wire bytes. Header blocks must already be compressed. */
export function encodeFrame(frame: SpdyFrame): Buffer {
  switch (frame.type) {
    case "data": {
      if (frame.data.length > 0xffffff) throw new RangeError("SPDY DATA frame longer than 2^24-1 bytes");
      const out = Buffer.allocUnsafe(8 + frame.data.length);
      out.writeUInt32BE(u31(frame.streamId), 0);
      out.writeUInt32BE((((frame.flags & 0xff) << 24) >>> 0) | frame.data.length, 4);
      frame.data.copy(out, 8);
      return out;
    }
    case "syn_stream": {
      const p = Buffer.allocUnsafe(10);
      p.writeUInt32BE(u31(frame.streamId), 0);
      p.writeUInt32BE(u31(frame.associatedStreamId), 4);
      p[8] = (frame.priority & 0x7) << 5;
      p[9] = frame.slot & 0xff;
      return controlFrame(FrameType.SYN_STREAM, frame.flags, Buffer.concat([p, frame.headerBlock]));
    }
    case "syn_reply":
    case "headers": {
      const p = Buffer.allocUnsafe(4);
      p.writeUInt32BE(u31(frame.streamId), 0);
      const t = frame.type === "syn_reply" ? FrameType.SYN_REPLY : FrameType.HEADERS;
      return controlFrame(t, frame.flags, Buffer.concat([p, frame.headerBlock]));
    }
    case "rst_stream": {
      const p = Buffer.allocUnsafe(8);
      p.writeUInt32BE(u31(frame.streamId), 0);
      p.writeUInt32BE(frame.status >>> 0, 4);
      return controlFrame(FrameType.RST_STREAM, 0, p);
    }
    case "settings": {
      const p = Buffer.allocUnsafe(4 + 8 * frame.entries.length);
      p.writeUInt32BE(frame.entries.length, 0);
      frame.entries.forEach((e, i) => {
        p.writeUInt32BE((((e.flags & 0xff) << 24) >>> 0) | (e.id & 0xffffff), 4 + 8 * i);
        p.writeUInt32BE(e.value >>> 0, 8 + 8 * i);
      });
      return controlFrame(FrameType.SETTINGS, frame.flags, p);
    }
    case "ping": {
      const p = Buffer.allocUnsafe(4);
      p.writeUInt32BE(frame.id >>> 0, 0);
      return controlFrame(FrameType.PING, 0, p);
    }
    case "goaway": {
      const p = Buffer.allocUnsafe(8);
      p.writeUInt32BE(u31(frame.lastGoodStreamId), 0);
      p.writeUInt32BE(frame.status >>> 0, 4);
      return controlFrame(FrameType.GOAWAY, 0, p);
    }
    case "window_update": {
      const p = Buffer.allocUnsafe(8);
      p.writeUInt32BE(u31(frame.streamId), 0);
      p.writeUInt32BE(u31(frame.delta), 4);
      return controlFrame(FrameType.WINDOW_UPDATE, 0, p);
    }
    case "unknown":
      return controlFrame(frame.frameType, frame.flags, frame.payload);
  }
}

function need(payload: Buffer, n: number, what: string): void {
  if (payload.length < n) throw new SpdyProtocolError(`${what} frame too short: ${payload.length} bytes`);
}

function decodeControl(type: number, flags: number, p: Buffer): SpdyFrame {
  switch (type) {
    case FrameType.SYN_STREAM:
      need(p, 10, "SYN_STREAM");
      return {
        type: "syn_stream",
        streamId: u31(p.readUInt32BE(0)),
        associatedStreamId: u31(p.readUInt32BE(4)),
        priority: (p[8] as number) >> 5,
        slot: p[9] as number,
        flags,
        headerBlock: p.subarray(10),
      };
    case FrameType.SYN_REPLY:
      need(p, 4, "SYN_REPLY");
      return { type: "syn_reply", streamId: u31(p.readUInt32BE(0)), flags, headerBlock: p.subarray(4) };
    case FrameType.HEADERS:
      need(p, 4, "HEADERS");
      return { type: "headers", streamId: u31(p.readUInt32BE(0)), flags, headerBlock: p.subarray(4) };
    case FrameType.RST_STREAM:
      need(p, 8, "RST_STREAM");
      return { type: "rst_stream", streamId: u31(p.readUInt32BE(0)), status: p.readUInt32BE(4) };
    case FrameType.SETTINGS: {
      need(p, 4, "SETTINGS");
      const n = p.readUInt32BE(0);
      if (p.length !== 4 + 8 * n)
        throw new SpdyProtocolError(`SETTINGS frame length ${p.length} does not fit ${n} entries`);
      const entries: Array<{ id: number; flags: number; value: number }> = [];
      for (let i = 0; i < n; i++) {
        const w = p.readUInt32BE(4 + 8 * i);
        entries.push({ flags: w >>> 24, id: w & 0xffffff, value: p.readUInt32BE(8 + 8 * i) });
      }
      return { type: "settings", flags, entries };
    }
    case FrameType.PING:
      need(p, 4, "PING");
      return { type: "ping", id: p.readUInt32BE(0) };
    case FrameType.GOAWAY:
      need(p, 8, "GOAWAY");
      return { type: "goaway", lastGoodStreamId: u31(p.readUInt32BE(0)), status: p.readUInt32BE(4) };
    case FrameType.WINDOW_UPDATE:
      need(p, 8, "WINDOW_UPDATE");
      return { type: "window_update", streamId: u31(p.readUInt32BE(0)), delta: u31(p.readUInt32BE(4)) };
    default:
      return { type: "unknown", frameType: type, flags, payload: p };
  }
}

/** Incremental frame parser: feed bytes as they arrive, get whole frames out. */
export class SpdyFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): SpdyFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: SpdyFrame[] = [];
    while (this.buf.length >= 8) {
      const length = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + length) break;
      const head = this.buf.readUInt32BE(0);
      const flags = this.buf[4] as number;
      const payload = Buffer.from(this.buf.subarray(8, 8 + length));
      this.buf = this.buf.subarray(8 + length);
      if (head & 0x80000000) {
        const version = (head >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
        frames.push(decodeControl(head & 0xffff, flags, payload));
      } else {
        frames.push({ type: "data", streamId: u31(head), flags, data: payload });
      }
    }
    return frames;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pendingBytes(): number {
    return this.buf.length;
  }
}

/** Header names are lower-cased; a name with several values carries them NUL-separated. */
export type SpdyHeaders = Record<string, string[]>;

/** Encodes an (uncompressed) SPDY/3 name/value header block. */
export function encodeHeaderBlock(headers: Record<string, string | string[]>): Buffer {
  const parts: Buffer[] = [];
  const entries = Object.entries(headers);
  const count = Buffer.allocUnsafe(4);
  count.writeUInt32BE(entries.length, 0);
  parts.push(count);
  for (const [name, value] of entries) {
    const n = Buffer.from(name.toLowerCase(), "utf8");
    const v = Buffer.from((Array.isArray(value) ? value : [value]).join("\0"), "utf8");
    const nl = Buffer.allocUnsafe(4);
    nl.writeUInt32BE(n.length, 0);
    const vl = Buffer.allocUnsafe(4);
    vl.writeUInt32BE(v.length, 0);
    parts.push(nl, n, vl, v);
  }
  return Buffer.concat(parts);
}

/** Decodes an (uncompressed) SPDY/3 name/value header block. */
export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const fail = (): never => {
    throw new SpdyProtocolError("malformed SPDY header block");
  };
  if (block.length < 4) fail();
  const count = block.readUInt32BE(0);
  let off = 4;
  const out: SpdyHeaders = {};
  for (let i = 0; i < count; i++) {
    if (off + 4 > block.length) fail();
    const nlen = block.readUInt32BE(off);
    off += 4;
    if (nlen === 0 || off + nlen + 4 > block.length) fail();
    const name = block.toString("utf8", off, off + nlen).toLowerCase();
    off += nlen;
    const vlen = block.readUInt32BE(off);
    off += 4;
    if (off + vlen > block.length) fail();
    const values = block.toString("utf8", off, off + vlen).split("\0");
    off += vlen;
    out[name] = [...(out[name] ?? []), ...values];
  }
  return out;
}

/** Runs zlib on a session-long stream, one sync-flushed block at a time, in order. */
class ZlibContext {
  private queue: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;

  constructor(private readonly z: Deflate | Inflate) {
    z.on("error", (err) => {
      this.failed = err;
    });
  }

  process(input: Buffer): Promise<Buffer> {
    const run = (): Promise<Buffer> =>
      new Promise<Buffer>((resolve, reject) => {
        if (this.failed) return reject(this.failed);
        const chunks: Buffer[] = [];
        const onData = (c: Buffer): void => {
          chunks.push(c);
        };
        const onError = (err: Error): void => {
          this.z.off("data", onData);
          reject(err);
        };
        this.z.on("data", onData);
        this.z.once("error", onError);
        this.z.write(input);
        this.z.flush(zc.Z_SYNC_FLUSH, () => {
          this.z.off("data", onData);
          this.z.off("error", onError);
          if (this.failed) reject(this.failed);
          else resolve(Buffer.concat(chunks));
        });
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  close(): void {
    this.z.close();
  }
}

/** Compresses the header blocks one endpoint sends during a session. */
export class HeaderCompressor {
  private readonly ctx = new ZlibContext(createDeflate({ dictionary: SPDY3_DICTIONARY }));
  compress(headers: Record<string, string | string[]>): Promise<Buffer> {
    return this.ctx.process(encodeHeaderBlock(headers));
  }
  close(): void {
    this.ctx.close();
  }
}

/** Decompresses the header blocks one endpoint receives during a session. */
export class HeaderDecompressor {
  private readonly ctx = new ZlibContext(createInflate({ dictionary: SPDY3_DICTIONARY }));
  async decompress(block: Buffer): Promise<SpdyHeaders> {
    if (block.length === 0) return {};
    return decodeHeaderBlock(await this.ctx.process(block));
  }
  close(): void {
    this.ctx.close();
  }
}

/** First value of a header, by lower-case name. */
export function headerValue(headers: SpdyHeaders, name: string): string | undefined {
  return headers[name.toLowerCase()]?.[0];
}

export interface SpdySessionOptions {
  /** "server" streams initiated by the peer have odd IDs, ours even; "client" the reverse. */
  role: "server" | "client";
  /** Called on protocol errors and other diagnostics. */
  onError?: (err: Error) => void;
}

/**
 * One SPDY/3.1 stream: a Duplex whose writable side sends DATA frames (end() sends FIN) and whose readable side
 * yields the peer's DATA. Emits "response" (headers) when the SYN_REPLY of a stream we opened arrives, and
 * "reset" (status) when the peer resets it.
 */
export class SpdyStream extends Duplex {
  sendWindow: number;
  /** Bytes received and delivered but not yet acknowledged by a WINDOW_UPDATE. */
  private unacked = 0;
  private pendingWrite: { chunk: Buffer; callback: (err?: Error | null) => void } | undefined;
  remoteClosed = false;
  localClosed = false;
  replied = false;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
    initialSendWindow: number,
  ) {
    super({ allowHalfOpen: true });
    this.sendWindow = initialSendWindow;
  }

  /** Sends SYN_REPLY for a stream the peer opened. */
  reply(headers: Record<string, string | string[]> = {}, fin = false): Promise<void> {
    this.replied = true;
    if (fin) this.localClosed = true;
    return this.session.sendHeadersFrame("syn_reply", this.id, headers, fin ? FLAG_FIN : 0);
  }

  /** Resets the stream (RST_STREAM) and destroys it locally. */
  reset(status: number = RstStatus.CANCEL): void {
    if (!this.localClosed || !this.remoteClosed)
      this.session.sendFrame({ type: "rst_stream", streamId: this.id, status });
    this.localClosed = true;
    this.remoteClosed = true;
    this.destroy();
  }

  override _read(): void {
    if (this.unacked > 0) {
      this.session.sendFrame({ type: "window_update", streamId: this.id, delta: this.unacked });
      this.unacked = 0;
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.pendingWrite = { chunk, callback };
    this.flushWrite();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.localClosed) {
      this.localClosed = true;
      this.session.sendFrame({ type: "data", streamId: this.id, flags: FLAG_FIN, data: Buffer.alloc(0) });
    }
    this.session.maybeForget(this);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.callback(err ?? new Error("stream destroyed"));
    if (!(this.localClosed && this.remoteClosed) && !this.session.isClosed) {
      this.localClosed = true;
      this.remoteClosed = true;
      this.session.sendFrame({ type: "rst_stream", streamId: this.id, status: RstStatus.CANCEL });
    }
    this.session.forget(this);
    callback(err);
  }

  /** Sends as much of the pending write as the peer's window allows. */
  flushWrite(): void {
    const p = this.pendingWrite;
    if (!p) return;
    if (this.localClosed) {
      this.pendingWrite = undefined;
      p.callback(new Error("SPDY stream already closed for writing"));
      return;
    }
    while (p.chunk.length > 0) {
      const limit = this.session.enforcesFlowControl ? Math.min(this.sendWindow, 32 * 1024) : 32 * 1024;
      if (limit <= 0) return; // resumed by WINDOW_UPDATE
      const piece = p.chunk.subarray(0, limit);
      p.chunk = p.chunk.subarray(piece.length);
      this.sendWindow -= piece.length;
      this.session.sendFrame({ type: "data", streamId: this.id, flags: 0, data: Buffer.from(piece) });
    }
    this.pendingWrite = undefined;
    p.callback();
  }

  /** @internal DATA from the peer. */
  receive(data: Buffer, fin: boolean): void {
    if (data.length > 0) {
      if (this.push(data))
        this.session.sendFrame({ type: "window_update", streamId: this.id, delta: data.length });
      else this.unacked += data.length;
    }
    if (fin) this.remoteFin();
  }

  /** @internal */
  remoteFin(): void {
    if (this.remoteClosed) return;
    this.remoteClosed = true;
    this.push(null);
    this.session.maybeForget(this);
  }
}

/**
 * A SPDY/3.1 session over any byte Duplex (a raw socket after `Upgrade: SPDY/3.1`, or a WebSocket tunnel).
 * Emits "stream" (SpdyStream) for each SYN_STREAM from the peer, "close" when the transport is gone.
 * Answers PINGs, honours SETTINGS initial window and WINDOW_UPDATE, sends GOAWAY on protocol errors.
 */
export class SpdySession extends EventEmitter<{ stream: [SpdyStream]; close: []; goaway: [number] }> {
  private readonly reader = new SpdyFrameReader();
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private outQueue: Promise<void> = Promise.resolve();
  private inQueue: Promise<void> = Promise.resolve();
  private lastPeerStreamId = 0;
  private nextOwnStreamId: number;
  private nextPingId: number;
  private initialSendWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  private closed = false;
  private goingAway = false;
  private readonly pings = new Map<number, () => void>();
  /**
   * Whether the peer takes part in flow control. moby/spdystream (kubectl) neither sends WINDOW_UPDATE nor
   * checks windows, so our send windows are only enforced once the peer has sent a WINDOW_UPDATE or an
   * initial-window SETTINGS, i.e. shown that it will replenish them.
   */
  enforcesFlowControl = false;

  constructor(
    private readonly transport: Duplex,
    private readonly options: SpdySessionOptions,
  ) {
    super();
    this.nextOwnStreamId = options.role === "server" ? 2 : 1;
    this.nextPingId = options.role === "server" ? 2 : 1;
    transport.on("data", (chunk: Buffer) => this.onData(chunk));
    transport.on("end", () => {
      // The peer is gone: no stream can make progress any more.
      this.shutdown();
      transport.end();
    });
    transport.on("close", () => this.shutdown());
    transport.on("error", (err) => {
      this.options.onError?.(err);
      this.shutdown();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Queues an encoded frame; frames go out in the order they were queued. */
  sendFrame(frame: SpdyFrame): void {
    this.enqueue(() => encodeFrame(frame));
  }

  /** @internal Queues a SYN_STREAM/SYN_REPLY/HEADERS whose header block is compressed in session order. */
  sendHeadersFrame(
    type: "syn_reply" | "headers",
    streamId: number,
    headers: Record<string, string | string[]>,
    flags: number,
  ): Promise<void> {
    const block = this.compressor.compress(headers);
    return this.enqueue(async () => encodeFrame({ type, streamId, flags, headerBlock: await block }));
  }

  private enqueue(make: () => Buffer | Promise<Buffer>): Promise<void> {
    const next = this.outQueue.then(async () => {
      const bytes = await make();
      if (this.closed || this.transport.destroyed || !this.transport.writable) return;
      this.transport.write(bytes);
    });
    this.outQueue = next.catch((err: unknown) => {
      this.options.onError?.(err as Error);
    });
    return this.outQueue;
  }

  /** Opens a stream (SYN_STREAM); resolves on the peer's SYN_REPLY with the stream and the reply headers. */
  async openStream(
    headers: Record<string, string | string[]>,
    opts: { fin?: boolean; timeoutMs?: number } = {},
  ): Promise<{ stream: SpdyStream; headers: SpdyHeaders }> {
    if (this.closed || this.goingAway) throw new Error("SPDY session is closed");
    const id = this.nextOwnStreamId;
    this.nextOwnStreamId += 2;
    const stream = new SpdyStream(this, id, {}, this.initialSendWindow);
    if (opts.fin) stream.localClosed = true;
    this.streams.set(id, stream);
    const block = this.compressor.compress(headers);
    void this.enqueue(async () =>
      encodeFrame({
        type: "syn_stream",
        streamId: id,
        associatedStreamId: 0,
        priority: 0,
        slot: 0,
        flags: opts.fin ? FLAG_FIN : 0,
        headerBlock: await block,
      }),
    );
    const reply = await new Promise<SpdyHeaders>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no SYN_REPLY for stream ${id}`)),
        opts.timeoutMs ?? 30_000,
      );
      stream.once("response", (h: SpdyHeaders) => {
        clearTimeout(timer);
        resolve(h);
      });
      stream.once("reset", (status: number) => {
        clearTimeout(timer);
        reject(new Error(`stream ${id} reset by peer with status ${status}`));
      });
      stream.once("close", () => {
        clearTimeout(timer);
        reject(new Error(`stream ${id} closed before its reply`));
      });
    });
    return { stream, headers: reply };
  }

  /** Sends a PING and resolves when the peer echoes it. */
  ping(timeoutMs = 10_000): Promise<void> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error("SPDY ping timed out"));
      }, timeoutMs);
      this.pings.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
      this.sendFrame({ type: "ping", id });
    });
  }

  /** Sends GOAWAY and ends the transport once queued frames are out. */
  async goAway(status: number = GoAwayStatus.OK): Promise<void> {
    if (this.closed) return;
    this.goingAway = true;
    this.sendFrame({ type: "goaway", lastGoodStreamId: this.lastPeerStreamId, status });
    await this.outQueue;
    this.transport.end();
  }

  /** Tears the session down: every stream is destroyed, the transport too. */
  destroy(): void {
    this.shutdown();
    this.transport.destroy();
  }

  /** @internal */
  forget(stream: SpdyStream): void {
    this.streams.delete(stream.id);
  }

  /** @internal */
  maybeForget(stream: SpdyStream): void {
    if (stream.localClosed && stream.remoteClosed) this.streams.delete(stream.id);
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.destroy();
    this.streams.clear();
    this.compressor.close();
    this.decompressor.close();
    this.emit("close");
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: SpdyFrame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.protocolError(err as Error);
      return;
    }
    for (const frame of frames) {
      this.inQueue = this.inQueue
        .then(() => this.handleFrame(frame))
        .catch((err: unknown) => this.protocolError(err as Error));
    }
  }

  private protocolError(err: Error): void {
    if (this.closed) return;
    this.options.onError?.(err);
    void this.goAway(GoAwayStatus.PROTOCOL_ERROR).finally(() => {
      const t = setTimeout(() => this.destroy(), 1_000);
      t.unref();
    });
  }

  private isPeerStreamId(id: number): boolean {
    return this.options.role === "server" ? id % 2 === 1 : id % 2 === 0 && id !== 0;
  }

  private async handleFrame(frame: SpdyFrame): Promise<void> {
    if (this.closed) return;
    switch (frame.type) {
      case "syn_stream": {
        // Decompress first: the compression context must see every header block, even of refused streams.
        const headers = await this.decompressor.decompress(frame.headerBlock);
        if (!this.isPeerStreamId(frame.streamId) || frame.streamId <= this.lastPeerStreamId) {
          this.sendFrame({ type: "rst_stream", streamId: frame.streamId, status: RstStatus.PROTOCOL_ERROR });
          return;
        }
        this.lastPeerStreamId = frame.streamId;
        if (this.goingAway) {
          this.sendFrame({ type: "rst_stream", streamId: frame.streamId, status: RstStatus.REFUSED_STREAM });
          return;
        }
        const stream = new SpdyStream(this, frame.streamId, headers, this.initialSendWindow);
        this.streams.set(frame.streamId, stream);
        if (frame.flags & FLAG_UNIDIRECTIONAL) stream.localClosed = true;
        if (frame.flags & FLAG_FIN) stream.remoteFin();
        this.emit("stream", stream);
        return;
      }
      case "syn_reply": {
        const headers = await this.decompressor.decompress(frame.headerBlock);
        const stream = this.streams.get(frame.streamId);
        if (!stream) {
          this.sendFrame({ type: "rst_stream", streamId: frame.streamId, status: RstStatus.INVALID_STREAM });
          return;
        }
        stream.emit("response", headers);
        if (frame.flags & FLAG_FIN) stream.remoteFin();
        return;
      }
      case "headers": {
        await this.decompressor.decompress(frame.headerBlock);
        const stream = this.streams.get(frame.streamId);
        if (stream && frame.flags & FLAG_FIN) stream.remoteFin();
        return;
      }
      case "data": {
        const stream = this.streams.get(frame.streamId);
        if (!stream || stream.remoteClosed) {
          this.sendFrame({
            type: "rst_stream",
            streamId: frame.streamId,
            status: stream ? RstStatus.STREAM_ALREADY_CLOSED : RstStatus.INVALID_STREAM,
          });
          return;
        }
        stream.receive(frame.data, (frame.flags & FLAG_FIN) !== 0);
        return;
      }
      case "rst_stream": {
        const stream = this.streams.get(frame.streamId);
        if (stream) {
          stream.remoteClosed = true;
          stream.localClosed = true;
          stream.emit("reset", frame.status);
          stream.destroy();
        }
        return;
      }
      case "settings": {
        for (const e of frame.entries) {
          if (e.id === SETTINGS_INITIAL_WINDOW_SIZE && e.value <= MAX_WINDOW) {
            const delta = e.value - this.initialSendWindow;
            this.initialSendWindow = e.value;
            this.enforcesFlowControl = true;
            for (const s of this.streams.values()) {
              s.sendWindow += delta;
              s.flushWrite();
            }
          }
        }
        return;
      }
      case "window_update": {
        this.enforcesFlowControl = true;
        const stream = this.streams.get(frame.streamId);
        if (stream) {
          stream.sendWindow = Math.min(stream.sendWindow + frame.delta, MAX_WINDOW);
          stream.flushWrite();
        }
        return;
      }
      case "ping": {
        const waiter = this.pings.get(frame.id);
        if (waiter && (frame.id % 2 === 0) === (this.options.role === "server")) {
          this.pings.delete(frame.id);
          waiter();
        } else {
          this.sendFrame({ type: "ping", id: frame.id });
        }
        return;
      }
      case "goaway": {
        this.goingAway = true;
        this.emit("goaway", frame.status);
        return;
      }
      case "unknown":
        // SPDY/3: unknown control frames must be ignored.
        return;
    }
  }
}
