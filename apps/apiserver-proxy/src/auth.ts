/**
 * Authentication (client certificates, bearer tokens checked with TokenReview) and authorization
 * (SubjectAccessReview) against the cluster, with the answers cached briefly as the API server's
 * webhook authenticator/authorizer cache them.
 */
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { type Clock, errorMessage, KproxyError, systemClock } from "@kproxy/core";
import { type Dispatcher, request } from "undici";

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** What a request asks to do, in the API server's authorizer attributes. */
export interface ProxyAttributes {
  verb: string;
  /** "" for nodes. */
  namespace: string;
  resource: "services" | "pods" | "nodes";
  subresource: "proxy";
  /** The `{id}` segment as given (e.g. "web:http"), as the API server's RequestInfo has it. */
  name: string;
}

export interface Decision {
  allowed: boolean;
  /** The authorizer's reason, appended to the 403 message. */
  reason: string;
}

/** What the reviews need of the cluster connection (a ClusterConnection satisfies it). */
export interface ReviewConnection {
  readonly server: URL;
  readonly serverPath: string;
  readonly hostHeader: string;
  dispatcher(): Promise<Dispatcher>;
  applyAuth(headers: Record<string, string | string[] | undefined>): Promise<void>;
  invalidateCredentials?(): void;
}

/** What authentication looks at: the client connection (its TLS certificate) and the Authorization header. */
export interface AuthRequest {
  socket: unknown;
  headers: { authorization?: string | undefined };
}

const AUTHENTICATED = "system:authenticated";
const REVIEW_TIMEOUT_MS = 10_000;

/** POSTs a review object to the API server and returns its `status`. */
async function postReview(
  conn: ReviewConnection,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const headers: Record<string, string | string[] | undefined> = {
    host: conn.hostHeader,
    "content-type": "application/json",
    accept: "application/json",
    "user-agent": "apiserver-proxy",
  };
  await conn.applyAuth(headers);
  let status: number;
  let text: string;
  try {
    const res = await request(new URL(`${conn.serverPath}${path}`, conn.server.origin), {
      method: "POST",
      dispatcher: await conn.dispatcher(),
      headers: headers as Record<string, string>,
      body: JSON.stringify(body),
      headersTimeout: REVIEW_TIMEOUT_MS,
      bodyTimeout: REVIEW_TIMEOUT_MS,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new KproxyError("REVIEW_FAILED", `${path}: ${errorMessage(err)}`, { cause: err });
  }
  if (status === 401) conn.invalidateCredentials?.();
  if (status !== 200 && status !== 201) {
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not a Status
    }
    throw new KproxyError("REVIEW_FAILED", `${path}: ${status}: ${message}`, { details: { status } });
  }
  try {
    const obj = JSON.parse(text) as { status?: Record<string, unknown> };
    return obj.status ?? {};
  } catch (err) {
    throw new KproxyError("REVIEW_FAILED", `${path}: invalid JSON answer`, { cause: err });
  }
}

/** A TTL cache with in-flight de-duplication and a size bound (oldest entries go first). */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresMs: number }>();
  private readonly inflight = new Map<string, Promise<V>>();
  hits = 0;
  misses = 0;
  /** When the entry returned by the last synchronous hit of `get` expires. */
  lastHitExpiresMs = 0;

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached value, or `load()`'s (cached for `ttlOf(value)` ms; 0 or less: not cached). */
  get(key: string, load: () => Promise<V>, ttlOf: (value: V) => number): V | Promise<V> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.expiresMs > this.clock.now()) {
        this.hits++;
        this.lastHitExpiresMs = hit.expiresMs;
        return hit.value;
      }
      this.entries.delete(key);
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) {
      this.hits++;
      return pending;
    }
    this.misses++;
    const p = load().then(
      (value) => {
        this.inflight.delete(key);
        const ttl = ttlOf(value);
        if (ttl > 0) {
          if (this.entries.size >= this.maxEntries) {
            const oldest = this.entries.keys().next().value;
            if (oldest !== undefined) this.entries.delete(oldest);
          }
          this.entries.set(key, { value, expiresMs: this.clock.now() + ttl });
        }
        return value;
      },
      (err: unknown) => {
        this.inflight.delete(key);
        throw err;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  clear(): void {
    this.entries.clear();
    this.generation++;
  }

  /** Counts clear() calls: a copy of an entry made outside the cache is stale once this changes. */
  generation = 0;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function withAuthenticated(groups: string[]): string[] {
  return groups.includes(AUTHENTICATED) ? groups : [...groups, AUTHENTICATED];
}

export interface AuthenticatorOptions {
  connection: ReviewConnection;
  /** Cache time of a TokenReview answer (authenticated or not: failures for at most 10 s). */
  tokenTtlMs: number;
  /** Treat requests without credentials as system:anonymous. */
  anonymous: boolean;
  /** Trust verified client certificates (the server verifies them against --client-ca-file). */
  clientCertificates: boolean;
  clock?: Clock;
}

const FAILURE_TTL_MS = 10_000;

/** x509 client certificates first, then bearer tokens (TokenReview), as the API server's union authenticator. */
export class Authenticator {
  private readonly certUsers = new WeakMap<object, UserInfo | null>();
  /**
   * Per connection, the last token and its cached answer: a client sends the same token on every
   * request of a connection, and this spares hashing it each time. It keeps the token in memory as
   * long as the connection that carries it.
   */
  private readonly lastToken = new WeakMap<
    object,
    { token: string; user: UserInfo | null; expiresMs: number; generation: number }
  >();
  private readonly clock: Clock;
  readonly tokens: TtlCache<UserInfo | null>;

  constructor(private readonly options: AuthenticatorOptions) {
    this.clock = options.clock ?? systemClock;
    this.tokens = new TtlCache(this.clock);
  }

  /** The user, or undefined (401). Rejects with REVIEW_FAILED when the TokenReview itself failed. */
  authenticate(req: AuthRequest): UserInfo | undefined | Promise<UserInfo | undefined> {
    if (this.options.clientCertificates) {
      const user = this.certificateUser(req.socket as TLSSocket);
      if (user !== null) return user;
    }
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (m === null) return undefined;
      const token = m[1] as string;
      const conn = typeof req.socket === "object" && req.socket !== null ? req.socket : undefined;
      const last = conn !== undefined ? this.lastToken.get(conn) : undefined;
      if (
        last !== undefined &&
        last.token === token &&
        last.expiresMs > this.clock.now() &&
        last.generation === this.tokens.generation
      )
        return last.user ?? undefined;
      const result = this.tokenUser(token);
      if (result instanceof Promise) return result.then((u) => u ?? undefined);
      if (conn !== undefined)
        this.lastToken.set(conn, {
          token,
          user: result,
          expiresMs: this.tokens.lastHitExpiresMs,
          generation: this.tokens.generation,
        });
      return result ?? undefined;
    }
    if (this.options.anonymous) return { username: "system:anonymous", groups: ["system:unauthenticated"] };
    return undefined;
  }

  private certificateUser(socket: TLSSocket): UserInfo | null {
    const cached = this.certUsers.get(socket);
    if (cached !== undefined) return cached;
    let user: UserInfo | null = null;
    if (socket.authorized === true) {
      const cert = socket.getPeerCertificate();
      const cn = cert?.subject?.CN;
      if (typeof cn === "string" && cn !== "") {
        const o = cert.subject.O as string | string[] | undefined;
        user = {
          username: cn,
          groups: withAuthenticated(o === undefined ? [] : Array.isArray(o) ? [...o] : [o]),
        };
      }
    }
    this.certUsers.set(socket, user);
    return user;
  }

  private tokenUser(token: string): UserInfo | null | Promise<UserInfo | null> {
    // The cache is keyed by a hash: the cache itself does not keep tokens.
    const key = createHash("sha256").update(token).digest("base64");
    return this.tokens.get(
      key,
      async () => {
        const status = await postReview(
          this.options.connection,
          "/apis/authentication.k8s.io/v1/tokenreviews",
          {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: { token },
          },
        );
        if (status.authenticated !== true) return null;
        const u = (status.user ?? {}) as Record<string, unknown>;
        if (typeof u.username !== "string" || u.username === "") return null;
        const user: UserInfo = { username: u.username, groups: withAuthenticated(stringArray(u.groups)) };
        if (typeof u.uid === "string" && u.uid !== "") user.uid = u.uid;
        if (u.extra !== null && typeof u.extra === "object") {
          const extra: Record<string, string[]> = {};
          for (const [k, v] of Object.entries(u.extra as Record<string, unknown>)) extra[k] = stringArray(v);
          user.extra = extra;
        }
        return user;
      },
      (user) => (user === null ? Math.min(FAILURE_TTL_MS, this.options.tokenTtlMs) : this.options.tokenTtlMs),
    );
  }
}

export interface Authorizer {
  authorize(user: UserInfo, attrs: ProxyAttributes): Decision | Promise<Decision>;
}

/** --authorization-mode=AlwaysAllow. */
export const alwaysAllow: Authorizer = { authorize: () => ({ allowed: true, reason: "" }) };

export interface WebhookAuthorizerOptions {
  connection: ReviewConnection;
  authorizedTtlMs: number;
  unauthorizedTtlMs: number;
  clock?: Clock;
}

/** Every request checked with a SubjectAccessReview; answers cached per user and attributes. */
export class WebhookAuthorizer implements Authorizer {
  readonly cache: TtlCache<Decision>;
  private readonly clock: Clock;
  private readonly byUser = new WeakMap<UserInfo, Map<string, { decision: Decision; expiresMs: number }>>();

  constructor(private readonly options: WebhookAuthorizerOptions) {
    this.clock = options.clock ?? systemClock;
    this.cache = new TtlCache(this.clock);
  }

  authorize(user: UserInfo, attrs: ProxyAttributes): Decision | Promise<Decision> {
    // Fast path: per user object (the same object while its authentication is cached).
    const attrKey = `${attrs.verb}\u0000${attrs.namespace}\u0000${attrs.resource}\u0000${attrs.name}`;
    let mine = this.byUser.get(user);
    const hit = mine?.get(attrKey);
    const now = this.clock.now();
    if (hit !== undefined && hit.expiresMs > now) {
      this.cache.hits++;
      return hit.decision;
    }
    if (mine === undefined) {
      mine = new Map();
      this.byUser.set(user, mine);
    }
    const remember = mine;
    const store = (decision: Decision, expiresMs: number) => {
      if (expiresMs > this.clock.now()) {
        if (remember.size >= 1000) remember.clear();
        remember.set(attrKey, { decision, expiresMs });
      }
      return decision;
    };
    const result = this.review(user, attrs);
    if (!(result instanceof Promise)) return store(result, this.cache.lastHitExpiresMs);
    return result.then((d) =>
      store(
        d,
        this.clock.now() + (d.allowed ? this.options.authorizedTtlMs : this.options.unauthorizedTtlMs),
      ),
    );
  }

  private review(user: UserInfo, attrs: ProxyAttributes): Decision | Promise<Decision> {
    const key = JSON.stringify([
      user.username,
      user.uid ?? "",
      user.groups,
      user.extra ?? null,
      attrs.verb,
      attrs.namespace,
      attrs.resource,
      attrs.name,
    ]);
    return this.cache.get(
      key,
      async () => {
        const spec: Record<string, unknown> = {
          resourceAttributes: {
            namespace: attrs.namespace,
            verb: attrs.verb,
            group: "",
            version: "v1",
            resource: attrs.resource,
            subresource: attrs.subresource,
            name: attrs.name,
          },
          user: user.username,
          groups: user.groups,
        };
        if (user.uid !== undefined) spec.uid = user.uid;
        if (user.extra !== undefined) spec.extra = user.extra;
        const status = await postReview(
          this.options.connection,
          "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec },
        );
        const reason = typeof status.reason === "string" ? status.reason : "";
        if (status.allowed === true) return { allowed: true, reason };
        if (typeof status.evaluationError === "string" && status.evaluationError !== "" && reason === "")
          return { allowed: false, reason: status.evaluationError };
        return { allowed: false, reason };
      },
      (d) => (d.allowed ? this.options.authorizedTtlMs : this.options.unauthorizedTtlMs),
    );
  }
}

/**
 * The API server's 403 message: `services "web:http" is forbidden: User "u" cannot get resource
 * "services/proxy" in API group "" in the namespace "ns"` (+ `: <reason>`).
 */
export function forbiddenMessage(user: UserInfo, attrs: ProxyAttributes, reason: string): string {
  const resource = `${attrs.resource}/${attrs.subresource}`;
  let text = `User ${JSON.stringify(user.username)} cannot ${attrs.verb} resource ${JSON.stringify(resource)} in API group ""`;
  text +=
    attrs.namespace !== "" ? ` in the namespace ${JSON.stringify(attrs.namespace)}` : " at the cluster scope";
  if (reason !== "") text += `: ${reason}`;
  return `${attrs.resource} ${JSON.stringify(attrs.name)} is forbidden: ${text}`;
}
