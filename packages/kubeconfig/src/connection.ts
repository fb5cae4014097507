import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import type { Clock, Logger } from "@kproxy/core";
import { errorMessage, KproxyError, silentLogger, systemClock } from "@kproxy/core";
import type { KubeConfig } from "@kubernetes/client-node";
// undici is loaded on the first dispatcher() call only (import("undici") in makeDispatcher): a
// program that never asks for a dispatcher does not pay for it in each process and thread.
import type { Dispatcher } from "undici";
import { ExecCredentialProvider } from "./exec.js";
import type { ConnectionOptions } from "./flags.js";
import type { ResolvedCluster, ResolvedConfig, ResolvedUser } from "./load.js";
import { DEFAULT_IN_CLUSTER_DIR, resolveConfig } from "./load.js";

/** client-go re-reads a token file at most once a minute. */
export const DEFAULT_TOKEN_FILE_CACHE_MS = 60_000;
export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;

export interface LoadConnectionOptions extends ConnectionOptions {
  /** Default process.env (KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT, KUBERNETES_MASTER, HOME, POD_NAMESPACE, HTTPS_PROXY…). */
  env?: NodeJS.ProcessEnv;
  /** Default /var/run/secrets/kubernetes.io/serviceaccount. */
  inClusterDir?: string;
  logger?: Logger;
  /** Clock for token-file and exec-credential expiry (default systemClock). */
  clock?: Clock;
  /** How long a token file's content is reused before it is read again (default 60 s, like client-go). */
  tokenFileCacheMs?: number;
  /** An exec plugin that runs longer is killed (default 60 s). */
  execTimeoutMs?: number;
  /**
   * Offer HTTP/2 to the API server (ALPN) on the dispatcher. Default false: undici's HTTP/1.1
   * keep-alive pool costs about half the CPU per request of its HTTP/2 client.
   */
  http2?: boolean;
}

export interface ClusterConnection {
  /** Normalised API server URL (scheme defaults to https when TLS settings are given, else http; path kept). */
  readonly server: URL;
  /** Path part of the server URL without trailing "/" ("" when none). */
  readonly serverPath: string;
  /** host[:port] to send as Host. */
  readonly hostHeader: string;
  /** kubectl's IsConfigTransportTLS: https, or no scheme and a CA / insecure-skip-tls-verify set. */
  readonly isTLS: boolean;
  readonly source: "kubeconfig" | "in-cluster" | "flags" | "default";
  readonly contextName: string | undefined;
  /** --namespace, else the context's namespace (in-cluster: POD_NAMESPACE or the namespace file), else "default". */
  readonly namespace: string;
  /** --request-timeout in ms, undefined when not set (0 = none). */
  readonly requestTimeoutMs: number | undefined;
  /** --disable-compression or the cluster's disable-compression. */
  readonly disableCompression: boolean;
  /**
   * client-node KubeConfig with all overrides applied (for informers/API clients). Built on first
   * access: @kubernetes/client-node is only loaded by programs that use it.
   */
  readonly kubeConfig: KubeConfig;
  /**
   * undici Dispatcher for the API server with exactly the TLS settings and proxy-url; cached.
   * undici is loaded on the first call.
   */
  dispatcher(): Promise<Dispatcher>;
  /**
   * The proxy that dispatcher() sends requests for this API server through, or undefined when it
   * dials the API server directly: the cluster's proxy-url; else, for an https server,
   * HTTPS_PROXY then HTTP_PROXY (for an http server, HTTP_PROXY), unless NO_PROXY or a loopback
   * name (localhost, 127.0.0.1, ::1) covers the server's host. The same decision as dispatcher(),
   * made without loading undici. A fresh URL each call; it may carry the proxy's credentials
   * (never log it whole). Throws KproxyError("PROXY_INVALID") when an HTTP(S)_PROXY variable is
   * not an http, https, socks5 or socks URL (dispatcher() rejects with the same error).
   */
  proxyUrl(): URL | undefined;
  /** TLS options for raw sockets (upgrade tunnels dial with node:tls). */
  tlsOptions(): Promise<TlsConnectionOptions>;
  /** Adds credentials and Impersonate-* headers that the request does not already carry (TLS servers only). */
  applyAuth(headers: Record<string, string | string[] | undefined>): Promise<void>;
  /** Call after an upstream 401: the next applyAuth re-runs the exec plugin and re-reads the token file. */
  invalidateCredentials(): void;
  /**
   * For hot paths: the headers applyAuth adds to a request that carries no Authorization and no
   * Impersonate-* header, as a flat name/value list, when they never change (a token or basic auth
   * from the kubeconfig or flags, impersonation; empty for a non-TLS server). Undefined when they
   * can change (token file, exec plugin): call applyAuth.
   */
  staticCredentials(): readonly string[] | undefined;
  close(): Promise<void>;
}

interface ServerInfo {
  url: URL;
  path: string;
  host: string;
  isTLS: boolean;
}

/** Go's DefaultServerURL + IsConfigTransportTLS for a kubeconfig server string. */
export function parseServer(server: string, defaultTLS: boolean): ServerInfo {
  const hasScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]/.test(server);
  const text = hasScheme ? server : `${defaultTLS ? "https" : "http"}://${server}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw new KproxyError("KUBECONFIG_INVALID", `invalid API server URL ${JSON.stringify(server)}`, {
      cause: err,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new KproxyError(
      "KUBECONFIG_INVALID",
      `invalid API server URL ${JSON.stringify(server)}: scheme must be http or https`,
    );
  }
  url.search = "";
  url.hash = "";
  // Go keeps an explicit port in Host even when it is the default one; WHATWG URL drops it.
  const authority = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(text)?.[1] ?? url.host;
  const host = authority.includes("@") ? authority.slice(authority.lastIndexOf("@") + 1) : authority;
  const path = url.pathname.replace(/\/+$/, "");
  return { url, path, host: host || url.host, isTLS: url.protocol === "https:" };
}

function readCredentialFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KproxyError(
      "CREDENTIAL_FILE_NOT_FOUND",
      `unable to read ${what} ${JSON.stringify(file)}: ${code === "ENOENT" ? "no such file" : errorMessage(err)}`,
      { cause: err, details: { file } },
    );
  }
}

/** Re-reads a token file when its cached content is older than `ttlMs` (client-go's cachingTokenSource). */
class TokenFileSource {
  private token: string;
  private readAt: number;
  private inflight: Promise<string> | undefined;

  constructor(
    private readonly file: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.token = readCredentialFile(file, "token file").toString("utf8").trim();
    this.readAt = clock.now();
  }

  get(): string | Promise<string> {
    if (this.clock.now() - this.readAt < this.ttlMs) return this.token;
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  invalidate(): void {
    this.readAt = Number.NEGATIVE_INFINITY;
  }

  private async refresh(): Promise<string> {
    try {
      const text = (await readFile(this.file, "utf8")).trim();
      this.token = text;
      this.readAt = this.clock.now();
    } catch (err) {
      // like client-go: keep using the last good token, try again on the next call
      this.logger.warn("cannot re-read token file; keeping the previous token", {
        file: this.file,
        error: errorMessage(err),
      });
    }
    return this.token;
  }
}

/** Percent-encodes what may not appear in a header name (client-go headerKeyEscape). */
function headerKeyEscape(key: string): string {
  let out = "";
  for (const b of Buffer.from(key, "utf8")) {
    const c = String.fromCharCode(b);
    if (/^[A-Za-z0-9!#$&'*+\-.^_`|~]$/.test(c) && c !== "%") out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function hasHeader(headers: Record<string, string | string[] | undefined>, name: string): boolean {
  const v = headers[name];
  if (v !== undefined) return v.length > 0;
  for (const k of Object.keys(headers)) {
    if (k.length === name.length && k.toLowerCase() === name) {
      const x = headers[k];
      return x !== undefined && x.length > 0;
    }
  }
  return false;
}

function impersonationHeaders(user: ResolvedUser): Record<string, string | string[]> | undefined {
  const extraKeys = Object.keys(user.impersonateExtra);
  if (
    !user.impersonateUser &&
    !user.impersonateUid &&
    user.impersonateGroups.length === 0 &&
    extraKeys.length === 0
  ) {
    return undefined;
  }
  const h: Record<string, string | string[]> = {};
  if (user.impersonateUser) h["impersonate-user"] = user.impersonateUser;
  if (user.impersonateUid) h["impersonate-uid"] = user.impersonateUid;
  if (user.impersonateGroups.length > 0) h["impersonate-group"] = [...user.impersonateGroups];
  for (const k of extraKeys) {
    const vals = user.impersonateExtra[k];
    if (vals && vals.length > 0) h[`impersonate-extra-${headerKeyEscape(k).toLowerCase()}`] = [...vals];
  }
  return h;
}

function validateUser(user: ResolvedUser, name: string): void {
  const hasToken = Boolean(user.token || user.tokenFile);
  const hasBasic = Boolean(user.username || user.password);
  if (hasToken && hasBasic) {
    throw new KproxyError(
      "AUTH_CONFLICT",
      `more than one authentication method found for ${name}; found [token basicAuth], only one is allowed (username/password or bearer token may be set, but not both)`,
    );
  }
  const hasCert = Boolean(user.certFile || user.certData);
  const hasKey = Boolean(user.keyFile || user.keyData);
  if (hasCert && !hasKey) {
    throw new KproxyError(
      "KUBECONFIG_INVALID",
      `client-key-data or client-key must be specified for ${name} to use the clientCert authentication method`,
    );
  }
  if (hasKey && !hasCert) {
    throw new KproxyError(
      "KUBECONFIG_INVALID",
      `client-cert-data or client-cert must be specified for ${name} to use the clientCert authentication method`,
    );
  }
}

interface TlsMaterial {
  ca: Buffer | undefined;
  cert: Buffer | string | undefined;
  key: Buffer | string | undefined;
  rejectUnauthorized: boolean;
  servername: string | undefined;
}

/** The HTTP(S)_PROXY / NO_PROXY settings dispatcher() hands to undici's EnvHttpProxyAgent. */
interface EnvProxySettings {
  httpProxy: string;
  httpsProxy: string;
  /** NO_PROXY plus the loopback names (Go never proxies loopback destinations). */
  noProxy: string;
}

const ENV_PROXY_SCHEMES = new Set(["http:", "https:", "socks5:", "socks:"]);

function checkEnvProxy(value: string, name: string): void {
  if (value === "") return;
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  // The value is not echoed: it may carry the proxy's password.
  if (u === undefined || !ENV_PROXY_SCHEMES.has(u.protocol)) {
    throw new KproxyError(
      "PROXY_INVALID",
      `invalid proxy URL in $${name}: must be an absolute http://, https://, socks5:// or socks:// URL`,
      { details: { variable: name } },
    );
  }
}

/**
 * The environment's proxy settings, undefined when neither HTTPS_PROXY nor HTTP_PROXY is set
 * (upper case first, then lower case). Throws PROXY_INVALID for a value undici's ProxyAgent
 * would refuse.
 */
function envProxySettings(env: NodeJS.ProcessEnv): EnvProxySettings | undefined {
  const httpsName = env.HTTPS_PROXY !== undefined ? "HTTPS_PROXY" : "https_proxy";
  const httpName = env.HTTP_PROXY !== undefined ? "HTTP_PROXY" : "http_proxy";
  const httpsProxy = env[httpsName] ?? "";
  const httpProxy = env[httpName] ?? "";
  if (!httpsProxy && !httpProxy) return undefined;
  checkEnvProxy(httpsProxy, httpsName);
  checkEnvProxy(httpProxy, httpName);
  const noProxy = [env.NO_PROXY ?? env.no_proxy ?? "", "localhost", "127.0.0.1", "::1"]
    .filter(Boolean)
    .join(",");
  return { httpProxy, httpsProxy, noProxy };
}

interface NoProxyEntry {
  hostname: string;
  port: number;
  wildcard: boolean;
}

/** NO_PROXY entries exactly as undici's EnvHttpProxyAgent parses them. */
function parseNoProxy(value: string): NoProxyEntry[] {
  const entries: NoProxyEntry[] = [];
  for (const entry of value.split(/[,\s]/)) {
    if (!entry) continue;
    let hostname: string;
    let port: number;
    const ipv6WithPort = /^\[(.+)\]:(\d+)$/.exec(entry);
    if (ipv6WithPort) {
      hostname = ipv6WithPort[1] ?? "";
      port = Number.parseInt(ipv6WithPort[2] ?? "", 10);
    } else {
      const unbracketed = entry.replace(/^\[(.+)\]$/, "$1");
      const colonCount = (unbracketed.match(/:/g) ?? []).length;
      const parsed = colonCount === 1 ? /^(.+):(\d+)$/.exec(unbracketed) : null;
      hostname = parsed ? (parsed[1] ?? "") : unbracketed;
      port = parsed ? Number.parseInt(parsed[2] ?? "", 10) : 0;
    }
    entries.push({
      hostname: hostname
        .replace(/^\*?\./, "")
        .replace(/^(.+)\.$/, "$1")
        .toLowerCase(),
      port,
      wildcard: entry.charCodeAt(0) === 42 /* "*" */,
    });
  }
  return entries;
}

/** undici EnvHttpProxyAgent's choice for a request to `server`: proxy it (true) or dial directly. */
function envShouldProxy(server: URL, noProxy: string): boolean {
  let hostname = server.host
    .replace(/:\d*$/, "")
    .replace(/^\[(.+)\]$/, "$1")
    .toLowerCase();
  if (hostname.length > 1 && hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  const port = Number.parseInt(server.port, 10) || (server.protocol === "https:" ? 443 : 80);
  const entries = parseNoProxy(noProxy);
  if (entries.length === 0) return true;
  for (const entry of entries) {
    if (entry.hostname === "*") {
      if (entry.port && entry.port !== port) continue;
      return false;
    }
    if (entry.port && entry.port !== port) continue;
    if (!entry.wildcard && hostname === entry.hostname) return false;
    if (hostname.slice(-(entry.hostname.length + 1)) === `.${entry.hostname}`) return false;
  }
  return true;
}

/** The proxy dispatcher() uses for `server` (see ClusterConnection.proxyUrl). */
function proxyFor(server: URL, cluster: ResolvedCluster, env: NodeJS.ProcessEnv): URL | undefined {
  if (cluster.proxyUrl) return new URL(cluster.proxyUrl);
  const settings = envProxySettings(env);
  if (settings === undefined || !envShouldProxy(server, settings.noProxy)) return undefined;
  // EnvHttpProxyAgent: https origins use HTTPS_PROXY, else HTTP_PROXY; http origins HTTP_PROXY.
  const chosen =
    server.protocol === "https:" ? settings.httpsProxy || settings.httpProxy : settings.httpProxy;
  return chosen ? new URL(chosen) : undefined;
}

function buildDispatcher(
  undici: typeof import("undici"),
  tls: TlsConnectOptions,
  cluster: ResolvedCluster,
  env: NodeJS.ProcessEnv,
  isTLS: boolean,
  http2: boolean,
): Dispatcher {
  const connect = isTLS ? tls : undefined;
  if (cluster.proxyUrl) {
    const proxy = new URL(cluster.proxyUrl);
    if (proxy.protocol === "socks5:" || proxy.protocol === "socks5h:") {
      return new undici.Socks5ProxyAgent(proxy, {
        ...(connect ? { requestTls: connect } : {}),
        ...(proxy.username ? { username: decodeURIComponent(proxy.username) } : {}),
        ...(proxy.password ? { password: decodeURIComponent(proxy.password) } : {}),
      });
    }
    const token =
      proxy.username || proxy.password
        ? `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")}`
        : undefined;
    proxy.username = "";
    proxy.password = "";
    return new undici.ProxyAgent({
      uri: proxy.toString(),
      allowH2: http2,
      ...(token ? { token } : {}),
      ...(connect ? { requestTls: connect } : {}),
    });
  }
  const settings = envProxySettings(env);
  if (settings !== undefined) {
    return new undici.EnvHttpProxyAgent({
      allowH2: http2,
      ...settings,
      ...(connect ? { connect, requestTls: connect } : {}),
    });
  }
  return new undici.Agent({ ...(connect ? { connect } : {}), allowH2: http2 });
}

type TlsConnectOptions = {
  ca?: Buffer;
  cert?: Buffer | string;
  key?: Buffer | string;
  rejectUnauthorized: boolean;
  servername?: string;
};

function validateProxyUrl(proxyUrl: string | undefined): void {
  if (!proxyUrl) return;
  let u: URL;
  try {
    u = new URL(proxyUrl);
  } catch {
    // Not echoed as written: a proxy URL may carry a password (user:password@host).
    const shown = proxyUrl.replace(/^([^/]*\/\/)?[^/@]*@/, "$1<redacted>@");
    throw new KproxyError("KUBECONFIG_INVALID", `invalid proxy-url ${JSON.stringify(shown)}`);
  }
  if (!["http:", "https:", "socks5:", "socks5h:"].includes(u.protocol)) {
    throw new KproxyError(
      "KUBECONFIG_INVALID",
      `unsupported proxy-url scheme ${JSON.stringify(u.protocol.slice(0, -1))} (http, https or socks5)`,
    );
  }
}

const STATIC_NONE: readonly string[] = Object.freeze([]);

class Connection implements ClusterConnection {
  readonly server: URL;
  readonly serverPath: string;
  readonly hostHeader: string;
  readonly isTLS: boolean;
  readonly source: ResolvedConfig["source"];
  readonly contextName: string | undefined;
  readonly namespace: string;
  readonly requestTimeoutMs: number | undefined;
  readonly disableCompression: boolean;

  private readonly makeKubeConfig: () => KubeConfig;
  private readonly cluster: ResolvedCluster;
  private readonly env: NodeJS.ProcessEnv;
  private readonly logger: Logger;
  private readonly tls: TlsMaterial;
  private readonly staticAuthorization: string | undefined;
  private readonly tokenFile: TokenFileSource | undefined;
  private readonly exec: ExecCredentialProvider | undefined;
  private readonly impersonation: Record<string, string | string[]> | undefined;
  private current: { dispatcher: Dispatcher; certKey: string | undefined } | undefined;
  private dispatcherPromise: Promise<Dispatcher> | undefined;
  private closed = false;
  private readonly http2: boolean;
  private staticFlat: readonly string[] | undefined;

  constructor(resolved: ResolvedConfig, opts: LoadConnectionOptions, env: NodeJS.ProcessEnv, logger: Logger) {
    const { cluster, user } = resolved;
    this.cluster = cluster;
    this.env = env;
    this.logger = logger;
    const defaultTLS = Boolean(cluster.caFile || cluster.caData || cluster.insecure);
    const info = parseServer(cluster.server, defaultTLS);
    this.server = info.url;
    this.serverPath = info.path;
    this.hostHeader = info.host;
    this.isTLS = info.isTLS;
    this.source = resolved.source;
    this.contextName = resolved.contextName;
    this.namespace = resolved.namespace;
    this.requestTimeoutMs = resolved.requestTimeoutMs;
    this.disableCompression = cluster.disableCompression;
    this.makeKubeConfig = resolved.kubeConfig;
    this.http2 = opts.http2 === true;
    validateProxyUrl(cluster.proxyUrl);
    validateUser(user, resolved.contextName ?? "the user");

    const ca =
      cluster.caData ??
      (cluster.caFile ? readCredentialFile(cluster.caFile, "certificate-authority") : undefined);
    const cert =
      user.certData ?? (user.certFile ? readCredentialFile(user.certFile, "client-certificate") : undefined);
    const key = user.keyData ?? (user.keyFile ? readCredentialFile(user.keyFile, "client-key") : undefined);
    this.tls = {
      ca,
      cert,
      key,
      rejectUnauthorized: !cluster.insecure,
      servername: cluster.tlsServerName,
    };

    // kubectl reads user credentials only when the transport is TLS.
    const clock = opts.clock ?? systemClock;
    if (this.isTLS) {
      if (user.token) this.staticAuthorization = `Bearer ${user.token}`;
      else if (user.username || user.password) {
        this.staticAuthorization = `Basic ${Buffer.from(`${user.username ?? ""}:${user.password ?? ""}`).toString("base64")}`;
      } else if (user.tokenFile) {
        this.tokenFile = new TokenFileSource(
          user.tokenFile,
          opts.tokenFileCacheMs ?? DEFAULT_TOKEN_FILE_CACHE_MS,
          clock,
          logger,
        );
      }
      if (user.exec) {
        this.exec = new ExecCredentialProvider({
          config: user.exec,
          cluster,
          caData: ca,
          env,
          clock,
          logger,
          timeoutMs: opts.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
        });
      }
      this.impersonation = impersonationHeaders(user);
      if (user.authProvider && !user.exec && !this.staticAuthorization && !this.tokenFile) {
        logger.warn("the legacy auth-provider is not supported; no bearer token will be added", {
          authProvider: user.authProvider,
        });
      }
    } else if (user.token || user.tokenFile || user.username || user.exec || user.certData || user.certFile) {
      logger.warn("the API server is not https: user credentials are not sent (kubectl's rule)", {
        server: this.server.origin,
      });
    }
  }

  get kubeConfig(): KubeConfig {
    return this.makeKubeConfig();
  }

  async applyAuth(headers: Record<string, string | string[] | undefined>): Promise<void> {
    if (!this.isTLS) return;
    if (!hasHeader(headers, "authorization")) {
      if (this.staticAuthorization !== undefined) {
        headers.authorization = this.staticAuthorization;
      } else if (this.tokenFile) {
        const t = this.tokenFile.get();
        const token = typeof t === "string" ? t : await t;
        if (token) headers.authorization = `Bearer ${token}`;
      } else if (this.exec) {
        const cred = await this.exec.get();
        if (cred.token) headers.authorization = `Bearer ${cred.token}`;
      }
    }
    if (this.impersonation && !hasHeader(headers, "impersonate-user")) {
      for (const [k, v] of Object.entries(this.impersonation)) {
        if (!hasHeader(headers, k)) headers[k] = Array.isArray(v) ? [...v] : v;
      }
    }
  }

  staticCredentials(): readonly string[] | undefined {
    if (!this.isTLS) return STATIC_NONE;
    if (this.tokenFile !== undefined || this.exec !== undefined) return undefined;
    if (this.staticFlat === undefined) {
      const flat: string[] = [];
      if (this.staticAuthorization !== undefined) flat.push("authorization", this.staticAuthorization);
      for (const [k, v] of Object.entries(this.impersonation ?? {})) {
        if (Array.isArray(v)) for (const x of v) flat.push(k, x);
        else flat.push(k, v);
      }
      this.staticFlat = Object.freeze(flat);
    }
    return this.staticFlat;
  }

  invalidateCredentials(): void {
    this.exec?.invalidate();
    this.tokenFile?.invalidate();
  }

  async tlsOptions(): Promise<TlsConnectionOptions> {
    const material = await this.currentTls();
    const out: TlsConnectionOptions = {
      rejectUnauthorized: material.rejectUnauthorized,
      ALPNProtocols: ["http/1.1"],
      servername: material.servername ?? (isIP(this.server.hostname) ? "" : this.server.hostname),
    };
    if (material.ca) out.ca = material.ca;
    if (material.cert) out.cert = material.cert;
    if (material.key) out.key = material.key;
    return out;
  }

  dispatcher(): Promise<Dispatcher> {
    if (this.closed)
      return Promise.reject(new KproxyError("CONNECTION_CLOSED", "the cluster connection is closed"));
    // Hot path: no exec plugin means the TLS settings never change.
    if (!this.exec && this.current) return Promise.resolve(this.current.dispatcher);
    this.dispatcherPromise ??= this.makeDispatcher().finally(() => {
      this.dispatcherPromise = undefined;
    });
    return this.dispatcherPromise;
  }

  proxyUrl(): URL | undefined {
    return proxyFor(this.server, this.cluster, this.env);
  }

  private async currentTls(): Promise<TlsMaterial> {
    if (!this.exec) return this.tls;
    const cred = await this.exec.get();
    if (cred.clientCertificateData && cred.clientKeyData) {
      return { ...this.tls, cert: cred.clientCertificateData, key: cred.clientKeyData };
    }
    return this.tls;
  }

  private async makeDispatcher(): Promise<Dispatcher> {
    const material = await this.currentTls();
    const certKey = typeof material.cert === "string" ? material.cert : undefined;
    if (this.current && this.current.certKey === certKey) return this.current.dispatcher;
    const connect: TlsConnectOptions = { rejectUnauthorized: material.rejectUnauthorized };
    if (material.ca) connect.ca = material.ca;
    if (material.cert) connect.cert = material.cert;
    if (material.key) connect.key = material.key;
    if (material.servername) connect.servername = material.servername;
    const undici = await import("undici");
    // close() may have run while undici was loading: do not leave a dispatcher open behind it.
    if (this.closed) throw new KproxyError("CONNECTION_CLOSED", "the cluster connection is closed");
    const dispatcher = buildDispatcher(undici, connect, this.cluster, this.env, this.isTLS, this.http2);
    const old = this.current;
    this.current = { dispatcher, certKey };
    if (old) {
      this.logger.info("client certificate rotated; replacing the API server dispatcher");
      // in-flight requests on the old dispatcher finish; new ones use the new certificate
      old.dispatcher.close().catch(() => undefined);
    }
    return dispatcher;
  }

  async close(): Promise<void> {
    this.closed = true;
    const cur = this.current;
    this.current = undefined;
    if (cur) await cur.dispatcher.close().catch(() => undefined);
  }
}

function isIP(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith("[") || host.includes(":");
}

/**
 * Finds the API server and its credentials like kubectl: --kubeconfig, else $KUBECONFIG (merged),
 * else ~/.kube/config; the context and the command-line overrides; else in-cluster; else
 * $KUBERNETES_MASTER or http://localhost:8080 (source "default").
 */
export async function loadConnection(options: LoadConnectionOptions = {}): Promise<ClusterConnection> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? silentLogger;
  const resolved = resolveConfig({
    ...options,
    env,
    inClusterDir: options.inClusterDir ?? DEFAULT_IN_CLUSTER_DIR,
    logger,
  });
  const conn = new Connection(resolved, options, env, logger);
  logger.debug("API server connection loaded", {
    server: conn.server.origin,
    source: conn.source,
    context: conn.contextName,
  });
  return conn;
}
