/**
 * The watch part: one supervised client-node ListWatch per resource feeding a ChangeTracker,
 * a synced gate, and change events. Lookups read the latest snapshot: no API request per lookup.
 */
import type { Clock, Logger } from "@kproxy/core";
import { errorMessage, KproxyError, silentLogger, systemClock } from "@kproxy/core";
import type { ClusterConnection } from "@kproxy/kubeconfig";
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import {
  ADD,
  DELETE,
  ERROR,
  HttpMethod,
  ListWatch,
  RequestContext,
  UPDATE,
  Watch,
} from "@kubernetes/client-node";
import { fetch } from "undici";
import { resolveError } from "./errors.js";
import type {
  ResolvedNode,
  ResolvedPod,
  ResolvedServiceEndpoint,
  ResolveNodeOptions,
  ServiceLookup,
  ServiceLookupOptions,
} from "./resolve.js";
import {
  DEFAULT_PREFERRED_ADDRESS_TYPES,
  lookupService,
  resolveNode,
  resolvePod,
  resolveService,
} from "./resolve.js";
import type { ChangeSet, Snapshot, TrackedKind } from "./snapshot.js";
import { ChangeTracker } from "./snapshot.js";

/** What to list and watch of one resource. */
export interface ResourceWatchOptions {
  /** Only this namespace (not for nodes); default all namespaces. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** Which resources to watch: `true` for all of them, or the options of the watch. */
export interface WatchSelection {
  services?: boolean | ResourceWatchOptions;
  endpointSlices?: boolean | ResourceWatchOptions;
  pods?: boolean | ResourceWatchOptions;
  nodes?: boolean | ResourceWatchOptions;
}

/** Restart delay after a failed list or watch: min(maxMs, initialMs × factor^n) plus up to `jitter` × that. */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  jitter?: number;
}

export interface EndpointsWatcherOptions {
  /** The client-node KubeConfig to list and watch with (e.g. `ClusterConnection.kubeConfig`). */
  kubeConfig?: KubeConfig;
  /** Alternatively, the connection from @kproxy/kubeconfig's loadConnection(). */
  connection?: Pick<ClusterConnection, "kubeConfig">;
  /** Default `{ services: true, endpointSlices: true }`. */
  watch?: WatchSelection;
  logger?: Logger;
  /** Clock for restart backoff and reconnect delays (default systemClock). */
  clock?: Clock;
  /** Random source for backoff jitter and endpoint picks (default Math.random). */
  random?: () => number;
  /** Default { initialMs: 500, maxMs: 30000, factor: 2, jitter: 0.2 }. */
  backoff?: BackoffOptions;
  /** A list request that takes longer is aborted and retried (default 60 s). */
  listTimeoutMs?: number;
  /** Items per list page (`limit`, following `continue`); default 500. */
  listPageSize?: number;
  /** Node address types in order of preference (kube-apiserver `--kubelet-preferred-address-types`). */
  preferredAddressTypes?: readonly string[];
  /** Feed this tracker instead of a new one. */
  tracker?: ChangeTracker;
}

export interface InformerStatus {
  kind: TrackedKind;
  /** The list/watch path, e.g. `/apis/discovery.k8s.io/v1/endpointslices`. */
  path: string;
  /** Listed once and watching (stays true across later failures: the cache is still served). */
  synced: boolean;
  /** A watch is currently established. */
  connected: boolean;
  /** Number of list requests made (a relist after 410 or a restart counts). */
  lists: number;
  /** Number of restarts after the informer stopped on an error. */
  restarts: number;
  /** Consecutive failures since the last successful watch connection. */
  failures: number;
  lastError?: string;
}

export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.2,
});

/** The delay before restart number `attempt` (0-based): exponential, capped, with jitter on top. */
export function backoffDelayMs(
  attempt: number,
  backoff: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const b = { ...DEFAULT_BACKOFF, ...backoff };
  const base = Math.min(b.maxMs, b.initialMs * b.factor ** Math.max(0, attempt));
  return Math.round(base + base * b.jitter * Math.min(1, Math.max(0, random())));
}

interface ResourceSpec {
  kind: TrackedKind;
  prefix: string;
  plural: string;
  namespaced: boolean;
  listKind: string;
  apiVersion: string;
}

const RESOURCES: Record<keyof WatchSelection, ResourceSpec> = {
  services: {
    kind: "Service",
    prefix: "/api/v1",
    plural: "services",
    namespaced: true,
    listKind: "ServiceList",
    apiVersion: "v1",
  },
  endpointSlices: {
    kind: "EndpointSlice",
    prefix: "/apis/discovery.k8s.io/v1",
    plural: "endpointslices",
    namespaced: true,
    listKind: "EndpointSliceList",
    apiVersion: "discovery.k8s.io/v1",
  },
  pods: {
    kind: "Pod",
    prefix: "/api/v1",
    plural: "pods",
    namespaced: true,
    listKind: "PodList",
    apiVersion: "v1",
  },
  nodes: {
    kind: "Node",
    prefix: "/api/v1",
    plural: "nodes",
    namespaced: false,
    listKind: "NodeList",
    apiVersion: "v1",
  },
};

const MAX_LIST_PAGES = 100_000;
const KNOWN_ADDRESS_TYPES = new Set(DEFAULT_PREFERRED_ADDRESS_TYPES);

function invalid(message: string): KproxyError {
  return new KproxyError("INVALID_OPTIONS", message);
}

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isFinite(v) || v <= 0) throw invalid(`${name} must be a positive number, got ${v}`);
  return v;
}

interface InformerDeps {
  kubeConfig: KubeConfig;
  tracker: ChangeTracker;
  logger: Logger;
  clock: Clock;
  random: () => number;
  backoff: Required<BackoffOptions>;
  listTimeoutMs: number;
  listPageSize: number;
  onChange(changes: ChangeSet): void;
  onSynced(): void;
}

/** client-node's Watch, told by its informer when a watch starts and connects, and inert once closed. */
class SupervisedWatch extends Watch {
  constructor(
    kubeConfig: KubeConfig,
    private readonly owner: SupervisedInformer,
  ) {
    super(kubeConfig);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // ListWatch may come back after a reconnect delay even though it was stopped: stay idle.
    if (this.owner.closed) return new AbortController();
    // ListWatch only watches once its cache holds the complete list: that is "synced".
    this.owner.watchStarting();
    let failed = false;
    // Bookmarks keep the resourceVersion of a quiet resource fresh, so a reconnect rarely needs a relist.
    const params = { ...queryParams, allowWatchBookmarks: true };
    const controller = await super.watch(path, params, callback, (err: unknown) => {
      if (err) failed = true;
      done(err);
    });
    if (this.owner.closed) controller.abort();
    else if (!failed) this.owner.watchConnected();
    return controller;
  }
}

/**
 * One resource: a ListWatch (which relists by itself after a 410 and reconnects after a clean end
 * of stream, but stops for good on any other error) restarted with exponential backoff and jitter.
 */
class SupervisedInformer {
  closed = false;
  private synced = false;
  private connected = false;
  private lists = 0;
  private restarts = 0;
  private failures = 0;
  private lastError: string | undefined;
  private restartTimer: ReturnType<Clock["setTimeout"]> | undefined;
  private readonly delays = new Set<() => void>();
  private readonly abort = new AbortController();
  private readonly informer: ListWatch<KubernetesObject>;
  private readonly logger: Logger;

  constructor(
    private readonly spec: ResourceSpec,
    readonly path: string,
    private readonly selection: ResourceWatchOptions,
    private readonly deps: InformerDeps,
  ) {
    this.logger = deps.logger.child({ resource: spec.plural });
    this.informer = new ListWatch<KubernetesObject>(
      path,
      new SupervisedWatch(deps.kubeConfig, this),
      () => this.list(),
      false,
      selection.labelSelector,
      selection.fieldSelector,
      { delayFn: (ms) => this.delay(ms) },
    );
    const apply = (remove: boolean) => (obj: KubernetesObject) => {
      const changes = remove ? deps.tracker.delete(spec.kind, obj) : deps.tracker.upsert(spec.kind, obj);
      if (!changes.empty) deps.onChange(changes);
    };
    this.informer.on(ADD, apply(false));
    this.informer.on(UPDATE, apply(false));
    this.informer.on(DELETE, apply(true));
    this.informer.on(ERROR, (err?: unknown) => this.failed(err));
  }

  get kind(): TrackedKind {
    return this.spec.kind;
  }

  get isSynced(): boolean {
    return this.synced;
  }

  status(): InformerStatus {
    const s: InformerStatus = {
      kind: this.spec.kind,
      path: this.path,
      synced: this.synced,
      connected: this.connected,
      lists: this.lists,
      restarts: this.restarts,
      failures: this.failures,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  start(): void {
    this.informer.start().catch((err: unknown) => this.failed(err));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.restartTimer !== undefined) this.deps.clock.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    for (const resolve of this.delays) resolve();
    this.delays.clear();
    this.abort.abort(new KproxyError("WATCHER_CLOSED", "the endpoints watcher was closed"));
    this.connected = false;
    await this.informer.stop();
  }

  watchStarting(): void {
    if (this.synced) return;
    this.synced = true;
    this.logger.debug("synced");
    this.deps.onSynced();
  }

  watchConnected(): void {
    this.connected = true;
    if (this.failures > 0) this.logger.info("watch re-established", { failures: this.failures });
    this.failures = 0;
  }

  private failed(err: unknown): void {
    if (this.closed) return;
    this.connected = false;
    this.lastError = errorMessage(err);
    if (this.restartTimer !== undefined) return;
    const delayMs = backoffDelayMs(this.failures, this.deps.backoff, this.deps.random);
    this.failures++;
    this.logger.warn("list/watch failed; restarting", { error: this.lastError, retryInMs: delayMs });
    this.restartTimer = this.deps.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closed) return;
      this.restarts++;
      this.start();
    }, delayMs);
  }

  private delay(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.delays.delete(done);
        resolve();
      };
      this.delays.add(done);
      this.deps.clock.setTimeout(done, ms);
    });
  }

  /** A full list (following `continue`), as raw JSON like the watch events. */
  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    this.lists++;
    const cluster = this.deps.kubeConfig.getCurrentCluster();
    if (!cluster) throw new KproxyError("INVALID_OPTIONS", "the kubeconfig has no current cluster");
    const items: KubernetesObject[] = [];
    let resourceVersion = "";
    let cont = "";
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const url = new URL(cluster.server.replace(/\/+$/, "") + this.path);
      url.searchParams.set("limit", String(this.deps.listPageSize));
      if (cont) url.searchParams.set("continue", cont);
      if (this.selection.labelSelector) url.searchParams.set("labelSelector", this.selection.labelSelector);
      if (this.selection.fieldSelector) url.searchParams.set("fieldSelector", this.selection.fieldSelector);
      const ctx = new RequestContext(url.toString(), HttpMethod.GET);
      await this.deps.kubeConfig.applySecurityAuthentication(ctx);
      const dispatcher = ctx.getDispatcher();
      let body: unknown;
      let status: number;
      try {
        const res = await fetch(url, {
          headers: { ...ctx.getHeaders(), accept: "application/json" },
          dispatcher,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.deps.listTimeoutMs)]),
        });
        status = res.status;
        const text = await res.text();
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
      } finally {
        // client-node makes a new dispatcher per request: do not leave its idle socket behind.
        if (dispatcher) void dispatcher.close().catch(() => {});
      }
      const obj = (typeof body === "object" && body !== null ? body : {}) as {
        items?: unknown;
        message?: unknown;
        metadata?: { resourceVersion?: unknown; continue?: unknown };
      };
      if (status !== 200) {
        const message = typeof obj.message === "string" ? obj.message : `HTTP ${status}`;
        const err = new KproxyError("LIST_FAILED", `list ${this.path}: ${message}`, { details: { status } });
        (err as unknown as { statusCode: number }).statusCode = status;
        throw err;
      }
      if (!Array.isArray(obj.items))
        throw new KproxyError(
          "LIST_FAILED",
          `list ${this.path}: the response is not a ${this.spec.listKind}`,
        );
      for (const item of obj.items)
        if (typeof item === "object" && item !== null) items.push(item as KubernetesObject);
      resourceVersion = typeof obj.metadata?.resourceVersion === "string" ? obj.metadata.resourceVersion : "";
      cont = typeof obj.metadata?.continue === "string" ? obj.metadata.continue : "";
      if (!cont) break;
    }
    return {
      apiVersion: this.spec.apiVersion,
      kind: this.spec.listKind,
      metadata: { resourceVersion },
      items,
    };
  }
}

type ChangeListener = (changes: ChangeSet) => void;

/**
 * Watches Services and EndpointSlices (and optionally Pods and Nodes) and answers "what are the
 * endpoints of X" from immutable snapshots. Call start(); serve nothing until `synced` resolves.
 */
export class EndpointsWatcher {
  /** Resolves once every watched resource has been listed once; rejects if closed before. */
  readonly synced: Promise<void>;
  readonly tracker: ChangeTracker;
  private readonly informers: SupervisedInformer[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly preferredAddressTypes: readonly string[];
  private resolveSynced!: () => void;
  private rejectSynced!: (err: Error) => void;
  private allSynced = false;
  private started = false;
  private closed = false;

  constructor(opts: EndpointsWatcherOptions) {
    const kubeConfig = opts.kubeConfig ?? opts.connection?.kubeConfig;
    if (!kubeConfig) throw invalid("EndpointsWatcher needs a kubeConfig or a connection");
    if (!kubeConfig.getCurrentCluster()) throw invalid("the kubeconfig has no current cluster");
    this.logger = opts.logger ?? silentLogger;
    this.random = opts.random ?? Math.random;
    this.tracker = opts.tracker ?? new ChangeTracker();
    this.preferredAddressTypes = opts.preferredAddressTypes ?? DEFAULT_PREFERRED_ADDRESS_TYPES;
    if (this.preferredAddressTypes.length === 0) throw invalid("preferredAddressTypes must not be empty");
    for (const t of this.preferredAddressTypes)
      if (!KNOWN_ADDRESS_TYPES.has(t))
        throw invalid(
          `unknown node address type ${JSON.stringify(t)} (want ${[...KNOWN_ADDRESS_TYPES].join(", ")})`,
        );
    const backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    positive("backoff.initialMs", backoff.initialMs, 1);
    positive("backoff.maxMs", backoff.maxMs, 1);
    if (!(backoff.factor >= 1)) throw invalid(`backoff.factor must be at least 1, got ${backoff.factor}`);
    if (!(backoff.jitter >= 0)) throw invalid(`backoff.jitter must not be negative, got ${backoff.jitter}`);
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    this.synced.catch(() => {});
    const deps: InformerDeps = {
      kubeConfig,
      tracker: this.tracker,
      logger: this.logger,
      clock: opts.clock ?? systemClock,
      random: this.random,
      backoff,
      listTimeoutMs: positive("listTimeoutMs", opts.listTimeoutMs, 60_000),
      listPageSize: Math.floor(positive("listPageSize", opts.listPageSize, 500)),
      onChange: (changes) => this.emit(changes),
      onSynced: () => this.checkSynced(),
    };
    const selection = opts.watch ?? { services: true, endpointSlices: true };
    for (const key of Object.keys(RESOURCES) as (keyof WatchSelection)[]) {
      const sel = selection[key];
      if (sel === undefined || sel === false) continue;
      const spec = RESOURCES[key];
      const options: ResourceWatchOptions = sel === true ? {} : sel;
      if (options.namespace !== undefined && !spec.namespaced)
        throw invalid(`${spec.plural} are not namespaced: remove watch.${key}.namespace`);
      if (options.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(options.namespace))
        throw invalid(`invalid namespace ${JSON.stringify(options.namespace)} in watch.${key}`);
      const path = options.namespace
        ? `${spec.prefix}/namespaces/${options.namespace}/${spec.plural}`
        : `${spec.prefix}/${spec.plural}`;
      this.informers.push(new SupervisedInformer(spec, path, options, deps));
    }
    if (this.informers.length === 0) throw invalid("watch selects no resource");
  }

  /** Starts every informer (once); does not wait for them: await `synced`. */
  start(): this {
    if (this.closed) throw new KproxyError("WATCHER_CLOSED", "the endpoints watcher was closed");
    if (this.started) return this;
    this.started = true;
    for (const informer of this.informers) informer.start();
    return this;
  }

  /** True once every watched resource has been listed once (apps answer 503 before). */
  get isSynced(): boolean {
    return this.allSynced;
  }

  /** Resolves once synced; rejects with NOT_SYNCED after `timeoutMs`. */
  async waitForSync(timeoutMs: number): Promise<void> {
    if (this.allSynced) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const pending = this.informers.filter((i) => !i.isSynced).map((i) => i.path);
        reject(
          resolveError(
            "NOT_SYNCED",
            `endpoints not synced after ${timeoutMs} ms (waiting for ${pending.join(", ")})`,
            {
              status: 503,
              reason: "ServiceUnavailable",
            },
          ),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([this.synced, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The latest snapshot (the same object until something changes). */
  snapshot(): Snapshot {
    return this.tracker.snapshot();
  }

  /**
   * Calls `listener` with what each watch event changed (after no-op elimination), synchronously
   * from the event: debounce in the caller. Returns an unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): InformerStatus[] {
    return this.informers.map((i) => i.status());
  }

  lookupService(
    namespace: string,
    name: string,
    portSpec: string | number = "",
    opts: ServiceLookupOptions = {},
  ): ServiceLookup {
    this.readyForService(portSpec);
    return lookupService(this.snapshot(), namespace, name, portSpec, opts);
  }

  resolveService(
    namespace: string,
    name: string,
    portSpec: string | number = "",
    opts: ServiceLookupOptions = {},
  ): ResolvedServiceEndpoint {
    this.readyForService(portSpec);
    return resolveService(this.snapshot(), namespace, name, portSpec, { random: this.random, ...opts });
  }

  resolvePod(namespace: string, name: string, port = ""): ResolvedPod {
    this.ready("pods");
    return resolvePod(this.snapshot(), namespace, name, port);
  }

  resolveNode(
    name: string,
    port = "",
    opts: Omit<ResolveNodeOptions, "preferredAddressTypes"> = {},
  ): ResolvedNode {
    this.ready("nodes");
    return resolveNode(this.snapshot(), name, port, {
      ...opts,
      preferredAddressTypes: this.preferredAddressTypes,
    });
  }

  /** Stops every informer and timer. The last snapshot stays readable. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.allSynced)
      this.rejectSynced(
        new KproxyError("WATCHER_CLOSED", "the endpoints watcher was closed before it synced"),
      );
    await Promise.all(this.informers.map((i) => i.close()));
    this.listeners.clear();
  }

  private readyForService(portSpec: string | number): void {
    this.ready("endpointSlices");
    // A port number is mapped to a port name through the Service.
    if (/^[+-]?\d+$/.test(String(portSpec))) this.ready("services");
  }

  private ready(resource: keyof WatchSelection): void {
    const kind = RESOURCES[resource].kind;
    if (!this.informers.some((i) => i.kind === kind))
      throw resolveError(
        "RESOURCE_NOT_WATCHED",
        `${RESOURCES[resource].plural} are not watched by this proxy`,
        {
          status: 500,
          reason: "InternalError",
        },
      );
    if (!this.allSynced)
      throw resolveError("NOT_SYNCED", "the endpoints cache has not synced yet", {
        status: 503,
        reason: "ServiceUnavailable",
      });
  }

  private checkSynced(): void {
    if (this.allSynced || this.closed || !this.informers.every((i) => i.isSynced)) return;
    this.allSynced = true;
    this.logger.info("endpoints synced", { resources: this.informers.map((i) => i.path) });
    this.resolveSynced();
  }

  private emit(changes: ChangeSet): void {
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (err) {
        this.logger.error("change listener failed", { error: errorMessage(err) });
      }
    }
  }
}
