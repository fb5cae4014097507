import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { createGunzip, type Gunzip, constants as zlibConstants } from "node:zlib";
import type { KproxyError } from "@kproxy/core";
import type { Dispatcher } from "undici";
import { upstreamError } from "./errors.js";
import { type FlatHeaders, filterResponseHeaders } from "./headers.js";

/** One request to forward. Reuse the `dispatcher` (an undici Agent or Pool) across requests. */
export interface ForwardRequest {
  dispatcher: Dispatcher;
  /** Upstream origin, e.g. "https://10.0.0.1:6443". */
  origin: string;
  /** "host:port" of the upstream, used in error messages (Go's `dial tcp <target>: ...`). */
  target: string;
  method: string;
  /** Path and query as sent upstream ("/api/v1/pods?watch=1"). */
  path: string;
  /** Upstream headers (see buildUpstreamHeaders), including Host. */
  headers: FlatHeaders;
  /** The request body, or null for none. Streamed with backpressure. */
  body: Readable | null;
  /** True when the proxy asked for gzip on the client's behalf: a gzip response is decompressed. */
  requestedGzip: boolean;
  /**
   * Called when the upstream fails before any response byte reached the client. It must answer
   * on `res` (kubectl: 500 text). After headers were sent, a failure aborts the connection instead.
   */
  onError: (error: KproxyError, res: ServerResponse) => void;
}

/** What happened, for access logs and metrics. */
export interface ForwardResult {
  /** Status sent to the client (0 when the client went away before any). */
  status: number;
  /** Response body bytes received from upstream. */
  upstreamBytes: number;
  /** Set when the upstream failed or the exchange was cut short. */
  error?: KproxyError;
  /** True when the client disconnected before the response was complete. */
  clientAborted: boolean;
}

const GUNZIP_OPTIONS = { flush: zlibConstants.Z_SYNC_FLUSH, finishFlush: zlibConstants.Z_SYNC_FLUSH };

class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private gunzip: Gunzip | undefined;
  private upstreamDone = false;
  private settled = false;
  private status = 0;
  private bytes = 0;
  private error: KproxyError | undefined;
  private clientAborted = false;
  private readonly resumeUpstream = () => this.controller?.resume();

  constructor(
    private readonly request: ForwardRequest,
    private readonly res: ServerResponse,
    private readonly resolve: (result: ForwardResult) => void,
  ) {
    res.once("close", this.onClientClose);
  }

  private readonly onClientClose = () => {
    if (!this.upstreamDone) {
      this.clientAborted = !this.res.writableFinished;
      this.upstreamDone = true;
      this.controller?.abort(new Error("client disconnected"));
      this.gunzip?.destroy();
    }
    this.settle();
  };

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    const result: ForwardResult = {
      status: this.status,
      upstreamBytes: this.bytes,
      clientAborted: this.clientAborted,
    };
    if (this.error !== undefined) result.error = this.error;
    this.resolve(result);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.upstreamDone) controller.abort(new Error("client disconnected"));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.controller = controller;
    if (statusCode < 200) return; // informational responses are not relayed
    const encoding = headers["content-encoding"];
    const decompress =
      this.request.requestedGzip && typeof encoding === "string" && encoding.toLowerCase() === "gzip";
    filterResponseHeaders(headers, decompress);
    const res = this.res;
    if (res.destroyed) return;
    this.status = statusCode;
    res.writeHead(statusCode, headers as Record<string, string | string[]>);
    // Streaming (unknown length) responses: send headers now, and every chunk as it comes.
    if (headers["content-length"] === undefined) res.flushHeaders();
    if (decompress) {
      const gunzip = createGunzip(GUNZIP_OPTIONS);
      this.gunzip = gunzip;
      gunzip.on("error", (err) => {
        this.error = upstreamError(err, this.request.target);
        this.upstreamDone = true;
        controller.abort(err);
        res.destroy();
      });
      gunzip.pipe(res);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    const sink = this.gunzip ?? this.res;
    if (sink.destroyed) return;
    if (!sink.write(chunk)) {
      controller.pause();
      sink.once("drain", this.resumeUpstream);
    }
  }

  onResponseEnd(): void {
    this.upstreamDone = true;
    if (this.gunzip !== undefined) this.gunzip.end();
    else this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.upstreamDone) return; // our own abort after the client left
    this.upstreamDone = true;
    this.error = upstreamError(err, this.request.target);
    const res = this.res;
    if (res.destroyed) {
      this.settle();
      return;
    }
    if (!res.headersSent) {
      this.request.onError(this.error, res);
      this.status = res.statusCode;
      return;
    }
    // Mid-body failure: like Go, cut the connection so the client sees an incomplete body.
    this.gunzip?.destroy();
    res.destroy();
  }
}

/**
 * Forwards one HTTP request upstream with undici and streams the response to `res`:
 * hop-by-hop response headers removed, every chunk written as it arrives (responses of unknown
 * length have their headers flushed at once), backpressure in both directions, the upstream
 * request aborted when the client disconnects. No timeouts are applied (watches last as long as
 * the API server keeps them open). Resolves when the exchange is over; never rejects.
 */
export function forwardHttp(request: ForwardRequest, res: ServerResponse): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve) => {
    const handler = new ForwardHandler(request, res, resolve);
    try {
      request.dispatcher.dispatch(
        {
          origin: request.origin,
          path: request.path,
          method: request.method as Dispatcher.HttpMethod,
          headers: request.headers,
          body: request.body,
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler,
      );
    } catch (err) {
      handler.onResponseError(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
  });
}

/**
 * The body to forward for a client request, as Go's ReverseProxy decides: none when the request
 * says Content-Length 0 or carries no body framing at all; otherwise the request stream itself.
 */
export function requestBody(req: IncomingMessage): Readable | null {
  const length = req.headers["content-length"];
  if (length !== undefined) return length === "0" ? null : req;
  return req.headers["transfer-encoding"] === undefined ? null : req;
}
