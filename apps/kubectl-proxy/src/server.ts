import { lstat, unlink } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { KproxyError, type Logger, redactQuery, silentLogger } from "@kproxy/core";
import {
  appendForwardedFor,
  buildUpstreamHeaders,
  type FastConnection,
  type FastForwardResult,
  FastHttpServer,
  type FlatHeaders,
  type ForwardRequest,
  forwardHttp,
  hexEscapeNonAscii,
  htmlEscape,
  isDirectDispatcher,
  isUpgradeRequest,
  type RequestHead,
  requestBody,
  splitHostPort,
  tunnelUpgrade,
  UpstreamPool,
  validHostHeader,
  writeRawResponse,
} from "@kproxy/transport";
import { type FilterRules, normalizePrefix, type Route, Router } from "./routing.js";
import { serveStatic } from "./static.js";

/**
 * What kubectl-proxy needs from a cluster connection; @kproxy/kubeconfig's ClusterConnection
 * satisfies it.
 */
export interface UpstreamConnection {
  readonly server: URL;
  readonly serverPath: string;
  readonly hostHeader: string;
  readonly isTLS: boolean;
  dispatcher(): Promise<ForwardRequest["dispatcher"]>;
  /**
   * The HTTP/SOCKS proxy that dispatcher() reaches the API server through, undefined when it dials
   * it directly (ClusterConnection.proxyUrl). Lets listen() pick the engine without building a
   * dispatcher (and loading undici); without it, listen() asks the dispatcher.
   */
  proxyUrl?(): URL | undefined;
  tlsOptions(): Promise<TlsConnectionOptions>;
  applyAuth(headers: Record<string, string | string[] | undefined>): Promise<void>;
  /** Called after an upstream 401 so that exec-plugin and token-file credentials are refreshed. */
  invalidateCredentials?(): void;
  /**
   * The headers applyAuth would add to a request without Authorization and Impersonate-* headers,
   * when they never change (flat name/value list); undefined when they can. Lets the hot path skip
   * applyAuth.
   */
  staticCredentials?(): readonly string[] | undefined;
}

/** One line of the access log. Never contains credentials. */
export interface AccessLogEntry {
  time: string;
  client: string;
  method: string;
  /** Request path; query values of secret-looking parameters are redacted. */
  path: string;
  status: number;
  /** Response bytes received from the API server (before decompression). */
  bytes: number;
  durationMs: number;
  upgrade: boolean;
  error?: string;
}

export interface KubectlProxyOptions {
  connection: UpstreamConnection;
  /** TCP port; 0 picks a free one. Default 8001. */
  port?: number;
  /** Bind address as for kubectl's --address (IPv6 in brackets). Default "127.0.0.1". */
  address?: string;
  /**
   * Share the TCP port with other listeners (SO_REUSEPORT: the kernel balances connections among
   * them): how kubectl-proxy's serving threads listen together. Default false.
   */
  reusePort?: boolean;
  /** Listen on this Unix socket instead of TCP. */
  unixSocket?: string;
  /** Default "/". */
  apiPrefix?: string;
  /** Static file directory (--www). */
  www?: string;
  /** Default "/static/". */
  wwwPrefix?: string;
  /** The request filter; undefined disables it (--disable-filter). */
  filter: FilterRules | undefined;
  /** --keepalive for upgrade connections, in ms (0: 15 s default, negative: off). */
  keepaliveMs?: number;
  /** --append-server-path. */
  appendServerPath?: boolean;
  /** --disable-compression: do not ask the API server for gzip on the client's behalf. */
  disableCompression?: boolean;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Max request head size; larger heads get 431. Default 1 MiB (Go's DefaultMaxHeaderBytes). */
  maxHeaderBytes?: number;
  /** User-Agent sent upstream when the client sends none. */
  userAgent?: string;
  logger?: Logger;
  accessLog?: (entry: AccessLogEntry) => void;
  /**
   * "fast" (default): kubectl-proxy's own HTTP/1.1 server and upstream keep-alive pool. "node":
   * Node's http server and undici. The node engine is used anyway with --www and when the API
   * server is reached through an HTTP/SOCKS proxy (proxy-url, HTTPS_PROXY).
   */
  engine?: "fast" | "node";
}

const TEXT_HEADERS = {
  "Content-Type": "text/plain; charset=utf-8",
  "X-Content-Type-Options": "nosniff",
} as const;
/** Writes a complete small response with Content-Length, as Go's server does for short bodies. */
function sendLocal(
  res: http.ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string,
  head = false,
): void {
  res.writeHead(status, { ...headers, "Content-Length": String(Buffer.byteLength(body)) });
  res.end(head ? undefined : body);
}

/** A response the proxy makes itself (mux, filter, errors). */
interface LocalAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  close: boolean;
}

function renderHeaders(headers: Record<string, string>): string {
  let text = "";
  for (const name in headers) text += `${name}: ${headers[name]}\r\n`;
  return text;
}

const TEXT_HEADER_LINES = renderHeaders(TEXT_HEADERS);

function clientIpOf(socket: Socket | Duplex | null | undefined): string | undefined {
  const address = (socket as Socket | undefined)?.remoteAddress;
  if (address === undefined || address === "") return undefined;
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** Go's `l.Addr().String()` for a Node address. */
function formatAddress(info: AddressInfo | string | null, wildcard: boolean): string {
  if (info === null) return "";
  if (typeof info === "string") return info;
  if (wildcard) return `[::]:${info.port}`;
  return info.family === "IPv6" ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
}

function listenError(err: unknown, network: string, where: string): KproxyError {
  const code = (err as { code?: string }).code;
  const reason =
    code === "EADDRINUSE"
      ? "bind: address already in use"
      : code === "EACCES"
        ? "bind: permission denied"
        : code === "EADDRNOTAVAIL"
          ? "bind: cannot assign requested address"
          : code === "ENOTFOUND" || code === "EAI_AGAIN"
            ? "no such host"
            : err instanceof Error
              ? err.message
              : String(err);
  return new KproxyError("LISTEN_FAILED", `listen ${network} ${where}: ${reason}`, { cause: err });
}

/** A running kubectl-proxy server. */
export class KubectlProxy {
  /** The listening server (fast engine: a net/tls server; node engine: Node's http server). */
  private server: NetServer | undefined;
  private nodeServer: http.Server | undefined;
  private fast: FastHttpServer | undefined;
  private pool: UpstreamPool | undefined;
  private readonly router: Router;
  private readonly logger: Logger;
  private readonly upgraded = new Set<Duplex>();
  private readonly inflight = new Set<http.ServerResponse>();
  private addressText = "";
  private closing: Promise<void> | undefined;
  private dispatcherPromise: Promise<ForwardRequest["dispatcher"]> | undefined;
  /** The dispatcher once resolved: the hot path does not await it again. */
  private dispatcherValue: ForwardRequest["dispatcher"] | undefined;
  private readonly origin: string;
  private readonly target: string;
  private readonly userAgent: string;
  private readonly clientIpHeader: boolean;

  constructor(private readonly options: KubectlProxyOptions) {
    const apiPrefix = normalizePrefix(options.apiPrefix ?? "/");
    const wwwPrefix =
      options.www !== undefined && options.www !== ""
        ? normalizePrefix(options.wwwPrefix ?? "/static/")
        : undefined;
    if (wwwPrefix !== undefined && wwwPrefix === apiPrefix) {
      throw new KproxyError(
        "FLAG_INVALID",
        `--www-prefix and --api-prefix are both ${apiPrefix}; they must differ`,
      );
    }
    const server = options.connection.server;
    this.origin = server.origin;
    this.target =
      server.port !== "" ? server.host : `${server.host}:${server.protocol === "https:" ? 443 : 80}`;
    this.router = new Router({
      apiPrefix,
      wwwPrefix,
      filter: options.filter,
      serverPath: options.appendServerPath === true ? options.connection.serverPath : "",
    });
    this.logger = options.logger ?? silentLogger;
    this.userAgent = options.userAgent ?? "kubectl-proxy";
    this.clientIpHeader = !(options.unixSocket !== undefined && options.unixSocket !== "");
  }

  /** Which engine serves: decided by listen(). */
  get engine(): "fast" | "node" | undefined {
    return this.fast !== undefined ? "fast" : this.nodeServer !== undefined ? "node" : undefined;
  }

  /** The address as kubectl prints it: "127.0.0.1:8001", "[::]:8001" or the socket path. */
  get address(): string {
    return this.addressText;
  }

  /** The TCP port (0 for a Unix socket). */
  get port(): number {
    const info = this.server?.address();
    return info !== null && info !== undefined && typeof info === "object" ? info.port : 0;
  }

  /** Can the fast engine serve this configuration? (No --www, no HTTP/SOCKS proxy to the API server.) */
  private async fastEngineFits(): Promise<boolean> {
    if (this.options.engine === "node") return false;
    if (this.options.www !== undefined && this.options.www !== "") return false;
    const conn = this.options.connection;
    if (conn.proxyUrl !== undefined) {
      try {
        return conn.proxyUrl() === undefined;
      } catch {
        // An unusable HTTP(S)_PROXY: the node engine's dispatcher reports it on every request.
        return false;
      }
    }
    try {
      return isDirectDispatcher(await this.dispatcher());
    } catch {
      // Credentials could not be fetched yet (exec plugin): the first request reports that.
      this.dispatcherPromise = undefined;
      return true;
    }
  }

  private async createServer(): Promise<NetServer> {
    if (this.server !== undefined) return this.server;
    const options = this.options;
    if (await this.fastEngineFits()) {
      const conn = options.connection;
      const url = conn.server;
      const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      this.pool = new UpstreamPool({
        host: hostname,
        port: url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80,
        target: this.target,
        ...(conn.isTLS ? { tls: () => conn.tlsOptions() } : {}),
      });
      this.fast = new FastHttpServer({
        ...(options.tls !== undefined ? { tls: { cert: options.tls.cert, key: options.tls.key } } : {}),
        maxHeaderBytes: options.maxHeaderBytes ?? 1 << 20,
        onRequest: (c, head) => this.onFastRequest(c, head),
      });
      this.server = this.fast.server;
      return this.server;
    }
    this.nodeServer = this.createNodeServer();
    this.server = this.nodeServer;
    return this.server;
  }

  private createNodeServer(): http.Server {
    const options = this.options;
    const serverOptions: http.ServerOptions = {
      maxHeaderSize: options.maxHeaderBytes ?? 1 << 20,
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 0,
      noDelay: true,
      requireHostHeader: true,
    };
    const server =
      options.tls !== undefined
        ? https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key })
        : http.createServer(serverOptions);
    server.on("request", (req, res) => this.onRequest(req, res));
    server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
    server.on("connect", (_req, socket: Duplex) => {
      writeRawResponse(socket, 404, TEXT_HEADERS, "404 page not found\n");
    });
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
      const status = tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request";
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${status}`,
      );
    });
    return server;
  }

  /** Starts listening; resolves with the address. Throws KproxyError("LISTEN_FAILED"). */
  async listen(): Promise<string> {
    const server = await this.createServer();
    const { unixSocket } = this.options;
    if (unixSocket !== undefined && unixSocket !== "") {
      const existing = await lstat(unixSocket).catch(() => undefined);
      if (existing?.isSocket()) await unlink(unixSocket).catch(() => {});
      const oldMask = process.umask(0o077);
      try {
        await this.listenOn(server, { path: unixSocket }, "unix", unixSocket);
      } finally {
        process.umask(oldMask);
      }
      this.addressText = unixSocket;
      return unixSocket;
    }
    const address = this.options.address ?? "127.0.0.1";
    const port = this.options.port ?? 8001;
    const hostport = `${address}:${port}`;
    const split = splitHostPort(hostport);
    if (split === undefined) {
      const reason =
        address.includes(":") && !address.startsWith("[")
          ? "too many colons in address"
          : "missing port in address";
      throw new KproxyError("LISTEN_FAILED", `listen tcp: address ${hostport}: ${reason}`);
    }
    const wildcard = split.host === "" || split.host === "0.0.0.0" || split.host === "::";
    const host = wildcard ? "::" : split.host;
    const reusePort = this.options.reusePort === true;
    try {
      await this.listenOn(server, { host, port, ipv6Only: false, reusePort }, "tcp", hostport);
    } catch (err) {
      if (wildcard && (err as { code?: string }).code === "EAFNOSUPPORT") {
        await this.listenOn(server, { host: "0.0.0.0", port, reusePort }, "tcp", hostport);
      } else throw err;
    }
    this.addressText = formatAddress(server.address(), wildcard);
    return this.addressText;
  }

  private listenOn(
    server: NetServer,
    opts: { path?: string; host?: string; port?: number; ipv6Only?: boolean; reusePort?: boolean },
    network: string,
    where: string,
  ) {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        server.off("listening", onListening);
        reject(listenError(err, network, where));
      };
      const onListening = () => {
        server.off("error", onError);
        resolve();
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen(opts);
    });
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish for up to `graceMs`, then
   * cut what is left (upgraded tunnels and watches included) and remove the Unix socket.
   */
  close(graceMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const server = this.server;
      const closed =
        server === undefined || !server.listening
          ? Promise.resolve()
          : new Promise<void>((resolve) => server.close(() => resolve()));
      const fast = this.fast;
      const node = this.nodeServer;
      const busy = () =>
        this.upgraded.size > 0 || (fast !== undefined ? fast.activeCount > 0 : this.inflight.size > 0);
      fast?.startClosing();
      node?.closeIdleConnections();
      const deadline = Date.now() + graceMs;
      while (busy() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        node?.closeIdleConnections();
        fast?.closeIdle();
      }
      for (const socket of this.upgraded) socket.destroy();
      fast?.closeAll();
      node?.closeAllConnections();
      this.pool?.destroy();
      await closed;
      const { unixSocket } = this.options;
      if (unixSocket !== undefined && unixSocket !== "") {
        const st = await lstat(unixSocket).catch(() => undefined);
        if (st?.isSocket()) await unlink(unixSocket).catch(() => {});
      }
    })();
    return this.closing;
  }

  private dispatcher(): Promise<ForwardRequest["dispatcher"]> {
    this.dispatcherPromise ??= this.options.connection.dispatcher().then((d) => {
      this.dispatcherValue = d;
      return d;
    });
    return this.dispatcherPromise;
  }

  // ---------------------------------------------------------------------------------------------
  // Fast engine

  private onFastRequest(c: FastConnection, head: RequestHead): void {
    c.started = performance.now();
    const method = head.method;
    const h = head.headers;
    let host: string | undefined;
    let hosts = 0;
    let upgrade = false;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      const n = name.length;
      if (n === 4 && name.toLowerCase() === "host") {
        host = h[i + 1] as string;
        hosts++;
      } else if (n === 10 && !upgrade && name.toLowerCase() === "connection") {
        upgrade = isUpgradeRequest(h[i + 1] as string);
      }
    }
    let answer: LocalAnswer | undefined;
    let route: Route | undefined;
    if (method === "CONNECT") {
      answer = { status: 404, headers: TEXT_HEADERS, body: "404 page not found\n", close: true };
    } else if (hosts === 0 && head.minor >= 1) {
      answer = badRequest("missing required Host header");
    } else if (hosts > 1) {
      answer = badRequest("too many Host headers");
    } else if (host !== undefined && !validHostHeader(host)) {
      answer = badRequest("malformed Host header");
    } else {
      route = this.router.route(method, head.target, host);
      if (upgrade) {
        if (route.kind === "proxy") {
          this.fastUpgrade(c, head, route.upstreamPath);
          return;
        }
        answer = this.upgradeRefusal(route, method);
      } else if (route.kind === "proxy") {
        this.fastProxy(c, head, route.upstreamPath);
        return;
      } else if (route.kind === "static") {
        // Static files are served by the node engine (--www); not reachable here.
        answer = { status: 404, headers: TEXT_HEADERS, body: "404 page not found\n", close: false };
      } else answer = this.localAnswer(route, method);
    }
    c.respond(answer.status, renderHeaders(answer.headers), answer.body, answer.close);
    if (this.options.accessLog !== undefined) {
      this.log(this.clientOf(c.socket), method, head.target, answer.status, 0, c.started, upgrade);
    }
  }

  private fastProxy(c: FastConnection, head: RequestHead, upstreamPath: string): void {
    const conn = this.options.connection;
    const up = buildUpstreamHeaders(head.headers, head.method, {
      host: conn.hostHeader,
      clientIp: this.clientIpHeader ? c.clientIp : undefined,
      requestGzip: this.options.disableCompression !== true,
    });
    if (!up.has("user-agent")) up.headers.push("User-Agent", this.userAgent);
    const pending = this.addCredentials(up.headers);
    const forward = () =>
      c.forward({
        pool: this.pool as UpstreamPool,
        method: head.method,
        path: upstreamPath,
        headers: up.headers,
        requestedGzip: up.requestedGzip,
        onError: this.fastOnError,
        onDone: this.fastOnDone,
      });
    if (pending === undefined) {
      forward();
      return;
    }
    pending.then(forward, (err: unknown) => {
      const kerr =
        err instanceof KproxyError
          ? err
          : new KproxyError("PROXY_FAILED", err instanceof Error ? err.message : String(err), { cause: err });
      this.fastOnError(c, kerr);
      if (this.options.accessLog !== undefined) {
        this.log(this.clientOf(c.socket), head.method, head.target, 500, 0, c.started, false, kerr.message);
      }
    });
  }

  /** kubectl's responder on the fast engine: 500, plain text, the Go-style error. */
  private readonly fastOnError = (c: FastConnection, error: KproxyError) => {
    this.logger.error(`Error while proxying request: ${error.message}`);
    c.respond(500, TEXT_HEADER_LINES, `${error.message}\n`);
  };

  private readonly fastOnDone = (c: FastConnection, result: FastForwardResult) => {
    if (result.status === 401) this.options.connection.invalidateCredentials?.();
    if (this.options.accessLog === undefined) return;
    const head = c.request;
    const error =
      result.error !== undefined
        ? result.error.message
        : result.clientAborted
          ? "client disconnected"
          : undefined;
    this.log(
      this.clientOf(c.socket),
      head?.method ?? "",
      head?.target ?? "",
      result.status,
      result.upstreamBytes,
      c.started,
      false,
      error,
    );
  };

  private fastUpgrade(c: FastConnection, head: RequestHead, upstreamPath: string): void {
    const { socket, head: early } = c.detach();
    socket.on("error", () => {});
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
    void this.tunnel(
      head.method,
      head.target,
      head.headers,
      socket,
      early,
      upstreamPath,
      c.started,
      c.clientIp,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Node engine (--www, HTTP proxies to the API server)

  private routeOf(req: http.IncomingMessage): Route | { kind: "bad-host"; message: string } {
    const host = req.headers.host;
    if (host !== undefined) {
      let count = 0;
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (
          (req.rawHeaders[i] as string).length === 4 &&
          (req.rawHeaders[i] as string).toLowerCase() === "host"
        )
          count++;
      }
      if (count > 1) return { kind: "bad-host", message: "too many Host headers" };
      if (!validHostHeader(host)) return { kind: "bad-host", message: "malformed Host header" };
    }
    return this.router.route(req.method ?? "GET", req.url ?? "/", host);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now();
    const route = this.routeOf(req);
    const method = req.method ?? "GET";
    switch (route.kind) {
      case "proxy":
        this.inflight.add(res);
        this.proxy(req, res, route.upstreamPath, started).finally(() => this.inflight.delete(res));
        return;
      case "static":
        this.inflight.add(res);
        serveStatic(this.options.www as string, route.path, route.rawQuery, req, res)
          .catch((err) => {
            if (!res.headersSent) {
              res.writeHead(500, TEXT_HEADERS);
              res.end("500 Internal Server Error\n");
            } else res.destroy(err);
          })
          .finally(() => {
            this.inflight.delete(res);
            this.logReq(req, res.statusCode, 0, started, false);
          });
        return;
      default: {
        const answer =
          route.kind === "bad-host" ? badRequest(route.message) : this.localAnswer(route, method);
        sendLocal(
          res,
          answer.status,
          answer.close ? { ...answer.headers, Connection: "close" } : answer.headers,
          answer.body,
          method === "HEAD",
        );
        this.logReq(req, res.statusCode, 0, started, false);
      }
    }
  }

  /** What the mux and the filter answer for a request that is not proxied. */
  private localAnswer(route: Exclude<Route, { kind: "proxy" | "static" }>, method: string): LocalAnswer {
    switch (route.kind) {
      case "bad-request":
        return {
          status: 400,
          headers: { "Content-Type": "text/plain; charset=utf-8" },
          body: "400 Bad Request",
          close: true,
        };
      case "options-star":
        return { status: 400, headers: {}, body: "", close: true };
      case "redirect": {
        const headers: Record<string, string> = { Location: hexEscapeNonAscii(route.location) };
        if (method === "GET" || method === "HEAD") headers["Content-Type"] = "text/html; charset=utf-8";
        return {
          status: 301,
          headers,
          body: method === "GET" ? `<a href="${htmlEscape(route.location)}">Moved Permanently</a>.\n\n` : "",
          close: false,
        };
      }
      case "not-found":
        return { status: 404, headers: TEXT_HEADERS, body: "404 page not found\n", close: false };
      case "forbidden":
        this.logger.debug(`Filter rejecting ${method} ${route.path} ${route.host}`);
        return { status: 403, headers: TEXT_HEADERS, body: "Forbidden\n", close: false };
    }
  }

  /** The answer to an upgrade request that is not proxied (sent on the raw connection, then closed). */
  private upgradeRefusal(route: Route | { kind: "bad-host"; message: string }, method: string): LocalAnswer {
    let status = 400;
    let body = "400 Bad Request";
    let headers: Record<string, string> = { "Content-Type": "text/plain; charset=utf-8" };
    if (route.kind === "forbidden") {
      this.logger.debug(`Filter rejecting ${method} ${route.path} ${route.host}`);
      [status, body, headers] = [403, "Forbidden\n", { ...TEXT_HEADERS }];
    } else if (route.kind === "not-found" || route.kind === "static") {
      [status, body, headers] = [404, "404 page not found\n", { ...TEXT_HEADERS }];
    } else if (route.kind === "redirect") {
      status = 301;
      headers = { Location: hexEscapeNonAscii(route.location) };
      body = "";
    } else if (route.kind === "bad-host") body = `400 Bad Request: ${route.message}`;
    return { status, headers, body, close: true };
  }

  /** kubectl's responder: 500, plain text, the Go-style error and a newline. */
  private readonly respondError = (error: KproxyError, res: http.ServerResponse) => {
    this.logger.error(`Error while proxying request: ${error.message}`);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    sendLocal(res, 500, TEXT_HEADERS, `${error.message}\n`);
  };

  /** Adds the connection's credentials; synchronous (no promise) when they are static. */
  private addCredentials(flat: FlatHeaders): Promise<void> | undefined {
    const conn = this.options.connection;
    if (!conn.isTLS) return undefined;
    let carriesAuth = false;
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i] as string;
      const c = name.charCodeAt(0) | 0x20;
      if (
        (c === 0x61 /* a */ && name.length === 13 && name.toLowerCase() === "authorization") ||
        (c === 0x69 /* i */ && name.length >= 12 && name.toLowerCase().startsWith("impersonate-"))
      ) {
        carriesAuth = true;
        break;
      }
    }
    if (!carriesAuth) {
      const fixed = conn.staticCredentials?.();
      if (fixed !== undefined) {
        for (let i = 0; i < fixed.length; i++) flat.push(fixed[i] as string);
        return undefined;
      }
    }
    return this.applyAuthTo(flat);
  }

  private async applyAuthTo(flat: FlatHeaders): Promise<void> {
    const conn = this.options.connection;
    const probe: Record<string, string | string[] | undefined> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const name = (flat[i] as string).toLowerCase();
      if (name === "authorization" || name.startsWith("impersonate-")) probe[name] = flat[i + 1];
    }
    const before = new Set(Object.keys(probe));
    await conn.applyAuth(probe);
    for (const [name, value] of Object.entries(probe)) {
      if (before.has(name.toLowerCase()) || value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) flat.push(name, v);
      else flat.push(name, value);
    }
  }

  private async proxy(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    upstreamPath: string,
    started: number,
  ) {
    const method = req.method ?? "GET";
    const conn = this.options.connection;
    let status = 0;
    let bytes = 0;
    let error: string | undefined;
    try {
      const up = buildUpstreamHeaders(req.rawHeaders, method, {
        host: conn.hostHeader,
        clientIp: this.clientIpHeader ? clientIpOf(req.socket) : undefined,
        requestGzip: this.options.disableCompression !== true,
      });
      if (!up.has("user-agent")) up.headers.push("User-Agent", this.userAgent);
      const pending = this.addCredentials(up.headers);
      if (pending !== undefined) await pending;
      const result = await forwardHttp(
        {
          dispatcher: this.dispatcherValue ?? (await this.dispatcher()),
          origin: this.origin,
          target: this.target,
          method,
          path: upstreamPath,
          headers: up.headers,
          body: requestBody(req),
          requestedGzip: up.requestedGzip,
          onError: this.respondError,
        },
        res,
      );
      status = result.status;
      if (status === 401) conn.invalidateCredentials?.();
      bytes = result.upstreamBytes;
      if (result.error !== undefined) error = result.error.message;
      else if (result.clientAborted) error = "client disconnected";
    } catch (err) {
      const kerr =
        err instanceof KproxyError
          ? err
          : new KproxyError("PROXY_FAILED", err instanceof Error ? err.message : String(err), { cause: err });
      error = kerr.message;
      this.respondError(kerr, res);
      status = res.statusCode;
    }
    this.logReq(req, status, bytes, started, false, error);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const started = performance.now();
    socket.on("error", () => {});
    const route = this.routeOf(req);
    const method = req.method ?? "GET";
    if (route.kind !== "proxy") {
      // Answer as the mux/filter would, on the raw connection.
      const answer = this.upgradeRefusal(route, method);
      writeRawResponse(socket, answer.status, answer.headers, answer.body);
      this.logReq(req, answer.status, 0, started, true);
      return;
    }
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
    void this.tunnel(
      method,
      req.url ?? "",
      req.rawHeaders,
      socket,
      head,
      route.upstreamPath,
      started,
      clientIpOf(req.socket),
    );
  }

  private async tunnel(
    method: string,
    url: string,
    rawHeaders: readonly string[],
    socket: Duplex,
    head: Buffer,
    upstreamPath: string,
    started: number,
    clientIp: string | undefined,
  ) {
    const conn = this.options.connection;
    const client = this.clientIpHeader ? (clientIp ?? "-") : "@";
    // The upgrade path clones every header (no hop-by-hop stripping), sets Host and X-Forwarded-For.
    const flat: FlatHeaders = ["Host", conn.hostHeader];
    let xff: string[] | undefined;
    let hasUserAgent = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      const lower = name.toLowerCase();
      if (lower === "host") continue;
      if (lower === "x-forwarded-for") {
        xff ??= [];
        xff.push(rawHeaders[i + 1] as string);
        continue;
      }
      if (lower === "user-agent") hasUserAgent = true;
      flat.push(name, rawHeaders[i + 1] as string);
    }
    const ip = this.clientIpHeader ? clientIp : undefined;
    if (ip !== undefined) flat.push("X-Forwarded-For", appendForwardedFor(xff, ip));
    else if (xff !== undefined) for (const v of xff) flat.push("X-Forwarded-For", v);
    if (!hasUserAgent) flat.push("User-Agent", this.userAgent);
    let result: Awaited<ReturnType<typeof tunnelUpgrade>>;
    try {
      await this.addCredentials(flat);
      const server = conn.server;
      const hostname = server.hostname.startsWith("[") ? server.hostname.slice(1, -1) : server.hostname;
      const port = server.port !== "" ? Number(server.port) : server.protocol === "https:" ? 443 : 80;
      result = await tunnelUpgrade({
        client: socket,
        head,
        method,
        path: upstreamPath,
        headers: flat,
        target: this.target,
        dial: {
          host: hostname,
          port,
          ...(conn.isTLS ? { tls: await conn.tlsOptions() } : {}),
          keepAliveMs: this.options.keepaliveMs ?? 0,
        },
        onError: (error, client) => {
          this.logger.error(`Error while proxying request: ${error.message}`);
          writeRawResponse(client, 500, TEXT_HEADERS, `${error.message}\n`);
        },
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.logger.error(`Error while proxying request: ${message}`);
      writeRawResponse(socket, 500, TEXT_HEADERS, `${message}\n`);
      this.log(client, method, url, 500, 0, started, true, message);
      return;
    }
    const status =
      result.error !== undefined && result.status !== 101 && result.status < 400 ? 500 : result.status;
    this.log(client, method, url, status, result.bytesDown, started, true, result.error?.message);
  }

  /** The access log's client field. */
  private clientOf(socket: Socket | Duplex | null | undefined): string {
    return this.clientIpHeader ? (clientIpOf(socket) ?? "-") : "@";
  }

  private logReq(
    req: http.IncomingMessage,
    status: number,
    bytes: number,
    started: number,
    upgrade: boolean,
    error?: string,
  ): void {
    if (this.options.accessLog === undefined) return;
    this.log(
      this.clientOf(req.socket),
      req.method ?? "",
      req.url ?? "",
      status,
      bytes,
      started,
      upgrade,
      error,
    );
  }

  private log(
    client: string,
    method: string,
    url: string,
    status: number,
    bytes: number,
    started: number,
    upgrade: boolean,
    error?: string,
  ): void {
    const sink = this.options.accessLog;
    if (sink === undefined) return;
    const entry: AccessLogEntry = {
      time: new Date().toISOString(),
      client,
      method,
      path: redactQuery(url),
      status,
      bytes,
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      upgrade,
    };
    if (error !== undefined) entry.error = error;
    sink(entry);
  }
}

function badRequest(message: string): LocalAnswer {
  return {
    status: 400,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
    body: `400 Bad Request: ${message}`,
    close: true,
  };
}
