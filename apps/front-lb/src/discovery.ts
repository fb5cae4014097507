/**
 * Endpoints discovered from a cluster, as k3s agents do: watch the EndpointSlices of
 * default/kubernetes, debounce the churn, refuse an empty list, save the last list to disk and
 * use it at start when the cluster cannot be reached. @kubernetes/client-node is imported only
 * when discovery is configured.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { errorMessage, KproxyError, type Logger } from "@kproxy/core";
import { type DiscoveryConfig, type EndpointConfig, endpointKeyOf, parseHostPort } from "./config.js";

export interface DiscoveryStatus {
  readonly service: string;
  readonly synced: boolean;
  readonly connected: boolean;
  /** "cluster", "cache" or "none": where the current list comes from. */
  readonly source: "cluster" | "cache" | "none";
  readonly endpoints: readonly string[];
  readonly lastError?: string;
  readonly updatedAt?: string;
}

interface CacheFile {
  service: string;
  updatedAt: string;
  endpoints: string[];
}

/** Reads a cache file written by `saveCache`; undefined when missing or unusable (logged). */
export async function readCache(file: string, logger: Logger): Promise<EndpointConfig[] | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      logger.warn("cannot read the discovery cache", { file, error: errorMessage(err) });
    return undefined;
  }
  try {
    const data = JSON.parse(text) as Partial<CacheFile>;
    const out: EndpointConfig[] = [];
    for (const e of data.endpoints ?? []) {
      const hp = typeof e === "string" ? parseHostPort(e) : undefined;
      if (hp?.host === undefined) throw new Error(`bad endpoint ${JSON.stringify(e)}`);
      out.push({ key: endpointKeyOf(hp.host, hp.port), host: hp.host, port: hp.port, weight: 1 });
    }
    return out.length > 0 ? out : undefined;
  } catch (err) {
    logger.warn("ignoring a corrupt discovery cache", { file, error: errorMessage(err) });
    return undefined;
  }
}

/** Writes the list atomically (temporary file + rename). */
export async function saveCache(
  file: string,
  service: string,
  endpoints: readonly EndpointConfig[],
): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const data: CacheFile = {
    service,
    updatedAt: new Date().toISOString(),
    endpoints: endpoints.map((e) => e.key),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

type Watcher = import("@kproxy/endpoints").EndpointsWatcher;

export class ClusterDiscovery {
  private watcher: Watcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private current: readonly EndpointConfig[] = [];
  private source: DiscoveryStatus["source"] = "none";
  private lastError: string | undefined;
  private updatedAt: string | undefined;
  private closed = false;
  private lastSavedKey = "";

  constructor(
    readonly config: DiscoveryConfig,
    private readonly logger: Logger,
    private readonly onEndpoints: (list: readonly EndpointConfig[], source: "discovered" | "cache") => void,
  ) {}

  private get serviceKey(): string {
    return `${this.config.namespace}/${this.config.service}`;
  }

  /** Loads the cache (if any) then starts watching; never throws for an unreachable cluster. */
  async start(): Promise<void> {
    const c = this.config;
    if (c.cacheFile) {
      const cached = await readCache(c.cacheFile, this.logger);
      if (cached && !this.closed && this.source === "none") {
        this.current = cached;
        this.source = "cache";
        this.lastSavedKey = cached.map((e) => e.key).join(",");
        this.logger.info("using cached endpoints until the cluster answers", {
          file: c.cacheFile,
          endpoints: cached.map((e) => e.key),
        });
        this.onEndpoints(cached, "cache");
      }
    }
    try {
      const [{ loadConnection }, { EndpointsWatcher }] = await Promise.all([
        import("@kproxy/kubeconfig"),
        import("@kproxy/endpoints"),
      ]);
      const connection = await loadConnection({
        ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}),
        ...(c.context ? { context: c.context } : {}),
        logger: this.logger,
      });
      if (this.closed) return;
      const watcher = new EndpointsWatcher({
        connection,
        logger: this.logger,
        watch: {
          endpointSlices: {
            namespace: c.namespace,
            labelSelector: `kubernetes.io/service-name=${c.service}`,
          },
        },
      });
      this.watcher = watcher;
      watcher.onChange(() => this.schedule());
      watcher.start();
      watcher.synced.then(
        () => this.update(),
        () => {},
      );
    } catch (err) {
      this.lastError = errorMessage(err);
      this.logger.error("endpoint discovery cannot start", {
        service: this.serviceKey,
        error: this.lastError,
      });
      if (this.source === "none")
        throw new KproxyError("DISCOVERY_FAILED", `endpoint discovery: ${this.lastError}`, { cause: err });
    }
  }

  private schedule(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.update();
    }, this.config.debounceMs);
    this.debounce.unref();
  }

  private update(): void {
    if (this.closed || !this.watcher) return;
    const sets = this.watcher.snapshot().endpointsByService.get(this.serviceKey);
    let set = sets?.get(this.config.portName);
    if (set === undefined && sets !== undefined && sets.size === 1) set = [...sets.values()][0];
    const list: EndpointConfig[] = [];
    for (const e of set?.endpoints ?? [])
      if (e.ready)
        list.push({ key: endpointKeyOf(e.address, e.port), host: e.address, port: e.port, weight: 1 });
    if (list.length === 0) {
      // As k0s: an empty list is never applied (the API server removes itself while restarting).
      this.logger.warn("discovery found no ready endpoint: keeping the current list", {
        service: this.serviceKey,
        current: this.current.map((e) => e.key),
      });
      return;
    }
    const key = list.map((e) => e.key).join(",");
    this.updatedAt = new Date().toISOString();
    const changed = key !== this.current.map((e) => e.key).join(",") || this.source !== "cluster";
    this.current = list;
    this.source = "cluster";
    if (changed) this.onEndpoints(list, "discovered");
    if (this.config.cacheFile && key !== this.lastSavedKey) {
      this.lastSavedKey = key;
      saveCache(this.config.cacheFile, this.serviceKey, list).catch((err: unknown) =>
        this.logger.warn("cannot save the discovery cache", {
          file: this.config.cacheFile,
          error: errorMessage(err),
        }),
      );
    }
  }

  status(): DiscoveryStatus {
    const informer = this.watcher?.status()[0];
    const lastError = informer?.lastError ?? this.lastError;
    return {
      service: this.serviceKey,
      synced: this.watcher?.isSynced ?? false,
      connected: informer?.connected ?? false,
      source: this.source,
      endpoints: this.current.map((e) => e.key),
      ...(lastError !== undefined ? { lastError } : {}),
      ...(this.updatedAt !== undefined ? { updatedAt: this.updatedAt } : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    await this.watcher?.close();
  }
}
