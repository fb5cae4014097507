/** Wiring: the endpoints watch, the reviews, the balancers, the HTTPS listener and the admin listener. */
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import type { StrategyName } from "@kproxy/balancer";
import { type Clock, errorMessage, KproxyError, type Logger, silentLogger, systemClock } from "@kproxy/core";
import { DEFAULT_PREFERRED_ADDRESS_TYPES, EndpointsWatcher } from "@kproxy/endpoints";
import { type ClusterConnection, loadConnection } from "@kproxy/kubeconfig";
import { type AdminRoute, type AdminServer, MetricsRegistry, startAdminServer } from "@kproxy/runtime";
import { Agent } from "undici";
import { Authenticator, type Authorizer, alwaysAllow, WebhookAuthorizer } from "./auth.js";
import type { AuthorizationMode } from "./config.js";
import { ProxyMetrics } from "./metrics.js";
import { type AccessLogEntry, ProxyServer } from "./server.js";
import { TargetResolver } from "./targets.js";

export interface ApiserverProxyOptions {
  /** The proxy's own access to the cluster; or `kubeconfig` (a file path) to load one. */
  connection?: ClusterConnection;
  kubeconfig?: string;
  /** PEM certificate chain and key of the HTTPS listener. */
  tls: { cert: string | Buffer; key: string | Buffer };
  /** PEM CA bundle for client certificates (--client-ca-file). */
  clientCa?: string | Buffer;
  /** Default "127.0.0.1" here (the binary's --bind-address defaults to 0.0.0.0). */
  bindAddress?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Share the port with other processes (SO_REUSEPORT): how --workers runs several processes. */
  reusePort?: boolean;
  /** Admin listener (/healthz, /readyz, /metrics): default 127.0.0.1 and a free port; -1 disables it. */
  adminBindAddress?: string;
  adminPort?: number;
  /** Default "Webhook" (SubjectAccessReview). "AlwaysAllow" logs a warning. */
  authorizationMode?: AuthorizationMode;
  anonymousAuth?: boolean;
  tokenCacheTtlMs?: number;
  authorizedTtlMs?: number;
  unauthorizedTtlMs?: number;
  /** Default "random", as the API server. */
  balance?: StrategyName;
  preferredAddressTypes?: readonly string[];
  /** Kubelet client credentials (PEM) and the CA to verify kubelets with. */
  kubelet?: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer };
  /** Default true. */
  rewriteHtml?: boolean;
  outlier?: { consecutiveFailures?: number; ejectionTimeMs?: number; maxEjectionPercent?: number };
  /** DEVELOPMENT ONLY: allow loopback pod/endpoint/node addresses. Logs a warning. */
  devAllowLoopbackEndpoints?: boolean;
  /** How long start waits for the endpoints watch (it keeps serving 503 until synced). Default 60 s. */
  syncTimeoutMs?: number;
  logger?: Logger;
  accessLog?: (entry: AccessLogEntry) => void;
  registry?: MetricsRegistry;
  clock?: Clock;
  /** Extra admin routes (they win over /healthz, /readyz, /metrics). */
  adminRoutes?: Record<string, AdminRoute>;
  /** An extra readiness condition (e.g. every --workers process is ready). */
  alsoReady?: () => boolean;
  /** "fast" (default): the lean HTTP/1.1 path; "node": node:https and undici. */
  engine?: "fast" | "node";
}

export interface RunningApiserverProxy {
  /** https://host:port of the proxy listener. */
  readonly url: string;
  readonly port: number;
  /** http://host:port of the admin listener, when enabled. */
  readonly adminUrl: string | undefined;
  readonly metrics: ProxyMetrics;
  readonly watcher: EndpointsWatcher;
  /** Synced and not shutting down. */
  ready(): boolean;
  /** Graceful: readiness off, in-flight requests get up to `graceMs` (default 10 s), then everything closes. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the proxy; resolves once both listeners listen (and the watch synced, or `syncTimeoutMs` passed). */
export async function startApiserverProxy(options: ApiserverProxyOptions): Promise<RunningApiserverProxy> {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  let ownConnection = false;
  let connection = options.connection;
  if (connection === undefined) {
    if (options.kubeconfig === undefined)
      throw new KproxyError("INVALID_OPTIONS", "startApiserverProxy needs a connection or a kubeconfig path");
    connection = await loadConnection({ kubeconfig: options.kubeconfig, logger });
    ownConnection = true;
  }
  const mode = options.authorizationMode ?? "Webhook";
  if (mode === "AlwaysAllow")
    logger.warn(
      "--authorization-mode=AlwaysAllow: every authenticated user may reach every service, pod and node through this proxy. For development only.",
    );
  if (options.devAllowLoopbackEndpoints === true)
    logger.warn(
      "--dev-allow-loopback-endpoints: pod, endpoint and node addresses on the loopback network are dialled. INSECURE, for development only: never use it in a cluster.",
    );
  const metrics = new ProxyMetrics(options.registry ?? new MetricsRegistry());
  const watcher = new EndpointsWatcher({
    connection,
    watch: { services: true, endpointSlices: true, pods: true, nodes: true },
    logger,
    clock,
    preferredAddressTypes: options.preferredAddressTypes ?? DEFAULT_PREFERRED_ADDRESS_TYPES,
  }).start();
  const resolver = new TargetResolver({
    snapshot: () => watcher.snapshot(),
    balance: options.balance ?? "random",
    preferredAddressTypes: options.preferredAddressTypes ?? DEFAULT_PREFERRED_ADDRESS_TYPES,
    allowLoopback: options.devAllowLoopbackEndpoints === true,
    outlier: {
      consecutiveFailures: options.outlier?.consecutiveFailures ?? 1,
      baseEjectionMs: options.outlier?.ejectionTimeMs ?? 30_000,
      maxEjectionPercent: options.outlier?.maxEjectionPercent ?? 50,
    },
    clock,
    onHealthEvent: (pool, e) => {
      if (e.type === "ejected") {
        metrics.ejections.inc({ target: `service/${pool}`, endpoint: e.key });
        logger.warn("endpoint ejected", { target: `service/${pool}`, endpoint: e.key, untilMs: e.untilMs });
      } else if (e.type === "unejected")
        logger.info("endpoint back in balancing", { target: `service/${pool}`, endpoint: e.key });
    },
  });
  const unsubscribe = watcher.onChange((changes) => resolver.prune(changes.servicePorts));
  const authenticator = new Authenticator({
    connection,
    tokenTtlMs: options.tokenCacheTtlMs ?? 120_000,
    anonymous: options.anonymousAuth === true,
    clientCertificates: options.clientCa !== undefined,
    clock,
  });
  const authorizer: Authorizer =
    mode === "AlwaysAllow"
      ? alwaysAllow
      : new WebhookAuthorizer({
          connection,
          authorizedTtlMs: options.authorizedTtlMs ?? 300_000,
          unauthorizedTtlMs: options.unauthorizedTtlMs ?? 30_000,
          clock,
        });
  // Cache lookups, counted on scrape.
  const seen = { th: 0, tm: 0, ah: 0, am: 0 };
  metrics.registry.onCollect(() => {
    const t = authenticator.tokens;
    metrics.authCache.inc({ cache: "token", result: "hit" }, t.hits - seen.th);
    metrics.authCache.inc({ cache: "token", result: "miss" }, t.misses - seen.tm);
    [seen.th, seen.tm] = [t.hits, t.misses];
    if (authorizer instanceof WebhookAuthorizer) {
      const c = authorizer.cache;
      metrics.authCache.inc({ cache: "authorization", result: "hit" }, c.hits - seen.ah);
      metrics.authCache.inc({ cache: "authorization", result: "miss" }, c.misses - seen.am);
      [seen.ah, seen.am] = [c.hits, c.misses];
    }
  });
  const insecureTls: TlsConnectionOptions = { rejectUnauthorized: false };
  const kubeletTls: TlsConnectionOptions = {
    rejectUnauthorized: options.kubelet?.ca !== undefined,
    ...(options.kubelet?.ca !== undefined ? { ca: options.kubelet.ca } : {}),
    ...(options.kubelet?.cert !== undefined ? { cert: options.kubelet.cert } : {}),
    ...(options.kubelet?.key !== undefined ? { key: options.kubelet.key } : {}),
  };
  const dispatcher = new Agent({
    connect: insecureTls,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const kubeletDispatcher = new Agent({
    connect: kubeletTls,
    keepAliveTimeout: 30_000,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  let closing = false;
  const server = new ProxyServer({
    tls: options.tls,
    ...(options.clientCa !== undefined ? { clientCa: options.clientCa } : {}),
    authenticator,
    authorizer,
    resolver,
    synced: () => watcher.isSynced,
    dispatcher,
    kubeletDispatcher,
    upgradeTls: { insecure: insecureTls, kubelet: kubeletTls },
    rewriteHtml: options.rewriteHtml !== false,
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
    metrics,
    logger,
    ...(options.accessLog !== undefined ? { accessLog: options.accessLog } : {}),
  });
  const ready = () => watcher.isSynced && !closing;
  let admin: AdminServer | undefined;
  const cleanup = async () => {
    unsubscribe();
    await Promise.allSettled([
      watcher.close(),
      dispatcher.close(),
      kubeletDispatcher.close(),
      admin?.close(),
    ]);
    if (ownConnection) await connection.close();
  };
  let url: string;
  try {
    const bindAddress = options.bindAddress ?? "127.0.0.1";
    const address = await server.listen(options.port ?? 0, bindAddress, options.reusePort === true);
    const host = bindAddress === "0.0.0.0" || bindAddress === "::" ? "127.0.0.1" : bindAddress;
    url = `https://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
    if ((options.adminPort ?? 0) >= 0)
      admin = await startAdminServer({
        host: options.adminBindAddress ?? "127.0.0.1",
        port: options.adminPort ?? 0,
        metrics: metrics.registry,
        ready: () =>
          closing
            ? { ok: false, reason: "shutting down" }
            : !watcher.isSynced
              ? { ok: false, reason: "endpoints not synced" }
              : options.alsoReady !== undefined && !options.alsoReady()
                ? { ok: false, reason: "workers not ready" }
                : true,
        logger,
        routes: {
          "/status": (_req, res) => {
            const pools = [...resolver.servicePools.values()].map((p) => ({
              servicePort: p.name,
              endpoints: p.allowed,
              refused: p.refused,
            }));
            const body = JSON.stringify(
              { synced: watcher.isSynced, informers: watcher.status(), pools },
              null,
              2,
            );
            res.writeHead(200, {
              "Content-Type": "application/json",
              "Content-Length": Buffer.byteLength(body),
            });
            res.end(body);
          },
          ...options.adminRoutes,
        },
      });
  } catch (err) {
    await server.close(0);
    await cleanup();
    throw err;
  }
  await watcher.waitForSync(options.syncTimeoutMs ?? 60_000).catch((err: unknown) => {
    logger.warn("endpoints not synced yet; answering 503 until they are", { error: errorMessage(err) });
  });
  logger.info("apiserver-proxy serving", { url, admin: admin?.url, authz: mode });
  let closed: Promise<void> | undefined;
  return {
    url,
    port: server.port,
    adminUrl: admin?.url,
    metrics,
    watcher,
    ready,
    close: (graceMs = 10_000) => {
      closed ??= (async () => {
        closing = true;
        await server.close(graceMs);
        await cleanup();
      })();
      return closed;
    },
  };
}
