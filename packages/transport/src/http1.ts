/**
 * A small, strict HTTP/1.x message-head parser and chunked-body scanner for the lean proxy byte
 * path (fast-http.ts). Heads are parsed once they are complete (bytes may arrive split anywhere);
 * bodies are never buffered: the chunked scanner walks the raw bytes to find where the body ends
 * (pass-through) or hands out the payload slices (decoding).
 */

/** Why a head could not be parsed; `status` is what a server answers. */
export class HttpParseError extends Error {
  constructor(
    readonly status: 400 | 431 | 501 | 505 | 502,
    message: string,
  ) {
    super(message);
    this.name = "HttpParseError";
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: no control characters except HTAB (obs-text, 0x80–0xff, is allowed). */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** Request targets: visible ASCII and obs-text, no spaces or controls. */
const BAD_TARGET = /[\x00-\x20\x7f]/;

/**
 * Looks for the end of a message head (an empty line, CRLF or bare LF) in `buf` from `from`.
 * Returns the index just past the empty line, or -1.
 */
export function findHeadEnd(buf: Buffer, from: number): number {
  let i = buf.indexOf(10, from);
  while (i >= 0) {
    const next = buf[i + 1];
    if (next === 10) return i + 2;
    if (next === 13 && buf[i + 2] === 10) return i + 3;
    if (next === undefined || (next === 13 && i + 2 >= buf.length)) return -1;
    i = buf.indexOf(10, i + 1);
  }
  return -1;
}

/** Bytes of leading empty lines (RFC 9112 §2.2: a server ignores CRLFs before a request line). */
export function leadingEmptyLines(buf: Buffer, from: number): number {
  let i = from;
  while (i < buf.length && (buf[i] === 13 || buf[i] === 10)) i++;
  return i - from;
}

export interface RequestHead {
  method: string;
  /** The request target exactly as sent ("/api?x=1", "*", "http://host/p", "host:443"). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x). */
  minor: number;
  /** name, value, name, value… as sent (values trimmed). */
  headers: string[];
}

export interface ResponseHead {
  status: number;
  minor: number;
  headers: string[];
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
  }
  return lines;
}

function parseFields(lines: string[], out: string[], forResponse: boolean): void {
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue; // the terminating empty line(s)
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) {
      // obs-fold: rejected by Go and Node for requests; joined for responses (RFC 9112 §5.2).
      if (forResponse && out.length > 0) {
        out[out.length - 1] = `${out[out.length - 1]} ${line.trim()}`;
        continue;
      }
      throw new HttpParseError(400, "malformed MIME header line");
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpParseError(400, `malformed MIME header line: ${line.slice(0, 64)}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name))
      throw new HttpParseError(400, `invalid header name ${JSON.stringify(name.slice(0, 64))}`);
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) throw new HttpParseError(400, `invalid header value for ${name}`);
    out.push(name, value);
  }
}

/** Parses a request head (`head` ends with its empty line). Throws HttpParseError. */
export function parseRequestHead(head: string): RequestHead {
  const lines = splitLines(head);
  const line = lines[0] as string;
  const sp1 = line.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : line.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0) throw new HttpParseError(400, "malformed HTTP request");
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new HttpParseError(400, "invalid method");
  if (target === "" || BAD_TARGET.test(target)) throw new HttpParseError(400, "malformed HTTP request");
  const minor = parseVersion(version);
  if (minor < 0) {
    if (/^HTTP\/\d+\.\d+$/.test(version)) throw new HttpParseError(505, "unsupported protocol version");
    throw new HttpParseError(400, "malformed HTTP version");
  }
  const headers: string[] = [];
  parseFields(lines, headers, false);
  return { method, target, minor, headers };
}

/** Parses a response head. Throws HttpParseError (status 502: the upstream is at fault). */
export function parseResponseHead(head: string): ResponseHead {
  const lines = splitLines(head);
  const line = lines[0] as string;
  const minor = parseVersion(line.slice(0, 8));
  const code = line.slice(9, 12);
  if (
    minor < 0 ||
    line.charCodeAt(8) !== 32 ||
    !/^\d{3}$/.test(code) ||
    (line.length > 12 && line.charCodeAt(12) !== 32)
  ) {
    throw new HttpParseError(502, `malformed HTTP response ${JSON.stringify(line.slice(0, 64))}`);
  }
  const headers: string[] = [];
  try {
    parseFields(lines, headers, true);
  } catch (err) {
    throw new HttpParseError(502, (err as Error).message);
  }
  return { status: Number(code), minor, headers };
}

function parseVersion(v: string): number {
  if (v.length !== 8 || !v.startsWith("HTTP/1.")) return -1;
  const c = v.charCodeAt(7);
  if (c < 48 || c > 57) return -1;
  return c - 48;
}

/** How a message body is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "eof" };

const NONE: BodyFraming = Object.freeze({ kind: "none" });
const CHUNKED: BodyFraming = Object.freeze({ kind: "chunked" });
const EOF: BodyFraming = Object.freeze({ kind: "eof" });
const DIGITS = /^\d{1,15}$/;

/** Content-Length and Transfer-Encoding of a header list, validated. Throws HttpParseError (400/501). */
export function bodyFraming(headers: readonly string[], isRequest: boolean): BodyFraming {
  let length: string | undefined;
  let te: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const n = name.length;
    if (n === 14 && name.toLowerCase() === "content-length") {
      const v = headers[i + 1] as string;
      // "5, 5" and repeated identical values are accepted, as Go does.
      for (const part of v.split(",")) {
        const p = part.trim();
        if (!DIGITS.test(p))
          throw new HttpParseError(400, `bad Content-Length ${JSON.stringify(v.slice(0, 32))}`);
        if (length !== undefined && length !== p) throw new HttpParseError(400, "conflicting Content-Length");
        length = p;
      }
    } else if (n === 17 && name.toLowerCase() === "transfer-encoding") {
      const v = (headers[i + 1] as string).toLowerCase();
      te = te === undefined ? v : `${te},${v}`;
    }
  }
  if (te !== undefined) {
    const codings = te
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    if (codings.length === 0 || codings[codings.length - 1] !== "chunked") {
      if (isRequest) throw new HttpParseError(501, "unsupported transfer encoding");
      return EOF; // a response that is not chunked at the end is read until close
    }
    if (isRequest && codings.length !== 1) throw new HttpParseError(501, "unsupported transfer encoding");
    if (isRequest && length !== undefined) {
      throw new HttpParseError(400, "both Transfer-Encoding and Content-Length");
    }
    return CHUNKED;
  }
  if (length !== undefined) {
    const n = Number(length);
    return n === 0 ? NONE : { kind: "length", length: n };
  }
  return isRequest ? NONE : EOF;
}

// Chunked scanner states.
const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER = 6;
const S_TRAILER_LF = 7;
const S_TRAILER_START = 8;
const S_DONE = 9;

const MAX_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;

/** Payload bytes found while scanning: `buf[start, end)`. */
export type ChunkPayload = (buf: Buffer, start: number, end: number) => void;

/**
 * Walks a chunked body (RFC 9112 §7.1) across arbitrary splits. `scan` returns the index just
 * past the body's end (the last CRLF of the trailer section) once it is reached, else -1, and
 * reports payload slices to `onPayload` when given. Throws HttpParseError on malformed framing.
 */
export class ChunkedScanner {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;

  get done(): boolean {
    return this.state === S_DONE;
  }

  reset(): void {
    this.state = S_SIZE;
    this.size = 0;
    this.digits = 0;
    this.lineBytes = 0;
    this.trailerBytes = 0;
  }

  scan(buf: Buffer, start: number, onPayload?: ChunkPayload): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case S_DATA: {
          const take = Math.min(this.size, n - i);
          if (onPayload !== undefined && take > 0) onPayload(buf, i, i + take);
          i += take;
          this.size -= take;
          if (this.size === 0) this.state = S_DATA_CR;
          continue;
        }
        case S_SIZE: {
          const c = buf[i] as number;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 15) throw new HttpParseError(400, "chunk size too large");
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) {
            throw new HttpParseError(400, "invalid chunk size");
          } else if (c === 13) {
            this.state = S_SIZE_LF;
          } else if (c === 10) {
            this.endSizeLine();
          } else if (c === 59 /* ; */ || c === 32 || c === 9) {
            this.state = S_EXT;
            this.lineBytes = 0;
          } else throw new HttpParseError(400, "invalid chunk size");
          i++;
          continue;
        }
        case S_EXT: {
          const lf = buf.indexOf(10, i);
          const end = lf < 0 ? n : lf;
          for (let k = i; k < end; k++) {
            const c = buf[k] as number;
            if ((c < 32 && c !== 9 && c !== 13) || c === 127)
              throw new HttpParseError(400, "invalid chunk extension");
          }
          this.lineBytes += end - i;
          if (this.lineBytes > MAX_LINE) throw new HttpParseError(400, "chunk extension too long");
          if (lf < 0) return -1;
          i = lf + 1;
          this.endSizeLine();
          continue;
        }
        case S_SIZE_LF:
          if (buf[i] !== 10) throw new HttpParseError(400, "invalid chunk size line");
          i++;
          this.endSizeLine();
          continue;
        case S_DATA_CR: {
          const c = buf[i];
          i++;
          if (c === 13) this.state = S_DATA_LF;
          else if (c === 10) this.state = S_SIZE;
          else throw new HttpParseError(400, "missing CRLF after chunk data");
          continue;
        }
        case S_DATA_LF:
          if (buf[i] !== 10) throw new HttpParseError(400, "missing CRLF after chunk data");
          i++;
          this.state = S_SIZE;
          continue;
        case S_TRAILER_START: {
          const c = buf[i];
          i++;
          if (c === 13) this.state = S_TRAILER_LF;
          else if (c === 10) {
            this.state = S_DONE;
            return i;
          } else {
            this.state = S_TRAILER;
            this.trailerBytes++;
          }
          continue;
        }
        case S_TRAILER: {
          const lf = buf.indexOf(10, i);
          const end = lf < 0 ? n : lf + 1;
          this.trailerBytes += end - i;
          if (this.trailerBytes > MAX_TRAILERS) throw new HttpParseError(400, "trailers too large");
          i = end;
          if (lf >= 0) this.state = S_TRAILER_START;
          continue;
        }
        case S_TRAILER_LF:
          if (buf[i] !== 10) throw new HttpParseError(400, "malformed trailer");
          i++;
          this.state = S_DONE;
          return i;
        default:
          return i;
      }
    }
    return this.state === S_DONE ? i : -1;
  }

  private endSizeLine(): void {
    this.digits = 0;
    if (this.size === 0) {
      this.state = S_TRAILER_START;
      this.trailerBytes = 0;
    } else this.state = S_DATA;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** The lower-case tokens of every Connection header in a flat list, or undefined when none. */
export function connectionTokensOf(headers: readonly string[]): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== "connection") continue;
    for (const part of (headers[i + 1] as string).split(",")) {
      const t = part.trim().toLowerCase();
      if (t === "") continue;
      out ??= new Set();
      out.add(t);
    }
  }
  return out;
}

/** Go's http.StatusText, with Go's fallback for unknown codes. */
export function statusLine(status: number): string {
  const text = STATUS_TEXT[status];
  return text !== undefined
    ? `HTTP/1.1 ${status} ${text}\r\n`
    : `HTTP/1.1 ${status} status code ${status}\r\n`;
}

const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  305: "Use Proxy",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Request Entity Too Large",
  414: "Request URI Too Long",
  415: "Unsupported Media Type",
  416: "Requested Range Not Satisfiable",
  417: "Expectation Failed",
  418: "I'm a teapot",
  421: "Misdirected Request",
  422: "Unprocessable Entity",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  510: "Not Extended",
  511: "Network Authentication Required",
};
