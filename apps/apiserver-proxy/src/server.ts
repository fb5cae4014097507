/**
 * The bastion: HTTPS in, authenticated and authorized against the cluster, then the API server's
 * proxy subresource semantics (resolution, rewriting, upgrades) to a Service, Pod or Node.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import * as https from "node:https";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { errorMessage, KproxyError, type Logger, redactQuery, silentLogger } from "@kproxy/core";
import {
  appendForwardedFor,
  bodyFraming,
  buildUpstreamHeaders,
  CORS_RESPONSE_HEADERS,
  escapeGoPath,
  type FastConnection,
  type FastForwardResult,
  FastHttpServer,
  type FlatHeaders,
  type ForwardResult,
  forwardedUri,
  forwardHttp,
  isRewritableEncoding,
  isUpgradeRequest,
  mediaTypeOf,
  type RequestHead,
  type ResponseBodyRewrite,
  type RewriteContext,
  requestBody,
  rewriteHtmlBody,
  rewriteLocation,
  rewritingDispatcher,
  tunnelUpgrade,
  UpstreamPool,
} from "@kproxy/transport";
import type { Dispatcher } from "undici";
import {
  type Authenticator,
  type Authorizer,
  forbiddenMessage,
  type ProxyAttributes,
  type UserInfo,
} from "./auth.js";
import type { ProxyMetrics } from "./metrics.js";
import {
  hasDryRun,
  PROXY_METHODS,
  type ProxyRequest,
  parseProxyPathCached,
  pathPrepend,
  verbOf,
} from "./paths.js";
import {
  failure,
  type KubeStatus,
  methodNotAllowed,
  NOT_FOUND,
  sendRawStatus,
  sendStatus,
  statusFromError,
  statusText,
  UNAUTHORIZED,
} from "./status.js";
import type { Target, TargetResolver } from "./targets.js";

/** One access log line. Never carries credentials: query values of secret-looking keys are redacted. */
export interface AccessLogEntry {
  time: string;
  client: string;
  user: string;
  method: string;
  path: string;
  status: number;
  kind: string;
  target?: string;
  endpoint?: string;
  bytes: number;
  durationMs: number;
  upgrade: boolean;
  retried?: boolean;
  error?: string;
}

export interface ProxyServerOptions {
  /** PEM certificate chain and key of the HTTPS listener. */
  tls: { cert: string | Buffer; key: string | Buffer };
  /** PEM CA bundle: client certificates it signed authenticate their CN/O. */
  clientCa?: string | Buffer;
  authenticator: Authenticator;
  authorizer: Authorizer;
  resolver: TargetResolver;
  /** Whether the endpoints watch has synced (503 before). */
  synced: () => boolean;
  /** Dispatcher for pods, services and non-kubelet node ports (backend certificates are not verified, as upstream). */
  dispatcher: Dispatcher;
  /** Dispatcher for the kubelet port (kubelet client credentials). */
  kubeletDispatcher: Dispatcher;
  /** TLS options for upgrade tunnels to https backends. */
  upgradeTls: {
    insecure: import("node:tls").ConnectionOptions;
    kubelet: import("node:tls").ConnectionOptions;
  };
  rewriteHtml: boolean;
  metrics: ProxyMetrics;
  logger?: Logger;
  accessLog?: (entry: AccessLogEntry) => void;
  /**
   * "fast" (default): the lean HTTP/1.1 path of @kproxy/transport (FastHttpServer, a keep-alive
   * UpstreamPool per endpoint). "node": node:https and undici (the dispatchers above).
   */
  engine?: "fast" | "node";
}

/** What admission, tunnels and the access log need of a request, whichever server parsed it. */
interface RequestInfo {
  method: string;
  url: string;
  rawHeaders: readonly string[];
  socket: Socket | Duplex;
  clientIp: string | undefined;
  authorization: string | undefined;
  host: string | undefined;
}

function infoOf(req: IncomingMessage): RequestInfo {
  return {
    method: req.method ?? "GET",
    url: req.url ?? "/",
    rawHeaders: req.rawHeaders,
    socket: req.socket,
    clientIp: clientIpOf(req.socket),
    authorization: req.headers.authorization,
    host: req.headers.host,
  };
}

const JSON_HEADER_LINES = "Content-Type: application/json\r\nCache-Control: no-cache, private\r\n";
const MAX_HTML_BYTES = 16 * 1024 * 1024;
const CORS = new Set(CORS_RESPONSE_HEADERS);
/** Upstream keep-alive connections unused this long are closed (as the undici Agent's keepAliveTimeout). */
const UPSTREAM_IDLE_MS = 30_000;
/** Pools of endpoints not used for this long (and without connections) are dropped. */
const POOL_IDLE_MS = 120_000;

/** Answers a lean-path request with a Status (no body for HEAD). */
function respondStatus(c: FastConnection, status: KubeStatus): void {
  c.respond(status.code, JSON_HEADER_LINES, statusText(status));
}

function clientIpOf(socket: Socket | Duplex | null | undefined): string | undefined {
  const address = (socket as Socket | undefined)?.remoteAddress;
  if (address === undefined || address === "") return undefined;
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** Headers the API server's authentication and impersonation filters remove before proxying. */
function isCredentialHeader(lower: string): boolean {
  return lower === "authorization" || lower.startsWith("impersonate-");
}

function withoutCredentials(headers: FlatHeaders): FlatHeaders {
  for (let i = 0; i < headers.length; i += 2) {
    const lower = (headers[i] as string).toLowerCase();
    if (isCredentialHeader(lower)) {
      headers.splice(i, 2);
      i -= 2;
    }
  }
  return headers;
}

const DROP_AUTH: ReadonlySet<string> = new Set(["authorization"]);

type Admitted = { request: ProxyRequest; user: UserInfo; target: Target };

export class ProxyServer {
  private readonly server: NetServer;
  private readonly nodeServer: https.Server | undefined;
  private readonly fast: FastHttpServer | undefined;
  /** Lean path: a keep-alive pool per endpoint (scheme, address, port, TLS identity). */
  private readonly pools = new Map<string, { pool: UpstreamPool; usedAt: number }>();
  private poolSweeper: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly inflight = new Set<ServerResponse>();
  private fastInflight = 0;
  private readonly upgraded = new Set<Duplex>();
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    this.logger = options.logger ?? silentLogger;
    // Client certificates are asked for, and checked by the authenticator, not by the handshake.
    const tlsOptions = {
      cert: options.tls.cert,
      key: options.tls.key,
      ...(options.clientCa !== undefined
        ? { ca: options.clientCa, requestCert: true, rejectUnauthorized: false }
        : {}),
    };
    if (options.engine !== "node") {
      this.fast = new FastHttpServer({
        tls: tlsOptions,
        maxHeaderBytes: 1 << 20,
        idleTimeoutMs: 60_000,
        onRequest: (c, head) => this.onFastRequest(c, head),
      });
      this.server = this.fast.server;
      return;
    }
    const server = https.createServer({
      ...tlsOptions,
      maxHeaderSize: 1 << 20,
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 60_000,
      noDelay: true,
    });
    server.on("request", (req, res) => this.onRequest(req, res));
    server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
    server.on("clientError", (_err: Error, socket: Duplex) => {
      if (socket.writable) sendRawStatus(socket, failure(400, "BadRequest", "malformed HTTP request"));
      else socket.destroy();
    });
    server.on("tlsClientError", () => {});
    this.nodeServer = server;
    this.server = server;
  }

  /** Which engine serves. */
  get engine(): "fast" | "node" {
    return this.fast !== undefined ? "fast" : "node";
  }

  get port(): number {
    const a = this.server.address();
    return a !== null && typeof a === "object" ? a.port : 0;
  }

  /** Listens; with `reusePort`, several processes may listen on the same port (Linux SO_REUSEPORT). */
  async listen(port: number, host: string, reusePort = false): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new KproxyError(
            "LISTEN_FAILED",
            `listen tcp ${host}:${port}: ${err.code === "EADDRINUSE" ? "bind: address already in use" : err.message}`,
            {
              cause: err,
            },
          ),
        );
      this.server.once("error", onError);
      this.server.listen({ port, host, ...(reusePort ? { reusePort: true } : {}) }, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts the rest. */
  close(graceMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const closed = this.server.listening
        ? new Promise<void>((resolve) => this.server.close(() => resolve()))
        : Promise.resolve();
      const fast = this.fast;
      const node = this.nodeServer;
      fast?.startClosing();
      node?.closeIdleConnections();
      const busy = () => (fast !== undefined ? this.fastInflight > 0 : this.inflight.size > 0);
      const deadline = Date.now() + graceMs;
      while (busy() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        node?.closeIdleConnections();
        fast?.closeIdle();
      }
      for (const socket of this.upgraded) socket.destroy();
      fast?.closeAll();
      node?.closeAllConnections();
      if (this.poolSweeper !== undefined) clearInterval(this.poolSweeper);
      for (const { pool } of this.pools.values()) pool.destroy();
      this.pools.clear();
      await closed;
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ admission

  /**
   * Parses, authenticates, authorizes and resolves a request; answers it (via `reject`) and
   * returns undefined when it goes no further.
   */
  private async admit(
    req: RequestInfo,
    reject: (status: KubeStatus, user: string, kind: string) => void,
  ): Promise<Admitted | undefined> {
    const method = req.method;
    const parsed = parseProxyPathCached(req.url);
    if (!parsed.ok) {
      reject(
        parsed.status === 400 ? failure(400, "BadRequest", "malformed request path") : NOT_FOUND,
        "",
        "none",
      );
      return undefined;
    }
    const request = parsed.request;
    if (!PROXY_METHODS.has(method)) {
      reject(methodNotAllowed(method), "", request.kind);
      return undefined;
    }
    let user: UserInfo | undefined;
    try {
      const u = this.options.authenticator.authenticate({
        socket: req.socket,
        headers: { authorization: req.authorization },
      });
      user = u instanceof Promise ? await u : u;
    } catch (err) {
      this.logger.error("authentication failed", { error: errorMessage(err) });
      reject(UNAUTHORIZED, "", request.kind);
      return undefined;
    }
    if (user === undefined) {
      reject(UNAUTHORIZED, "", request.kind);
      return undefined;
    }
    const attrs: ProxyAttributes = {
      verb: verbOf(method),
      namespace: request.namespace ?? "",
      resource: request.kind === "service" ? "services" : request.kind === "pod" ? "pods" : "nodes",
      subresource: "proxy",
      name: request.id,
    };
    try {
      const d = this.options.authorizer.authorize(user, attrs);
      const decision = d instanceof Promise ? await d : d;
      if (!decision.allowed) {
        reject(
          failure(403, "Forbidden", forbiddenMessage(user, attrs, decision.reason), {
            name: attrs.name,
            kind: attrs.resource,
          }),
          user.username,
          request.kind,
        );
        return undefined;
      }
    } catch (err) {
      this.logger.error("authorization failed", { error: errorMessage(err) });
      reject(
        failure(500, "InternalError", `Internal error occurred: ${errorMessage(err)}`),
        user.username,
        request.kind,
      );
      return undefined;
    }
    if (hasDryRun(request.rawQuery)) {
      reject(failure(400, "BadRequest", "dryRun is not supported"), user.username, request.kind);
      return undefined;
    }
    if (!this.options.synced()) {
      reject(
        failure(503, "ServiceUnavailable", "the proxy has not yet listed the cluster's endpoints"),
        user.username,
        request.kind,
      );
      return undefined;
    }
    try {
      const clientAddress = req.clientIp;
      const t = this.options.resolver.resolve(request.kind, request.namespace ?? "", request.id, {
        ...(clientAddress !== undefined ? { clientAddress } : {}),
      });
      const target = t instanceof Promise ? await t : t;
      return { request, user, target };
    } catch (err) {
      reject(statusFromError(err), user.username, request.kind);
      return undefined;
    }
  }

  // ------------------------------------------------------------------ normal requests

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    this.inflight.add(res);
    this.options.metrics.inflight.inc();
    void this.handle(req, res, started).finally(() => {
      this.inflight.delete(res);
      this.options.metrics.inflight.dec();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const info = infoOf(req);
    const method = info.method;
    const head = method === "HEAD";
    let rejected = false;
    const admitted = await this.admit(info, (status, user, kind) => {
      rejected = true;
      req.resume();
      sendStatus(res, status, head);
      this.finishRejected(info, started, status, user, kind);
    });
    if (admitted === undefined || rejected) return;
    const { request, user, target } = admitted;
    let backendPath = request.backendPath;
    if (backendPath === "") {
      if (method === "GET" || head) {
        req.resume();
        const location = `${request.rawPath}/${request.rawQuery !== "" ? `?${request.rawQuery}` : ""}`;
        res.writeHead(301, { Location: location, "Content-Length": "0" });
        res.end();
        this.finish(info, {
          status: 301,
          user: user.username,
          kind: request.kind,
          started,
          bytes: 0,
          upgrade: false,
        });
        return;
      }
      backendPath = "/";
    }
    const upstreamPath = `${escapeGoPath(backendPath)}${request.rawQuery !== "" ? `?${request.rawQuery}` : ""}`;
    const requestHost = req.headers.host ?? "";
    const up = buildUpstreamHeaders(req.rawHeaders, method, {
      host: requestHost,
      clientIp: clientIpOf(req.socket),
      requestGzip: true,
      drop: DROP_AUTH,
    });
    if (hasImpersonation(req.rawHeaders)) withoutCredentials(up.headers);
    const prepend = pathPrepend(request.requestPath, backendPath);
    up.headers.push("X-Forwarded-Uri", forwardedUri(prepend, backendPath));
    const body = requestBody(req);
    const retryable = body === null && IDEMPOTENT.has(method) && target.endpoint !== undefined;
    const tried = new Set<string>();
    let retried = false;
    const attempt = (t: Target): Promise<{ result: ForwardResult; target: Target }> =>
      new Promise((resolve) => {
        let handedOver = false;
        if (t.endpoint !== undefined) {
          tried.add(t.endpoint.key);
          t.endpoint.pool.balancer.onStart(t.endpoint.key);
        }
        const inner = t.kubelet ? this.options.kubeletDispatcher : this.options.dispatcher;
        void forwardHttp(
          {
            dispatcher: rewritingDispatcher(inner, {
              context: { pathPrepend: prepend, backendHost: t.hostPort, requestHost },
              html: this.options.rewriteHtml,
              requestedGzip: up.requestedGzip,
              onSkip: (reason) => this.logger.debug("HTML not rewritten", { reason, target: t.label }),
            }),
            origin: t.origin,
            target: t.hostPort,
            method,
            path: upstreamPath,
            headers: up.headers,
            body,
            requestedGzip: up.requestedGzip,
            onError: (error, r) => {
              this.upstreamFailed(t, error);
              if (
                retryable &&
                !retried &&
                (error.code === "UPSTREAM_UNREACHABLE" || error.code === "UPSTREAM_RESET") &&
                !r.headersSent
              ) {
                const next =
                  this.options.resolver.retryTarget(t, request.namespace ?? "", request.id, tried) ??
                  (error.code === "UPSTREAM_RESET" ? t : undefined);
                if (next !== undefined) {
                  retried = true;
                  handedOver = true;
                  this.options.metrics.retries.inc({ target: t.label });
                  this.logger.info("retrying on another endpoint", {
                    target: t.label,
                    endpoint: t.hostPort,
                    error: error.message,
                  });
                  void attempt(next).then(resolve);
                  return;
                }
              }
              sendStatus(r, statusFromError(error), head);
            },
          },
          res,
        ).then((result) => {
          if (t.endpoint !== undefined) {
            t.endpoint.pool.balancer.onFinish(t.endpoint.key);
            if (result.error === undefined) t.endpoint.pool.health.reportSuccess(t.endpoint.key);
          }
          const code =
            result.error !== undefined && !handedOver ? (res.headersSent ? result.status : 0) : result.status;
          this.options.metrics.upstreamRequests.inc({
            target: t.label,
            endpoint: t.hostPort,
            code: handedOver ? 0 : code,
          });
          if (!handedOver) resolve({ result, target: t });
        });
      });
    const { result, target: last } = await attempt(target);
    this.finish(info, {
      status: res.statusCode,
      user: user.username,
      kind: request.kind,
      target: last.label,
      endpoint: last.hostPort,
      started,
      bytes: result.upstreamBytes,
      upgrade: false,
      retried,
      ...(result.error !== undefined
        ? { error: result.error.message }
        : result.clientAborted
          ? { error: "client disconnected" }
          : {}),
    });
  }

  private upstreamFailed(t: Target, error: KproxyError): void {
    this.options.metrics.upstreamErrors.inc({ target: t.label, endpoint: t.hostPort, error: error.code });
    if (
      t.endpoint !== undefined &&
      (error.code === "UPSTREAM_UNREACHABLE" || error.code === "UPSTREAM_RESET")
    )
      t.endpoint.pool.health.reportFailure(t.endpoint.key);
    this.logger.warn("upstream failed", { target: t.label, endpoint: t.hostPort, error: error.message });
  }

  // ------------------------------------------------------------------ lean path

  private onFastRequest(c: FastConnection, head: RequestHead): void {
    const started = performance.now();
    const h = head.headers;
    let authorization: string | undefined;
    let host: string | undefined;
    let hosts = 0;
    let connectionUpgrade = false;
    let upgradeHeader = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      const n = name.length;
      if (n === 4 && name.toLowerCase() === "host") {
        host ??= h[i + 1] as string;
        hosts++;
      } else if (n === 13 && authorization === undefined && name.toLowerCase() === "authorization") {
        authorization = h[i + 1] as string;
      } else if (n === 10 && !connectionUpgrade && name.toLowerCase() === "connection") {
        connectionUpgrade = isUpgradeRequest(h[i + 1] as string);
      } else if (n === 7 && name.toLowerCase() === "upgrade") upgradeHeader = true;
    }
    const info: RequestInfo = {
      method: head.method,
      url: head.target,
      rawHeaders: h,
      socket: c.socket,
      clientIp: c.clientIp,
      authorization,
      host,
    };
    if ((hosts === 0 && head.minor >= 1) || hosts > 1) {
      // As Node's and Go's servers: a request without exactly one Host header is malformed.
      respondStatus(c, failure(400, "BadRequest", "malformed HTTP request"));
      this.finish(info, { status: 400, user: "", kind: "none", started, bytes: 0, upgrade: false });
      return;
    }
    if (connectionUpgrade && upgradeHeader) {
      const { socket, head: early } = c.detach();
      this.upgrade(info, socket, early, started);
      return;
    }
    this.fastInflight++;
    this.options.metrics.inflight.inc();
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      this.fastInflight--;
      this.options.metrics.inflight.dec();
    };
    this.fastHandle(c, head, info, started, end).catch((err: unknown) => {
      this.logger.error("request failed", { error: errorMessage(err) });
      respondStatus(c, statusFromError(err));
      end();
    });
  }

  private async fastHandle(
    c: FastConnection,
    head: RequestHead,
    info: RequestInfo,
    started: number,
    end: () => void,
  ): Promise<void> {
    const method = info.method;
    let rejected = false;
    const admitted = await this.admit(info, (status, user, kind) => {
      rejected = true;
      respondStatus(c, status);
      this.finishRejected(info, started, status, user, kind);
      end();
    });
    if (admitted === undefined || rejected) return;
    const { request, user, target } = admitted;
    let backendPath = request.backendPath;
    if (backendPath === "") {
      if (method === "GET" || method === "HEAD") {
        const location = `${request.rawPath}/${request.rawQuery !== "" ? `?${request.rawQuery}` : ""}`;
        c.respond(301, `Location: ${location}\r\n`, "");
        this.finish(info, {
          status: 301,
          user: user.username,
          kind: request.kind,
          started,
          bytes: 0,
          upgrade: false,
        });
        end();
        return;
      }
      backendPath = "/";
    }
    const upstreamPath = `${escapeGoPath(backendPath)}${request.rawQuery !== "" ? `?${request.rawQuery}` : ""}`;
    const requestHost = info.host ?? "";
    const up = buildUpstreamHeaders(head.headers, method, {
      host: requestHost,
      clientIp: c.clientIp,
      requestGzip: true,
      drop: DROP_AUTH,
    });
    if (hasImpersonation(head.headers)) withoutCredentials(up.headers);
    const prepend = pathPrepend(request.requestPath, backendPath);
    up.headers.push("X-Forwarded-Uri", forwardedUri(prepend, backendPath));
    let hasBody = true;
    try {
      hasBody = bodyFraming(head.headers, true).kind !== "none";
    } catch {
      // (the server validated the framing already)
    }
    const retryable = !hasBody && IDEMPOTENT.has(method) && target.endpoint !== undefined;
    const tried = new Set<string>();
    let retried = false;
    const attempt = (t: Target): void => {
      if (t.endpoint !== undefined) {
        tried.add(t.endpoint.key);
        t.endpoint.pool.balancer.onStart(t.endpoint.key);
      }
      let upstreamStatus = 0;
      const context: RewriteContext = { pathPrepend: prepend, backendHost: t.hostPort, requestHost };
      const attemptOver = (code: number, ok: boolean) => {
        if (t.endpoint !== undefined) {
          t.endpoint.pool.balancer.onFinish(t.endpoint.key);
          if (ok) t.endpoint.pool.health.reportSuccess(t.endpoint.key);
        }
        this.options.metrics.upstreamRequests.inc({ target: t.label, endpoint: t.hostPort, code });
      };
      c.forward({
        pool: this.poolFor(t),
        method,
        path: upstreamPath,
        headers: up.headers,
        requestedGzip: up.requestedGzip,
        onResponseHead: (status, headers) => {
          upstreamStatus = status;
          return this.rewriteResponseHead(headers, context, up.requestedGzip, t);
        },
        onError: (conn, error) => {
          this.upstreamFailed(t, error);
          if (
            retryable &&
            !retried &&
            (error.code === "UPSTREAM_UNREACHABLE" || error.code === "UPSTREAM_RESET")
          ) {
            const next =
              this.options.resolver.retryTarget(t, request.namespace ?? "", request.id, tried) ??
              (error.code === "UPSTREAM_RESET" ? t : undefined);
            if (next !== undefined) {
              retried = true;
              attemptOver(0, false);
              this.options.metrics.retries.inc({ target: t.label });
              this.logger.info("retrying on another endpoint", {
                target: t.label,
                endpoint: t.hostPort,
                error: error.message,
              });
              attempt(next);
              return;
            }
          }
          respondStatus(conn, statusFromError(error));
        },
        onDone: (_conn, result: FastForwardResult) => {
          attemptOver(upstreamStatus, result.error === undefined);
          this.finish(info, {
            status: result.status,
            user: user.username,
            kind: request.kind,
            target: t.label,
            endpoint: t.hostPort,
            started,
            bytes: result.upstreamBytes,
            upgrade: false,
            retried,
            ...(result.error !== undefined
              ? { error: result.error.message }
              : result.clientAborted
                ? { error: "client disconnected" }
                : {}),
          });
          end();
        },
      });
    };
    attempt(target);
  }

  /**
   * The rewriting transport on the lean path: CORS headers removed and Location rewritten in
   * place; for text/html (plain, gzip, deflate) a body rewrite. Throws REWRITE_LOCATION_INVALID.
   */
  private rewriteResponseHead(
    headers: string[],
    context: RewriteContext,
    requestedGzip: boolean,
    t: Target,
  ): ResponseBodyRewrite | undefined {
    let contentType: string | undefined;
    let encoding: string | undefined;
    let location = false;
    for (let i = 0; i < headers.length; i += 2) {
      const lower = (headers[i] as string).toLowerCase();
      if (CORS.has(lower)) {
        headers.splice(i, 2);
        i -= 2;
      } else if (lower === "location") {
        const value = headers[i + 1] as string;
        if (!location && value !== "") {
          location = true;
          headers[i + 1] = rewriteLocation(value, context);
        }
      } else if (lower === "content-type") contentType ??= headers[i + 1] as string;
      else if (lower === "content-encoding") encoding ??= headers[i + 1] as string;
    }
    if (location || !this.options.rewriteHtml || mediaTypeOf(contentType) !== "text/html") return undefined;
    if (!isRewritableEncoding(encoding)) {
      this.logger.debug("HTML not rewritten", {
        reason: `content encoding ${JSON.stringify(encoding)} is not rewritten`,
        target: t.label,
      });
      return undefined;
    }
    return {
      maxBytes: MAX_HTML_BYTES,
      rewrite: (body, hs) => {
        const decodeOnly = encoding === "gzip" && requestedGzip;
        const out = rewriteHtmlBody(body, encoding ?? "", context, { decodeOnly });
        if (decodeOnly) {
          for (let i = 0; i < hs.length; i += 2) {
            if ((hs[i] as string).toLowerCase() === "content-encoding") {
              hs.splice(i, 2);
              i -= 2;
            }
          }
        }
        return out;
      },
      onSkip: (reason) => this.logger.debug("HTML not rewritten", { reason, target: t.label }),
    };
  }

  /** The keep-alive pool of one endpoint (created on first use, dropped when long unused). */
  private poolFor(t: Target): UpstreamPool {
    const key = `${t.kubelet ? "kubelet+" : ""}${t.scheme}://${t.hostPort}#${t.serverName ?? ""}`;
    const now = Date.now();
    const entry = this.pools.get(key);
    if (entry !== undefined) {
      entry.usedAt = now;
      return entry.pool;
    }
    const base = t.kubelet ? this.options.upgradeTls.kubelet : this.options.upgradeTls.insecure;
    const tlsOptions =
      t.scheme === "https"
        ? { ...base, ...(t.serverName !== undefined ? { servername: t.serverName } : {}) }
        : undefined;
    const pool = new UpstreamPool({
      host: t.address,
      port: t.port,
      target: t.hostPort,
      idleTimeoutMs: UPSTREAM_IDLE_MS,
      ...(tlsOptions !== undefined ? { tls: () => Promise.resolve(tlsOptions) } : {}),
    });
    this.pools.set(key, { pool, usedAt: now });
    this.poolSweeper ??= setInterval(() => this.sweepPools(), 30_000).unref();
    return pool;
  }

  private sweepPools(): void {
    const limit = Date.now() - POOL_IDLE_MS;
    for (const [key, entry] of this.pools) {
      if (entry.usedAt < limit && entry.pool.size === 0) {
        entry.pool.close();
        this.pools.delete(key);
      }
    }
  }

  // ------------------------------------------------------------------ upgrades

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgrade(infoOf(req), socket, head, performance.now());
  }

  private upgrade(req: RequestInfo, socket: Duplex, head: Buffer, started: number): void {
    socket.on("error", () => {});
    this.upgraded.add(socket);
    this.options.metrics.tunnels.inc();
    socket.once("close", () => {
      this.upgraded.delete(socket);
      this.options.metrics.tunnels.dec();
    });
    void this.tunnel(req, socket, head, started);
  }

  private async tunnel(req: RequestInfo, socket: Duplex, head: Buffer, started: number): Promise<void> {
    let rejected = false;
    const admitted = await this.admit(req, (status, user, kind) => {
      rejected = true;
      sendRawStatus(socket, status);
      this.finishRejected(req, started, status, user, kind, true);
    });
    if (admitted === undefined || rejected) return;
    const { request, user, target } = admitted;
    // Unlike the API server (kubernetes#77142), the query string is kept on upgrades.
    const path = `${escapeGoPath(request.backendPath === "" ? "/" : request.backendPath)}${request.rawQuery !== "" ? `?${request.rawQuery}` : ""}`;
    // Every header is cloned (no hop-by-hop stripping), credentials removed, X-Forwarded-For appended.
    const flat: FlatHeaders = [];
    let xff: string[] | undefined;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i] as string;
      const lower = name.toLowerCase();
      if (isCredentialHeader(lower)) continue;
      if (lower === "x-forwarded-for") {
        xff ??= [];
        xff.push(req.rawHeaders[i + 1] as string);
        continue;
      }
      flat.push(name, req.rawHeaders[i + 1] as string);
    }
    const ip = req.clientIp;
    if (ip !== undefined) flat.push("X-Forwarded-For", appendForwardedFor(xff, ip));
    else if (xff !== undefined) for (const v of xff) flat.push("X-Forwarded-For", v);
    if (target.endpoint !== undefined) target.endpoint.pool.balancer.onStart(target.endpoint.key);
    const tlsBase = target.kubelet ? this.options.upgradeTls.kubelet : this.options.upgradeTls.insecure;
    const result = await tunnelUpgrade({
      client: socket,
      head,
      method: req.method,
      path,
      headers: flat,
      target: target.hostPort,
      dial: {
        host: target.address,
        port: target.port,
        ...(target.scheme === "https"
          ? {
              tls: {
                ...tlsBase,
                ...(target.serverName !== undefined ? { servername: target.serverName } : {}),
              },
            }
          : {}),
      },
      onError: (error, client) => {
        this.upstreamFailed(target, error);
        sendRawStatus(client, failure(500, "", error.message));
      },
    });
    if (target.endpoint !== undefined) {
      target.endpoint.pool.balancer.onFinish(target.endpoint.key);
      if (result.status === 101) target.endpoint.pool.health.reportSuccess(target.endpoint.key);
    }
    const status =
      result.error !== undefined && result.status !== 101 && result.status < 400 ? 500 : result.status;
    this.options.metrics.upstreamRequests.inc({
      target: target.label,
      endpoint: target.hostPort,
      code: result.status,
    });
    this.finish(req, {
      status,
      user: user.username,
      kind: request.kind,
      target: target.label,
      endpoint: target.hostPort,
      started,
      bytes: result.bytesDown,
      upgrade: true,
      ...(result.error !== undefined ? { error: result.error.message } : {}),
    });
  }

  // ------------------------------------------------------------------ accounting

  /** Accounting of a request answered with a Status before it reached a target. */
  private finishRejected(
    req: RequestInfo,
    started: number,
    status: KubeStatus,
    user: string,
    kind: string,
    upgrade = false,
  ): void {
    this.finish(req, { status: status.code, user, kind, started, bytes: 0, upgrade, error: status.message });
  }

  private finish(
    req: RequestInfo,
    info: {
      status: number;
      user: string;
      kind: string;
      started: number;
      bytes: number;
      upgrade: boolean;
      target?: string;
      endpoint?: string;
      retried?: boolean;
      error?: string;
    },
  ): void {
    const seconds = (performance.now() - info.started) / 1000;
    const method = req.method;
    const m = this.options.metrics;
    m.requests.inc({
      kind: info.kind,
      method: PROXY_METHODS.has(method) ? method : "OTHER",
      code: info.status,
    });
    m.duration.observe({ kind: info.kind }, seconds);
    const sink = this.options.accessLog;
    if (sink === undefined) return;
    const entry: AccessLogEntry = {
      time: new Date().toISOString(),
      client: req.clientIp ?? "-",
      user: info.user,
      method,
      path: redactQuery(req.url),
      status: info.status,
      kind: info.kind,
      bytes: info.bytes,
      durationMs: Math.round(seconds * 1e6) / 1000,
      upgrade: info.upgrade,
    };
    if (info.target !== undefined) entry.target = info.target;
    if (info.endpoint !== undefined) entry.endpoint = info.endpoint;
    if (info.retried === true) entry.retried = true;
    if (info.error !== undefined) entry.error = info.error;
    try {
      sink(entry);
    } catch (err) {
      this.logger.error("access log failed", { error: errorMessage(err) });
    }
  }
}

function hasImpersonation(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length > 12 && name.toLowerCase().startsWith("impersonate-")) return true;
  }
  return false;
}
