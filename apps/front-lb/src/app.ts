/**
 * The front-lb process: listeners, cluster discovery, the admin listener (/metrics, /status,
 * /stats, /healthz, /readyz), reloads without dropping connections, graceful shutdown.
 */
import { type Clock, errorMessage, KproxyError, type Logger, silentLogger } from "@kproxy/core";
import { type AdminServer, type CheckResult, MetricsRegistry, startAdminServer } from "@kproxy/runtime";
import { type FrontLbConfig, type ListenerConfig, validateConfig } from "./config.js";
import { ClusterDiscovery, type DiscoveryStatus } from "./discovery.js";
import { FrontListener, type ListenerStatus } from "./listener.js";
import { type FrontLbMetrics, frontLbMetrics } from "./metrics.js";
import { renderStatsPage } from "./stats-page.js";

export interface FrontLbOptions {
  logger?: Logger;
  /** Registry to add front-lb's metrics to; default a new one. */
  registry?: MetricsRegistry;
  /** Random source for balancing and check jitter (tests). */
  random?: () => number;
  /** Clock of the drain deadlines and their timers (tests); default the system clock. */
  clock?: Clock;
}

export interface FrontLbStatus {
  readonly startedAt: string;
  readonly ready: boolean;
  readonly reloads: number;
  readonly lastReloadError?: string;
  readonly listeners: readonly (ListenerStatus & { discovery?: DiscoveryStatus })[];
}

interface Entry {
  listener: FrontListener;
  discovery: ClusterDiscovery | undefined;
}

function sameBind(a: ListenerConfig, b: ListenerConfig): boolean {
  return a.host === b.host && a.port === b.port;
}

export class FrontLb {
  readonly registry: MetricsRegistry;
  private readonly metrics: FrontLbMetrics;
  private readonly logger: Logger;
  private readonly random: (() => number) | undefined;
  private readonly clock: Clock | undefined;
  private config: FrontLbConfig;
  private readonly entries = new Map<string, Entry>();
  private admin: AdminServer | undefined;
  private readonly startedAt = new Date().toISOString();
  private shuttingDown = false;
  private reloads = 0;
  private lastReloadError: string | undefined;
  private readonly closing = new Set<Promise<void>>();

  private constructor(config: FrontLbConfig, options: FrontLbOptions) {
    this.config = config;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random;
    this.clock = options.clock;
    this.registry = options.registry ?? new MetricsRegistry();
    this.metrics = frontLbMetrics(this.registry);
    this.registry.onCollect(() => {
      for (const e of this.entries.values()) {
        e.listener.collect();
        const d = e.discovery?.status();
        if (d) this.metrics.discovered.set({ listener: e.listener.name }, d.endpoints.length);
      }
    });
  }

  /** Binds every listener and the admin listener; rejects with LISTEN_FAILED (closing what was opened). */
  static async start(config: FrontLbConfig, options: FrontLbOptions = {}): Promise<FrontLb> {
    const lb = new FrontLb(config, options);
    try {
      for (const l of config.listeners) await lb.addListener(l);
      await lb.startAdmin();
    } catch (err) {
      await lb.shutdown(0);
      throw err;
    }
    return lb;
  }

  get currentConfig(): FrontLbConfig {
    return this.config;
  }

  /** The admin listener's URL, when there is one. */
  get adminUrl(): string | undefined {
    return this.admin?.url;
  }

  /** Bound addresses by listener name. */
  addresses(): { name: string; host: string; port: number }[] {
    return [...this.entries.values()].map((e) => ({ name: e.listener.name, ...e.listener.address }));
  }

  private async addListener(cfg: ListenerConfig): Promise<void> {
    const listener = new FrontListener(cfg, {
      logger: this.logger,
      metrics: this.metrics,
      ...(this.random ? { random: this.random } : {}),
      ...(this.clock ? { clock: this.clock } : {}),
    });
    try {
      await listener.listen();
    } catch (err) {
      await listener.close(0);
      throw new KproxyError(
        "LISTEN_FAILED",
        `listener ${cfg.name} cannot listen on ${cfg.host ?? "*"}:${cfg.port}: ${errorMessage(err)}`,
        { cause: err, details: { exitCode: 1 } },
      );
    }
    const entry: Entry = { listener, discovery: undefined };
    this.entries.set(cfg.name, entry);
    if (cfg.discovery) await this.startDiscovery(entry, cfg);
  }

  private async startDiscovery(entry: Entry, cfg: ListenerConfig): Promise<void> {
    if (!cfg.discovery) return;
    const discovery = new ClusterDiscovery(
      cfg.discovery,
      this.logger.child({ listener: cfg.name }),
      (list, source) => entry.listener.setEndpoints(list, source),
    );
    entry.discovery = discovery;
    try {
      await discovery.start();
    } catch (err) {
      // The static endpoints (if any) stay in use; discovery problems are shown in /status.
      if (cfg.endpoints.length === 0)
        this.logger.error("no endpoints: discovery failed and none are configured", {
          listener: cfg.name,
          error: errorMessage(err),
        });
    }
  }

  private async startAdmin(): Promise<void> {
    const a = this.config.admin;
    if (!a) return;
    this.admin = await startAdminServer({
      host: a.host,
      port: a.port,
      metrics: this.registry,
      logger: this.logger,
      ready: () => this.ready(),
      routes: {
        "/status": (_req, res) => {
          const body = JSON.stringify(this.status(), null, 2);
          res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
          res.end(body);
        },
        "/stats": (_req, res) => {
          const body = renderStatsPage(this.status());
          res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
          res.end(body);
        },
        "/": (_req, res) => {
          res.writeHead(302, { location: "/stats" });
          res.end();
        },
      },
    });
    this.logger.info("admin listening", { url: this.admin.url });
  }

  /** Ready when not shutting down and every listener has endpoints. */
  ready(): CheckResult {
    if (this.shuttingDown) return { ok: false, reason: "shutting down" };
    const empty = [...this.entries.values()]
      .filter((e) => !e.listener.hasEndpoints)
      .map((e) => e.listener.name);
    if (empty.length > 0) return { ok: false, reason: `no endpoints for listener(s) ${empty.join(", ")}` };
    return { ok: true, reason: "ok" };
  }

  status(): FrontLbStatus {
    return {
      startedAt: this.startedAt,
      ready: typeof this.ready() === "object" ? (this.ready() as { ok: boolean }).ok : Boolean(this.ready()),
      reloads: this.reloads,
      ...(this.lastReloadError !== undefined ? { lastReloadError: this.lastReloadError } : {}),
      listeners: [...this.entries.values()].map((e) => {
        const d = e.discovery?.status();
        return { ...e.listener.status(), ...(d ? { discovery: d } : {}) };
      }),
    };
  }

  /**
   * Applies a new configuration without closing healthy connections: listeners with the same name
   * and address are reconfigured in place; removed (or moved) listeners stop accepting and their
   * connections drain; new listeners are bound. A listener that cannot bind is reported and the
   * rest is applied (the error is rethrown at the end as RELOAD_PARTIAL).
   */
  async reload(next: FrontLbConfig): Promise<void> {
    if (this.shuttingDown) throw new KproxyError("SHUTTING_DOWN", "front-lb is shutting down");
    const errors: string[] = [];
    const wanted = new Map(next.listeners.map((l) => [l.name, l]));
    // 1. Listeners that go away (or move) stop accepting first, so that a new one may take their port.
    for (const [name, entry] of [...this.entries]) {
      const n = wanted.get(name);
      if (n !== undefined && sameBind(entry.listener.config, n)) continue;
      this.entries.delete(name);
      await entry.listener.stopAccepting();
      const drain = entry.listener.config.drainTimeoutMs ?? this.config.shutdownTimeoutMs;
      const p = Promise.all([entry.listener.close(drain), entry.discovery?.close()]).then(() => {});
      this.closing.add(p);
      void p.finally(() => this.closing.delete(p));
      this.logger.info("listener removed: draining", { listener: name, drainMs: drain });
    }
    // 2. Reconfigure kept listeners, bind new ones.
    for (const cfg of next.listeners) {
      const entry = this.entries.get(cfg.name);
      if (entry === undefined) {
        try {
          await this.addListener(cfg);
        } catch (err) {
          errors.push(errorMessage(err));
        }
        continue;
      }
      const prev = entry.listener.config;
      const sameDiscovery = JSON.stringify(prev.discovery) === JSON.stringify(cfg.discovery);
      const discoveryHasList = entry.discovery !== undefined && entry.discovery.status().source !== "none";
      entry.listener.reconfigure(cfg, { keepEndpoints: sameDiscovery && discoveryHasList });
      if (!sameDiscovery) {
        await entry.discovery?.close();
        entry.discovery = undefined;
        if (cfg.discovery) await this.startDiscovery(entry, cfg);
      }
    }
    // 3. Admin listener.
    const prevAdmin = this.config.admin;
    this.config = next;
    if (JSON.stringify(prevAdmin) !== JSON.stringify(next.admin)) {
      await this.admin?.close();
      this.admin = undefined;
      try {
        await this.startAdmin();
      } catch (err) {
        errors.push(errorMessage(err));
      }
    }
    this.reloads++;
    if (errors.length > 0) {
      this.lastReloadError = errors.join("; ");
      this.metrics.reloads.inc({ result: "failure" });
      throw new KproxyError("RELOAD_PARTIAL", `reload applied partly: ${this.lastReloadError}`);
    }
    this.lastReloadError = undefined;
    this.metrics.reloads.inc({ result: "success" });
    this.logger.info("configuration reloaded", { listeners: next.listeners.map((l) => l.name) });
  }

  /** Records a reload that failed before it could be applied (invalid file). */
  reloadFailed(err: unknown): void {
    this.lastReloadError = errorMessage(err);
    this.metrics.reloads.inc({ result: "failure" });
  }

  /**
   * Graceful stop: /readyz turns 503, listeners stop accepting, open connections get up to
   * `timeoutMs` (default the config's shutdownTimeout) to finish, then the rest are closed.
   */
  async shutdown(timeoutMs = this.config.shutdownTimeoutMs): Promise<void> {
    this.shuttingDown = true;
    const entries = [...this.entries.values()];
    await Promise.all(entries.map((e) => e.listener.stopAccepting()));
    await Promise.all([
      ...entries.map((e) => e.listener.close(timeoutMs)),
      ...entries.map((e) => e.discovery?.close()),
      ...[...this.closing],
    ]);
    this.entries.clear();
    await this.admin?.close();
    this.admin = undefined;
  }
}

export interface StartedFrontLb {
  /** "host:port" of the first listener (what clients should use). */
  readonly address: string;
  readonly listeners: readonly { name: string; host: string; port: number }[];
  readonly adminUrl: string | undefined;
  readonly lb: FrontLb;
  /** Applies a new configuration (same shape as `startFrontLb`'s). */
  reload(config: unknown): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts front-lb in this process from a config object of the YAML file's shape (validated the
 * same way), e.g. `{ listeners: [{ address: "127.0.0.1:0", endpoints: ["127.0.0.1:6443"] }],
 * admin: { address: "127.0.0.1:0" } }`. Use `address` as the API server URL's host:port.
 */
export async function startFrontLb(config: unknown, options: FrontLbOptions = {}): Promise<StartedFrontLb> {
  const parsed = validateConfig(config);
  const lb = await FrontLb.start(parsed, options);
  const listeners = lb.addresses();
  const first = listeners[0]!;
  const host = first.host === "::" || first.host === "0.0.0.0" ? "127.0.0.1" : first.host;
  return {
    address: host.includes(":") ? `[${host}]:${first.port}` : `${host}:${first.port}`,
    listeners,
    adminUrl: lb.adminUrl,
    lb,
    reload: (next: unknown) => lb.reload(validateConfig(next)),
    close: () => lb.shutdown(0),
  };
}
