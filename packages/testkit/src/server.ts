/** TestApiServer: an in-memory Kubernetes API server over HTTPS or HTTP, with fault injection. */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { KproxyError, type Logger, silentLogger } from "@kproxy/core";
import { IpAllocator, PortAllocator } from "./allocators.js";
import { EndpointSliceController } from "./controllers.js";
import { KUBE_VERSION } from "./discovery.js";
import { handleRest, type RestContext, sendError, sendJson, sendStatus, type UserInfo } from "./handlers.js";
import { type KubeconfigOptions, renderKubeconfig } from "./kubeconfig.js";
import { openapiResponse } from "./openapi.js";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from "./patch.js";
import { type CertificateAuthority, createCertificateAuthority, type KeyPair } from "./pki.js";
import { findByKind, RESOURCES, type ResourceInfo } from "./resources.js";
import {
  allowAll,
  type ReviewCounts,
  Reviews,
  type SubjectAuthorizer,
  type TokenReviewer,
} from "./reviews.js";
import { parseFieldSelector, parseLabelSelector } from "./selectors.js";
import { ApiError, failureStatus, reasonForCode, type Status } from "./status.js";
import { type DeleteOptions, type KObject, Store } from "./store.js";
import { installHooks } from "./strategies.js";
import { handlePodStream, type PodStreamContext } from "./streams/index.js";

export type HealthCheck = "healthz" | "livez" | "readyz";

export interface TokenUser {
  user: string;
  groups?: string[];
}

export interface TestApiServerOptions {
  /**
   * Start another API server of the same cluster: it shares the primary's objects, watches,
   * allocators, tokens, reviews and CA, as replicas of kube-apiserver share etcd. Like real API
   * servers it listens on the primary's port at its own address (`host`, e.g. "127.0.0.2"), and
   * adds that address to the default/kubernetes Endpoints and EndpointSlice.
   */
  replicaOf?: TestApiServer;
  /** Serve HTTPS (default true) with a server certificate from `ca`. */
  tls?: boolean;
  /** Listen address; default "127.0.0.1". */
  host?: string;
  /** Listen port; default 0 (an ephemeral port, kept across restart()). */
  port?: number;
  /** Service ClusterIP range; default "10.96.0.0/12". */
  serviceCidr?: string;
  /** NodePort range, inclusive; default [30000, 32767]. */
  nodePortRange?: [number, number];
  /** Run the built-in EndpointSlice controller (default true). */
  endpointSliceController?: boolean;
  /** Extra bearer tokens. The admin token is always accepted. */
  tokens?: Record<string, TokenUser>;
  /** Treat unauthenticated requests as system:anonymous instead of 401 (default false). */
  allowAnonymous?: boolean;
  /** Where a pod's port-forward connects; passed to the streams handler. */
  portForwardTarget?: PodStreamContext["portForwardTarget"];
  logger?: Logger;
  /** The CA that issues the server certificate and that client certificates must chain to. */
  ca?: CertificateAuthority;
  /** Admin bearer token; default random. */
  adminToken?: string;
  /** Objects created at start (namespaces first is not required: they are ordered). */
  seed?: KObject[];
  /** Interval of BOOKMARK events for watches that allow them; default 60000 (0 disables). */
  bookmarkIntervalMs?: number;
  /** Watch duration when the client gives no timeoutSeconds; default 1800000. */
  watchTimeoutMs?: number;
  /** Events kept for watches before older ones are compacted; default 10000. */
  historyLimit?: number;
  /** Clock for timestamps and AGE columns; default Date.now. */
  now?: () => number;
  /** Answers TokenReviews; default: the admin token and `tokens` authenticate. */
  tokenReview?: TokenReviewer;
  /** Answers SubjectAccessReviews; default: everything is allowed. */
  authorizer?: SubjectAuthorizer;
}

export interface FailMatch {
  method?: string;
  pathPrefix?: string;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export type PatchType = "merge" | "strategic" | "json";

interface Fault {
  remaining: number;
  status: number;
  match: FailMatch;
}

function resourceFor(apiVersion: string, kind: string): ResourceInfo {
  const r = findByKind(apiVersion, kind);
  if (!r) throw new ApiError(404, "NotFound", `no resource for ${apiVersion}, Kind=${kind} on this server`);
  return r;
}

function rawStatus(socket: Duplex, status: Status): void {
  const body = JSON.stringify(status);
  socket.end(
    `HTTP/1.1 ${status.code} ${STATUS_CODES[status.code] ?? ""}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const STREAM_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)$/;

export class TestApiServer {
  readonly ca: CertificateAuthority | undefined;
  readonly adminToken: string;
  private readonly store: Store;
  private readonly opts: TestApiServerOptions;
  private readonly logger: Logger;
  private readonly tls: boolean;
  private readonly host: string;
  private serverCert: KeyPair | undefined;
  private server: Server | undefined;
  private currentPort: number;
  private readonly sockets = new Set<Socket | Duplex>();
  private readonly watches = new Map<ServerResponse, () => void>();
  private readonly faults: Fault[] = [];
  private latencyMs = 0;
  private readonly health: Record<HealthCheck, boolean> = { healthz: true, livez: true, readyz: true };
  private readonly tokens: Map<string, UserInfo>;
  private readonly ips: IpAllocator;
  private readonly nodePorts: PortAllocator;
  private readonly now: () => number;
  private readonly reviews: Reviews;
  private closed = false;

  private constructor(
    opts: TestApiServerOptions,
    ca: CertificateAuthority | undefined,
    serverCert: KeyPair | undefined,
  ) {
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.tls = opts.tls !== false;
    this.host = opts.host ?? "127.0.0.1";
    this.currentPort = opts.port ?? 0;
    this.ca = ca;
    this.serverCert = serverCert;
    const primary = opts.replicaOf;
    if (primary) {
      this.now = primary.now;
      this.adminToken = primary.adminToken;
      this.tokens = primary.tokens;
      this.reviews = primary.reviews;
      this.store = primary.store;
      this.ips = primary.ips;
      this.nodePorts = primary.nodePorts;
      return;
    }
    this.now = opts.now ?? Date.now;
    this.adminToken = opts.adminToken ?? randomBytes(24).toString("base64url");
    this.tokens = new Map([
      [this.adminToken, { username: "admin", groups: ["system:masters", "system:authenticated"] }],
    ]);
    for (const [t, u] of Object.entries(opts.tokens ?? {}))
      this.tokens.set(t, { username: u.user, groups: [...(u.groups ?? []), "system:authenticated"] });
    this.reviews = new Reviews(
      opts.tokenReview ??
        ((token) => {
          const u = this.tokens.get(token);
          return u
            ? { authenticated: true, user: { username: u.username, groups: u.groups } }
            : { authenticated: false };
        }),
      opts.authorizer ?? allowAll,
    );
    this.store = new Store({ now: this.now, historyLimit: opts.historyLimit });
    this.ips = new IpAllocator(opts.serviceCidr ?? "10.96.0.0/12");
    this.nodePorts = new PortAllocator(opts.nodePortRange ?? [30000, 32767]);
    installHooks(this.store, this.ips, this.nodePorts);
    if (opts.endpointSliceController !== false) new EndpointSliceController(this.store);
  }

  /** Start a server; resolves once it listens. */
  static async start(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
    const primary = opts.replicaOf;
    if (primary) {
      const host = opts.host ?? "127.0.0.1";
      if (host === primary.host) {
        throw new KproxyError(
          "TESTKIT_REPLICA_ADDRESS",
          `a replica needs its own address (API servers share one port): ${host} is the primary's; use e.g. 127.0.0.2`,
        );
      }
      opts = { ...opts, tls: primary.tls, ca: primary.ca, port: opts.port ?? primary.port };
    }
    const tls = opts.tls !== false;
    let ca = opts.ca;
    let cert: KeyPair | undefined;
    if (tls) {
      ca ??= await createCertificateAuthority({ commonName: "kproxy-testkit-ca" });
      const host = opts.host ?? "127.0.0.1";
      const ips = ["127.0.0.1", "::1"];
      const dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"];
      if (/^[\d.]+$/.test(host) || host.includes(":")) {
        if (host !== "0.0.0.0" && host !== "::" && !ips.includes(host)) ips.push(host);
      } else if (!dns.includes(host)) dns.push(host);
      cert = await ca.issueServerCert({ dnsNames: dns, ips });
    }
    const s = new TestApiServer(opts, ca, cert);
    if (primary) {
      await s.listen();
      s.addKubernetesEndpoint();
      return s;
    }
    s.bootstrap();
    await s.listen();
    s.bootstrapKubernetesService();
    return s;
  }

  get port(): number {
    return this.currentPort;
  }

  get url(): string {
    const h =
      this.host === "0.0.0.0" || this.host === "::"
        ? "127.0.0.1"
        : this.host.includes(":")
          ? `[${this.host}]`
          : this.host;
    return `${this.tls ? "https" : "http"}://${h}:${this.currentPort}`;
  }

  /** Kubeconfig text (JSON, valid YAML) pointing at this server. */
  kubeconfig(opts: KubeconfigOptions = {}): string {
    const user = opts.user ?? (opts.clientCert ? "client-cert" : "admin");
    return renderKubeconfig(
      { url: this.url, caPem: this.ca?.certPem, adminToken: this.adminToken },
      { ...opts, user },
    );
  }

  async writeKubeconfig(path: string, opts: KubeconfigOptions = {}): Promise<void> {
    await writeFile(path, this.kubeconfig(opts), { mode: 0o600 });
  }

  // ------------------------------------------------------------ direct object access

  /** Create an object (same semantics as POST). Throws ApiError. */
  create<T extends object>(obj: T): T {
    const o = obj as unknown as KObject;
    const r = resourceFor(o.apiVersion, o.kind);
    return this.store.create(r, this.namespaceOf(r, o), o) as unknown as T;
  }

  /** Namespaced objects without metadata.namespace go to "default", as kubectl does. */
  private namespaceOf(r: ResourceInfo, o: KObject): string | undefined {
    return r.namespaced ? (o.metadata?.namespace ?? "default") : undefined;
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KObject {
    return this.store.get(resourceFor(apiVersion, kind), namespace, name);
  }

  list(
    apiVersion: string,
    kind: string,
    opts: ListOptions = {},
  ): { items: KObject[]; resourceVersion: string } {
    const r = resourceFor(apiVersion, kind);
    return this.store.list(r, {
      namespace: opts.namespace,
      labels: parseLabelSelector(opts.labelSelector ?? ""),
      fields: parseFieldSelector(opts.fieldSelector ?? "", r.fieldLabels, r.kind),
    });
  }

  /** Replace an object (same semantics as PUT: 409 on a stale resourceVersion). */
  update<T extends object>(obj: T): T {
    const o = obj as unknown as KObject;
    const r = resourceFor(o.apiVersion, o.kind);
    return this.store.update(r, this.namespaceOf(r, o), o.metadata?.name ?? "", o) as unknown as T;
  }

  /** Replace an object's status (PUT .../status). */
  updateStatus<T extends object>(obj: T): T {
    const o = obj as unknown as KObject;
    const r = resourceFor(o.apiVersion, o.kind);
    return this.store.update(r, o.metadata?.namespace, o.metadata?.name ?? "", o, {
      subresource: "status",
    }) as unknown as T;
  }

  patch(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    opts: { type?: PatchType; subresource?: "status" } = {},
  ): KObject {
    const r = resourceFor(apiVersion, kind);
    const type = opts.type ?? "merge";
    return this.store.modify(
      r,
      namespace,
      name,
      (cur) =>
        (type === "json"
          ? applyJsonPatch(cur, patch)
          : type === "strategic"
            ? applyStrategicMergePatch(cur, patch, r.kind)
            : applyMergePatch(cur, patch)) as KObject,
      opts.subresource ? { subresource: opts.subresource } : {},
    );
  }

  delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    opts: DeleteOptions = {},
  ): KObject {
    return this.store.delete(resourceFor(apiVersion, kind), namespace, name, opts);
  }

  // ------------------------------------------------------------ reviews

  /** Decide TokenReviews (authentication.k8s.io/v1) with `fn` from now on. */
  setTokenReview(fn: TokenReviewer): void {
    this.reviews.tokenReviewer = fn;
  }

  /** Decide SubjectAccessReviews (authorization.k8s.io/v1) with `fn` from now on. */
  setAuthorizer(fn: SubjectAuthorizer): void {
    this.reviews.authorizer = fn;
  }

  /** How many TokenReviews and SubjectAccessReviews were answered so far. */
  get reviewCounts(): Readonly<ReviewCounts> {
    return { ...this.reviews.counts };
  }

  // ------------------------------------------------------------ faults

  /** End every open watch stream (clients see a clean end of stream and re-watch). */
  closeAllWatches(): void {
    for (const close of [...this.watches.values()]) close();
  }

  /** The next `count` requests (matching `match`) fail with a Status of code `status`. */
  failNext(count: number, status: number, match: FailMatch = {}): void {
    if (!Number.isInteger(count) || count < 1)
      throw new KproxyError("TESTKIT_BAD_FAULT", "count must be a positive integer");
    if (!Number.isInteger(status) || status < 400 || status > 599)
      throw new KproxyError("TESTKIT_BAD_FAULT", "status must be an HTTP error code (400-599)");
    this.faults.push({ remaining: count, status, match });
  }

  /** Delay every request by `ms` before it is handled (0 to stop). */
  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  /** Drop the watch history: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.store.compact();
  }

  setHealth(check: HealthCheck, ok: boolean): void {
    this.health[check] = ok;
  }

  // ------------------------------------------------------------ lifecycle

  /** Stop listening and drop every connection; the data is kept for restart(). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.closeAllWatches();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listen again on the same port, with the same data. */
  async restart(): Promise<void> {
    if (this.closed) throw new KproxyError("TESTKIT_CLOSED", "the server was closed");
    await this.stop();
    await this.listen();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  // ------------------------------------------------------------ internals

  private bootstrap(): void {
    const ns = (name: string): KObject => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    for (const n of ["default", "kube-system", "kube-public", "kube-node-lease"])
      this.store.create(RESOURCES.find((r) => r.kind === "Namespace")!, undefined, ns(n));
    const seed = [...(this.opts.seed ?? [])];
    const rank = (o: KObject): number =>
      o.kind === "Namespace" ? 0 : o.kind === "Node" ? 1 : o.kind === "Service" ? 3 : 2;
    seed.sort((a, b) => rank(a) - rank(b));
    for (const o of seed) {
      const r = resourceFor(o.apiVersion, o.kind);
      if (r.kind === "Namespace" && this.store.tryGet(r, undefined, o.metadata.name ?? "")) continue;
      this.store.create(r, o.metadata?.namespace ?? (r.namespaced ? "default" : undefined), o);
    }
  }

  /** Adds this replica's address to default/kubernetes (Endpoints and EndpointSlice). */
  private addKubernetesEndpoint(): void {
    const address = this.advertiseAddress();
    const epRes = findByKind("v1", "Endpoints")!;
    const ep = this.store.tryGet(epRes, "default", "kubernetes") as
      | (KObject & { subsets?: { addresses?: { ip: string }[] }[] })
      | undefined;
    const subset = ep?.subsets?.[0];
    if (ep && subset && !subset.addresses?.some((a) => a.ip === address)) {
      subset.addresses = [...(subset.addresses ?? []), { ip: address }];
      this.store.update(epRes, "default", "kubernetes", ep);
    }
    const sliceRes = findByKind("discovery.k8s.io/v1", "EndpointSlice")!;
    const slice = this.store.tryGet(sliceRes, "default", "kubernetes") as
      | (KObject & { endpoints?: { addresses: string[] }[] })
      | undefined;
    if (slice && !slice.endpoints?.some((e) => e.addresses.includes(address))) {
      slice.endpoints = [
        ...(slice.endpoints ?? []),
        { addresses: [address], conditions: { ready: true } } as never,
      ];
      this.store.update(sliceRes, "default", "kubernetes", slice);
    }
  }

  private advertiseAddress(): string {
    return this.host === "0.0.0.0" || this.host === "::" || this.host === "localhost"
      ? "127.0.0.1"
      : this.host;
  }

  private bootstrapKubernetesService(): void {
    const svcRes = findByKind("v1", "Service")!;
    if (this.store.tryGet(svcRes, "default", "kubernetes")) return;
    this.store.create(svcRes, "default", {
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: "kubernetes",
        namespace: "default",
        labels: { component: "apiserver", provider: "kubernetes" },
      },
      spec: {
        clusterIP: this.ips.first(),
        ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: this.currentPort }],
      },
    });
    const address = this.advertiseAddress();
    this.store.create(findByKind("v1", "Endpoints")!, "default", {
      apiVersion: "v1",
      kind: "Endpoints",
      metadata: {
        name: "kubernetes",
        namespace: "default",
        labels: { "endpointslice.kubernetes.io/skip-mirror": "true" },
      },
      subsets: [
        { addresses: [{ ip: address }], ports: [{ name: "https", port: this.currentPort, protocol: "TCP" }] },
      ],
    });
    this.store.create(findByKind("discovery.k8s.io/v1", "EndpointSlice")!, "default", {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: "kubernetes",
        namespace: "default",
        labels: { "kubernetes.io/service-name": "kubernetes" },
      },
      addressType: "IPv4",
      endpoints: [{ addresses: [address], conditions: { ready: true } }],
      ports: [{ name: "https", port: this.currentPort, protocol: "TCP" }],
    });
  }

  private async listen(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      void this.onRequest(req, res);
    };
    const server: Server = this.tls
      ? (createHttpsServer(
          {
            key: this.serverCert!.keyPem,
            cert: this.serverCert!.certPem,
            ca: this.ca ? [this.ca.certPem] : undefined,
            requestCert: true,
            rejectUnauthorized: false,
          },
          handler,
        ) as unknown as Server)
      : createHttpServer(handler);
    // Track raw TCP sockets (for HTTPS too, so a handshake still under way is covered), and refuse
    // any connection that arrives once stop() has begun.
    server.on("connection", (s: Socket) => {
      if (this.server !== server) {
        s.destroy();
        return;
      }
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    server.on("clientError", (_err, socket: Duplex) => {
      if (socket.writable) rawStatus(socket, failureStatus(400, "BadRequest", "malformed HTTP request"));
      else socket.destroy();
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.onUpgrade(req, socket, head);
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new KproxyError(
            "TESTKIT_LISTEN",
            `cannot listen on ${this.host}:${this.currentPort}: ${err.message}`,
            { cause: err },
          ),
        );
      server.once("error", onError);
      server.listen(this.currentPort, this.host, () => {
        server.off("error", onError);
        resolve();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === "object") this.currentPort = addr.port;
    this.server = server;
    this.logger.info("test API server listening", { url: this.url });
  }

  private authenticate(req: IncomingMessage): UserInfo | undefined {
    const sock = req.socket as TLSSocket;
    if (this.tls && sock.authorized) {
      const cert = sock.getPeerCertificate();
      const cn = cert?.subject?.CN;
      if (typeof cn === "string" && cn !== "") {
        const o = cert.subject.O as string | string[] | undefined;
        const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
        return { username: cn, groups: [...groups, "system:authenticated"] };
      }
    }
    const auth = req.headers.authorization;
    if (auth) {
      const m = auth.match(/^Bearer\s+(\S+)$/i);
      return m ? this.tokens.get(m[1]!) : undefined;
    }
    if (this.opts.allowAnonymous) return { username: "system:anonymous", groups: ["system:unauthenticated"] };
    return undefined;
  }

  /** Latency and injected failures; returns the Status to fail with, if any. */
  private async faultsFor(method: string, path: string): Promise<Status | undefined> {
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    const i = this.faults.findIndex(
      (f) =>
        (f.match.method === undefined || f.match.method.toUpperCase() === method) &&
        (f.match.pathPrefix === undefined || path.startsWith(f.match.pathPrefix)),
    );
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    f.remaining--;
    if (f.remaining <= 0) this.faults.splice(i, 1);
    return failureStatus(f.status, reasonForCode(f.status), `injected failure (${f.status})`);
  }

  private unauthorized(): Status {
    return failureStatus(401, "Unauthorized", "Unauthorized");
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = this.now();
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      sendStatus(res, failureStatus(400, "BadRequest", "malformed request URL"));
      return;
    }
    const method = (req.method ?? "GET").toUpperCase();
    try {
      const fault = await this.faultsFor(method, url.pathname);
      if (fault) {
        req.resume();
        sendStatus(res, fault);
        return;
      }
      if (this.handlePublic(url, res)) return;
      const user = this.authenticate(req);
      if (!user) {
        req.resume();
        sendStatus(res, this.unauthorized());
        return;
      }
      await handleRest(req, res, url, this.restContext(), user);
    } catch (err) {
      req.resume();
      sendError(res, err, this.logger);
    } finally {
      this.logger.debug("request", {
        method,
        path: url.pathname,
        status: res.statusCode,
        ms: this.now() - started,
      });
    }
  }

  private restContext(): RestContext {
    return {
      store: this.store,
      logger: this.logger,
      now: this.now,
      serverAddress: () => `${this.host === "0.0.0.0" ? "127.0.0.1" : this.host}:${this.currentPort}`,
      openapi: openapiResponse,
      trackWatch: (res, close) => {
        this.watches.set(res, close);
        return () => this.watches.delete(res);
      },
      bookmarkIntervalMs: this.opts.bookmarkIntervalMs ?? 60_000,
      watchTimeoutMs: this.opts.watchTimeoutMs ?? 1_800_000,
      reviews: this.reviews,
    };
  }

  /** /version and the health endpoints, served without authentication. */
  private handlePublic(url: URL, res: ServerResponse): boolean {
    const p = url.pathname;
    if (p === "/version" || p === "/version/") {
      sendJson(res, 200, KUBE_VERSION);
      return true;
    }
    const m = p.match(/^\/(healthz|livez|readyz)(\/.*)?$/);
    if (!m) return false;
    const check = m[1] as HealthCheck;
    const ok = this.health[check];
    const verbose = url.searchParams.has("verbose");
    let body: string;
    if (ok) body = verbose ? `[+]ping ok\n[+]etcd ok\n${check} check passed\n` : "ok";
    else
      body = verbose
        ? `[+]ping ok\n[-]etcd failed: reason withheld\n${check} check failed\n`
        : `[+]ping ok\n[-]etcd failed: reason withheld\n${check} check failed\n`;
    res.writeHead(ok ? 200 : 500, {
      "Content-Type": "text/plain; charset=utf-8",
      "X-Content-Type-Options": "nosniff",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
    return true;
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      const fault = await this.faultsFor((req.method ?? "GET").toUpperCase(), url.pathname);
      if (fault) return rawStatus(socket, fault);
      const user = this.authenticate(req);
      if (!user) return rawStatus(socket, this.unauthorized());
      const m = url.pathname.match(STREAM_PATH);
      if (!m)
        return rawStatus(
          socket,
          failureStatus(
            400,
            "BadRequest",
            "upgrade requests are only served for pods' exec, attach and portforward",
          ),
        );
      const namespace = decodeURIComponent(m[1]!);
      const name = decodeURIComponent(m[2]!);
      const pod = this.store.tryGet(findByKind("v1", "Pod")!, namespace, name);
      if (!pod)
        return rawStatus(
          socket,
          new ApiError(404, "NotFound", `pods "${name}" not found`, { name, kind: "pods" }).toStatus(),
        );
      const spec = (pod.spec ?? {}) as { containers?: { name?: string }[] };
      const containerNames = (spec.containers ?? []).map((c) => c.name ?? "").filter((n) => n !== "");
      const ctx: PodStreamContext = {
        namespace,
        pod: name,
        subresource: m[3] as PodStreamContext["subresource"],
        query: url.searchParams,
        containerNames,
        logger: this.logger,
      };
      if (this.opts.portForwardTarget) ctx.portForwardTarget = this.opts.portForwardTarget;
      handlePodStream(req, socket, head, ctx);
    } catch (err) {
      this.logger.warn("upgrade request failed", { err });
      if (socket.writable) rawStatus(socket, failureStatus(500, "InternalError", "Internal error occurred"));
    }
  }
}
