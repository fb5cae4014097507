/**
 * The API server's rewriting transport (apimachinery `util/proxy/transport.go`) and CORS removal
 * (`corsRemovingTransport`), as reusable pieces: rewrite a backend's Location header and the
 * links of its HTML pages so that they point back through the proxy's URL prefix.
 *
 * `rewritingDispatcher(dispatcher, options)` composes them around any undici dispatcher, so it
 * works with `forwardHttp` unchanged: headers are rewritten as they arrive, `text/html` bodies are
 * buffered (up to `maxHtmlBytes`), rewritten and sent with an exact Content-Length.
 *
 * undici is loaded by the first `rewritingDispatcher()` only, so that
 * importing @kproxy/transport does not cost a program on the lean path undici's memory.
 */
import { createRequire } from "node:module";
import { deflateRawSync, gunzipSync, gzipSync, inflateRawSync, constants as zlibConstants } from "node:zlib";
import { errorMessage, KproxyError } from "@kproxy/core";
import type { Dispatcher } from "undici";
import { escapedPath, formatGoUrl, type GoUrl, joinPath, parseGoUrl } from "./gourl.js";
import { rewriteHtml } from "./html.js";

/** What the rewriting transport knows about one proxied request. */
export interface RewriteContext {
  /** The Transport's Scheme (the incoming request URL's: normally ""). */
  scheme?: string;
  /** The Transport's Host (the incoming request URL's: normally ""). */
  host?: string;
  /** The proxy's URL prefix in front of the backend path, e.g. `/api/v1/namespaces/ns/services/web:http/proxy`. */
  pathPrepend: string;
  /** `host:port` of the backend (the request URL's host: sourceURL.Host). */
  backendHost: string;
  /** The Host header sent to the backend (sourceRequestHost). */
  requestHost: string;
}

/** Error codes thrown by the rewriting transport (the cause of forwardHttp's error when it fails). */
export const REWRITE_ERROR_CODES = Object.freeze({
  /** The backend's Location header did not parse: the API server answers 500 InternalError. */
  locationInvalid: "REWRITE_LOCATION_INVALID",
  /** The HTML body could not be decoded (bad gzip/deflate): the API server answers 500. */
  htmlFailed: "REWRITE_HTML_FAILED",
} as const);

/** Headers the API server's corsRemovingTransport deletes from backend responses. */
export const CORS_RESPONSE_HEADERS: readonly string[] = Object.freeze([
  "access-control-allow-credentials",
  "access-control-allow-headers",
  "access-control-allow-methods",
  "access-control-allow-origin",
]);

/** Deletes the CORS response headers (lower-case keys, as undici gives them). Mutates and returns. */
export function stripCorsHeaders<H extends Record<string, unknown>>(headers: H): H {
  for (const name of CORS_RESPONSE_HEADERS) if (name in headers) delete headers[name];
  return headers;
}

/**
 * `X-Forwarded-Uri` as the rewriting transport sets it: path.Join(pathPrepend, escaped backend
 * path), with the backend path's trailing "/" kept. No query.
 */
export function forwardedUri(pathPrepend: string, backendPath: string): string {
  const joined = joinPath(pathPrepend, escapedPath({ path: backendPath, rawPath: "" }));
  return backendPath.endsWith("/") && !joined.endsWith("/") ? `${joined}/` : joined;
}

/**
 * Upstream's `rewriteURL`: a URL on the backend (or on the proxy's own host) with an absolute
 * path gets the proxy prefix (unless it already has it) and the Transport's scheme and host;
 * links to other hosts and relative links are returned unchanged (serialised as Go does).
 */
export function rewriteUrl(u: GoUrl, ctx: RewriteContext): string {
  const scheme = ctx.scheme ?? "";
  const host = ctx.host ?? "";
  const differentHost = u.host !== "" && u.host !== ctx.backendHost && u.host !== ctx.requestHost;
  if (differentHost || !u.path.startsWith("/")) return formatGoUrl(u);
  const out: GoUrl = { ...u };
  if (!(u.host === ctx.requestHost && scheme === "" && host === "")) {
    out.scheme = scheme;
    out.host = host;
    if (host === "") out.userinfo = undefined;
  }
  if (u.path.startsWith(ctx.pathPrepend)) return formatGoUrl(out);
  let path = joinPath(ctx.pathPrepend, u.path);
  if (u.path.endsWith("/") && !path.endsWith("/")) path += "/";
  out.path = path;
  out.rawPath = "";
  return formatGoUrl(out);
}

/**
 * The Location header as the rewriting transport returns it. Throws REWRITE_LOCATION_INVALID with
 * upstream's message (`error trying to parse Location header: …`) when it does not parse.
 */
export function rewriteLocation(location: string, ctx: RewriteContext): string {
  let parsed: GoUrl;
  try {
    parsed = parseGoUrl(location);
  } catch (err) {
    throw new KproxyError(
      REWRITE_ERROR_CODES.locationInvalid,
      `error trying to parse Location header: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return rewriteUrl(parsed, ctx);
}

/** An HTML attribute value rewritten as upstream does; undefined (keep it) when it does not parse. */
export function rewriteLink(value: string, ctx: RewriteContext): string | undefined {
  let parsed: GoUrl;
  try {
    parsed = parseGoUrl(value);
  } catch {
    return undefined;
  }
  return rewriteUrl(parsed, ctx);
}

/** The media type of a Content-Type value as upstream compares it (case-sensitive, parameters cut). */
export function mediaTypeOf(contentType: string | undefined): string {
  if (contentType === undefined) return "";
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim();
}

/** Content-Encodings the HTML rewriter handles; others are passed through untouched. */
export function isRewritableEncoding(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === "" || encoding === "gzip" || encoding === "deflate";
}

/**
 * Rewrites the links of a whole HTML body in the given Content-Encoding ("" / "gzip" / raw
 * "deflate"), re-encoding it the same way (or not at all with `decodeOnly`). Throws
 * REWRITE_HTML_FAILED when the body does not decode.
 */
export function rewriteHtmlBody(
  body: Buffer,
  encoding: string | undefined,
  ctx: RewriteContext,
  options: { decodeOnly?: boolean } = {},
): Buffer {
  let plain: Buffer;
  try {
    plain = encoding === "gzip" ? gunzipSync(body) : encoding === "deflate" ? inflateRawSync(body) : body;
  } catch (err) {
    throw new KproxyError(
      REWRITE_ERROR_CODES.htmlFailed,
      `error decoding ${encoding} body: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  const doc = plain.toString("latin1");
  const rewritten = Buffer.from(
    rewriteHtml(doc, (value) => rewriteLink(value, ctx)),
    "latin1",
  );
  if (options.decodeOnly === true) return rewritten;
  if (encoding === "gzip") return gzipSync(rewritten);
  if (encoding === "deflate") return deflateRawSync(rewritten, { level: zlibConstants.Z_BEST_COMPRESSION });
  return rewritten;
}

export interface RewritingOptions {
  context: RewriteContext;
  /** Remove the CORS response headers (default true, as the API server). */
  stripCors?: boolean;
  /** Rewrite text/html bodies (default true). Location is always rewritten. */
  html?: boolean;
  /**
   * Bodies larger than this are passed through unrewritten (the API server buffers without a
   * limit). Default 16 MiB.
   */
  maxHtmlBytes?: number;
  /**
   * True when the proxy itself asked for gzip (the client did not): a rewritten gzip page is then
   * delivered decompressed, without Content-Encoding, so forwardHttp does not decompress it again.
   */
  requestedGzip?: boolean;
  /** Called when a page is passed through unrewritten (too large, unknown encoding). */
  onSkip?: (reason: string) => void;
}

type Headers = Record<string, string | string[] | undefined>;

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

const DEFAULT_MAX_HTML_BYTES = 16 * 1024 * 1024;

class RewritingHandler implements Dispatcher.DispatchHandler {
  private buffering = false;
  private chunks: Buffer[] = [];
  private size = 0;
  private status = 0;
  private headers: Headers = {};
  private statusMessage: string | undefined;
  private failed = false;

  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly options: RewritingOptions,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    socket: import("node:stream").Duplex,
  ): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers as never, socket);
  }

  onResponseStarted(): void {
    this.inner.onResponseStarted?.();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) {
      this.inner.onResponseStart?.(controller, statusCode, headers as never, statusMessage);
      return;
    }
    if (this.options.stripCors !== false) stripCorsHeaders(headers);
    const location = firstHeader(headers.location);
    if (location !== undefined && location !== "") {
      try {
        headers.location = rewriteLocation(location, this.options.context);
      } catch (err) {
        this.fail(controller, err as Error);
        return;
      }
      this.inner.onResponseStart?.(controller, statusCode, headers as never, statusMessage);
      return;
    }
    if (this.options.html !== false && mediaTypeOf(firstHeader(headers["content-type"])) === "text/html") {
      const encoding = firstHeader(headers["content-encoding"]);
      if (isRewritableEncoding(encoding)) {
        this.buffering = true;
        this.status = statusCode;
        this.headers = headers;
        this.statusMessage = statusMessage;
        return;
      }
      this.options.onSkip?.(`content encoding ${JSON.stringify(encoding)} is not rewritten`);
    }
    this.inner.onResponseStart?.(controller, statusCode, headers as never, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.failed) return;
    if (!this.buffering) {
      this.inner.onResponseData?.(controller, chunk);
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > (this.options.maxHtmlBytes ?? DEFAULT_MAX_HTML_BYTES)) {
      // Too large to buffer: stream it as it is from here on.
      this.options.onSkip?.(`page larger than ${this.options.maxHtmlBytes ?? DEFAULT_MAX_HTML_BYTES} bytes`);
      this.buffering = false;
      const buffered = Buffer.concat(this.chunks);
      this.chunks = [];
      this.inner.onResponseStart?.(controller, this.status, this.headers as never, this.statusMessage);
      this.inner.onResponseData?.(controller, buffered);
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Headers): void {
    if (this.failed) return;
    if (!this.buffering) {
      this.inner.onResponseEnd?.(controller, trailers as never);
      return;
    }
    this.buffering = false;
    const encoding = firstHeader(this.headers["content-encoding"]) ?? "";
    const decodeOnly = encoding === "gzip" && this.options.requestedGzip === true;
    let body: Buffer;
    try {
      body = rewriteHtmlBody(Buffer.concat(this.chunks), encoding, this.options.context, { decodeOnly });
    } catch (err) {
      this.chunks = [];
      this.failed = true;
      this.inner.onResponseError?.(controller, err as Error);
      return;
    }
    this.chunks = [];
    if (decodeOnly) delete this.headers["content-encoding"];
    this.headers["content-length"] = String(body.length);
    this.inner.onResponseStart?.(controller, this.status, this.headers as never, this.statusMessage);
    if (body.length > 0) this.inner.onResponseData?.(controller, body);
    this.inner.onResponseEnd?.(controller, trailers as never);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.inner.onResponseError?.(controller, error);
  }

  private fail(controller: Dispatcher.DispatchController, error: Error): void {
    this.failed = true;
    this.inner.onResponseError?.(controller, error);
    controller.abort(error);
  }
}

type RewritingDispatcherClass = new (inner: Dispatcher, options: RewritingOptions) => Dispatcher;
let rewritingClass: RewritingDispatcherClass | undefined;

/** Defines the class on first use, on the one undici of the program (CommonJS: require and import share it). */
function rewritingDispatcherClass(): RewritingDispatcherClass {
  if (rewritingClass !== undefined) return rewritingClass;
  const undici = createRequire(import.meta.url)("undici") as typeof import("undici");
  class RewritingDispatcher extends undici.Dispatcher {
    constructor(
      private readonly inner: Dispatcher,
      private readonly options: RewritingOptions,
    ) {
      super();
    }

    override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      return this.inner.dispatch(options, new RewritingHandler(handler, this.options));
    }

    override close(): Promise<void>;
    override close(callback: () => void): void;
    override close(callback?: () => void): Promise<void> | void {
      // The inner dispatcher is shared: closing one request's wrapper does not close it.
      if (callback) callback();
      else return Promise.resolve();
    }

    override destroy(): Promise<void>;
    override destroy(err: Error | null): Promise<void>;
    override destroy(callback: () => void): void;
    override destroy(err: Error | null, callback: () => void): void;
    override destroy(a?: unknown, b?: unknown): Promise<void> | void {
      const callback = typeof a === "function" ? a : typeof b === "function" ? b : undefined;
      if (callback) (callback as () => void)();
      else return Promise.resolve();
    }
  }
  rewritingClass = RewritingDispatcher;
  return rewritingClass;
}

/**
 * A dispatcher (an undici Dispatcher) for one request that applies the rewriting transport to the
 * response around `dispatcher`: CORS headers removed, Location rewritten, text/html bodies (plain,
 * gzip, raw deflate) rewritten. Failures reach the handler's onResponseError with a KproxyError of
 * REWRITE_ERROR_CODES. undici is loaded by the first call.
 */
export function rewritingDispatcher(dispatcher: Dispatcher, options: RewritingOptions): Dispatcher {
  return new (rewritingDispatcherClass())(dispatcher, options);
}
