/**
 * One listener: accepts downstream TCP connections, picks an endpoint (strategy + health), dials
 * it with a connect timeout and retries on other endpoints, then relays bytes (TLS passes through).
 * It runs the endpoints' active health checks and drains the connections of endpoints that fail
 * or leave.
 */
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { type Balancer, createBalancer, type HealthEvent, HealthState } from "@kproxy/balancer";
import { type Clock, errorMessage, type Logger, systemClock, type Timer } from "@kproxy/core";
import type { CounterChild, GaugeChild } from "@kproxy/runtime";
import {
  dialTcp,
  encodeProxyHeader,
  httpProbe,
  type ProbeResult,
  type ProxyAddresses,
  proxyAddressesOf,
  type Relay,
  readProxyHeader,
  relayTcp,
  tcpProbe,
} from "@kproxy/transport";
import type { EndpointConfig, HealthCheckConfig, ListenerConfig } from "./config.js";
import type { FrontLbMetrics } from "./metrics.js";

export type EndpointSource = "static" | "discovered" | "cache";

export interface CheckStatus {
  readonly ok: boolean;
  readonly at: string;
  readonly latencyMs: number;
  readonly status?: number;
  readonly error?: string;
}

interface Connection {
  readonly relay: Relay;
  readonly endpoint: EndpointRuntime;
}

interface EndpointRuntime {
  cfg: EndpointConfig;
  source: EndpointSource;
  readonly conns: Set<Connection>;
  /** Connects in progress. */
  pending: number;
  totalConnections: number;
  connectFailures: number;
  closedBytesUp: number;
  closedBytesDown: number;
  reportedBytesUp: number;
  reportedBytesDown: number;
  lastCheck: CheckStatus | undefined;
  checkTimer: NodeJS.Timeout | undefined;
  checkGeneration: number;
  /** When the endpoint went down (active checks), for the drain deadline (clock time). */
  downSinceMs: number | undefined;
  drainTimer: Timer | undefined;
  /** Set while the endpoint is no longer in the list but still has connections. */
  removedAtMs: number | undefined;
  readonly m: {
    total: CounterChild;
    failures: CounterChild;
    drained: CounterChild;
    up: GaugeChild;
    eligible: GaugeChild;
    ejected: GaugeChild;
    active: GaugeChild;
    bytesUp: CounterChild;
    bytesDown: CounterChild;
    checksOk: CounterChild;
    checksFailed: CounterChild;
  };
}

interface PickTarget {
  readonly key: string;
  readonly weight: number;
  readonly ep: EndpointRuntime;
}

export interface EndpointStatus {
  readonly key: string;
  readonly source: EndpointSource;
  readonly weight: number;
  /** up: eligible; down: failed checks; ejected: connect failures; draining: removed, connections finishing. */
  readonly state: "up" | "down" | "ejected" | "removed";
  readonly eligible: boolean;
  readonly activeConnections: number;
  readonly totalConnections: number;
  readonly connectFailures: number;
  readonly bytesToUpstream: number;
  readonly bytesToDownstream: number;
  readonly lastCheck: CheckStatus | undefined;
}

export interface ListenerStatus {
  readonly name: string;
  readonly address: string;
  readonly balance: string;
  readonly healthCheck: string;
  readonly panic: boolean;
  readonly activeConnections: number;
  readonly totalConnections: number;
  readonly endpoints: readonly EndpointStatus[];
}

const noop = () => {};

function healthKey(c: ListenerConfig): string {
  return JSON.stringify([c.healthCheck.rise, c.healthCheck.fall, c.outlier, c.panic]);
}

export class FrontListener {
  private cfg: ListenerConfig;
  private readonly logger: Logger;
  private readonly metrics: FrontLbMetrics;
  private readonly random: () => number;
  /** Drain deadlines and their timers. */
  private readonly clock: Clock;
  private server: Server | undefined;
  private health!: HealthState;
  private unsubscribeHealth: () => void = noop;
  private balancer!: Balancer<PickTarget>;
  private readonly endpoints = new Map<string, EndpointRuntime>();
  /** Removed endpoints whose connections are still draining. */
  private readonly retiring = new Map<string, EndpointRuntime>();
  private readonly downstreams = new Set<Socket>();
  private activeCount = 0;
  private totalCount = 0;
  private closed = false;
  private readonly failovers: CounterChild;
  private readonly panicGauge: GaugeChild;
  private sendVersion: 1 | 2 | undefined;
  private acceptVersions: (1 | 2)[] | undefined;
  private needsClientAddress = false;

  constructor(
    cfg: ListenerConfig,
    deps: { logger: Logger; metrics: FrontLbMetrics; random?: () => number; clock?: Clock },
  ) {
    this.cfg = cfg;
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.random = deps.random ?? Math.random;
    this.failovers = this.metrics.failovers.labels({ listener: cfg.name });
    this.panicGauge = this.metrics.panic.labels({ listener: cfg.name });
    this.buildHealth();
    this.buildBalancer();
    this.applyProtocolSettings();
    this.setEndpoints(cfg.endpoints, "static");
  }

  get name(): string {
    return this.cfg.name;
  }

  get config(): ListenerConfig {
    return this.cfg;
  }

  /** The bound address ("host:port"), once listening. */
  get address(): { host: string; port: number } {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return { host: a?.address ?? this.cfg.host ?? "::", port: a?.port ?? this.cfg.port };
  }

  get activeConnections(): number {
    return this.activeCount;
  }

  /** Whether some endpoint may take a new connection (eligible, or any in panic mode). */
  get hasEndpoints(): boolean {
    return this.endpoints.size > 0;
  }

  async listen(): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
    server.maxConnections = this.cfg.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: this.cfg.host, port: this.cfg.port, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) =>
      this.logger.error("listener error", { listener: this.cfg.name, error: err.message }),
    );
    this.server = server;
    const a = this.address;
    this.logger.info("listening", { listener: this.cfg.name, address: `${a.host}:${a.port}` });
  }

  // ---------------------------------------------------------------- configuration

  private buildHealth(): void {
    this.unsubscribeHealth();
    const c = this.cfg;
    this.health = new HealthState({
      rise: c.healthCheck.rise,
      fall: c.healthCheck.fall,
      panic: c.panic,
      outlier:
        c.outlier === false
          ? false
          : {
              consecutiveFailures: c.outlier.consecutiveFailures,
              baseEjectionMs: c.outlier.baseEjectionMs,
              maxEjectionMs: Math.max(c.outlier.baseEjectionMs, 300_000),
              maxEjectionPercent: c.outlier.maxEjectionPercent,
            },
    });
    this.unsubscribeHealth = this.health.onEvent((e) => this.onHealthEvent(e));
  }

  private buildBalancer(): void {
    this.balancer = createBalancer<PickTarget>(this.cfg.balance, {
      health: this.health,
      random: this.random,
    });
    this.needsClientAddress =
      this.cfg.balance === "source-ip" || this.cfg.balance === "ring-hash" || this.cfg.balance === "maglev";
  }

  private applyProtocolSettings(): void {
    const c = this.cfg;
    this.sendVersion = c.sendProxyProtocol === "v1" ? 1 : c.sendProxyProtocol === "v2" ? 2 : undefined;
    this.acceptVersions =
      c.acceptProxyProtocol === "none"
        ? undefined
        : c.acceptProxyProtocol === "v1"
          ? [1]
          : c.acceptProxyProtocol === "v2"
            ? [2]
            : [1, 2];
  }

  /**
   * Applies a new config of the same listener (same bind address) without closing connections:
   * strategy, timeouts, PROXY protocol, health checks; endpoints only when static (discovered
   * endpoints are set by discovery).
   */
  reconfigure(next: ListenerConfig, options: { keepEndpoints: boolean }): void {
    const prev = this.cfg;
    this.cfg = next;
    if (this.server) this.server.maxConnections = next.maxConnections;
    this.applyProtocolSettings();
    let rebuilt = false;
    if (healthKey(prev) !== healthKey(next)) {
      this.buildHealth();
      this.buildBalancer();
      rebuilt = true;
    } else if (prev.balance !== next.balance) {
      this.buildBalancer();
      rebuilt = true;
    }
    this.pushTargets();
    // Strategies that count connections must know about the ones already open.
    if (rebuilt)
      for (const ep of this.endpoints.values())
        for (let i = 0; i < ep.conns.size + ep.pending; i++) this.balancer.onStart(ep.cfg.key);
    if (JSON.stringify(prev.healthCheck) !== JSON.stringify(next.healthCheck))
      for (const ep of this.endpoints.values()) this.startChecks(ep);
    if (!options.keepEndpoints) this.setEndpoints(next.endpoints, "static");
  }

  private newEndpoint(cfg: EndpointConfig, source: EndpointSource): EndpointRuntime {
    const l = { listener: this.cfg.name, endpoint: cfg.key };
    const m = this.metrics;
    return {
      cfg,
      source,
      conns: new Set(),
      pending: 0,
      totalConnections: 0,
      connectFailures: 0,
      closedBytesUp: 0,
      closedBytesDown: 0,
      reportedBytesUp: 0,
      reportedBytesDown: 0,
      lastCheck: undefined,
      checkTimer: undefined,
      checkGeneration: 0,
      downSinceMs: undefined,
      drainTimer: undefined,
      removedAtMs: undefined,
      m: {
        total: m.connectionsTotal.labels(l),
        failures: m.connectFailures.labels(l),
        drained: m.drained.labels(l),
        up: m.endpointUp.labels(l),
        eligible: m.endpointEligible.labels(l),
        ejected: m.endpointEjected.labels(l),
        active: m.connectionsActive.labels(l),
        bytesUp: m.bytes.labels({ ...l, direction: "to_upstream" }),
        bytesDown: m.bytes.labels({ ...l, direction: "to_downstream" }),
        checksOk: m.checks.labels({ ...l, result: "success" }),
        checksFailed: m.checks.labels({ ...l, result: "failure" }),
      },
    };
  }

  /**
   * Replaces the endpoint list. New endpoints get connections at once (and health checks);
   * removed ones get no new connections and their open connections are closed after the drain
   * timeout; an endpoint that comes back keeps its connections.
   */
  setEndpoints(list: readonly EndpointConfig[], source: EndpointSource): void {
    if (this.closed) return;
    const wanted = new Map(list.map((e) => [e.key, e]));
    for (const [key, ep] of this.endpoints)
      if (!wanted.has(key)) {
        this.endpoints.delete(key);
        this.stopChecks(ep);
        this.retire(ep);
      }
    for (const [key, cfg] of wanted) {
      let ep = this.endpoints.get(key);
      if (ep === undefined) {
        ep = this.retiring.get(key);
        if (ep !== undefined) {
          this.retiring.delete(key);
          ep.removedAtMs = undefined;
          this.clearDrain(ep);
        } else ep = this.newEndpoint(cfg, source);
        this.endpoints.set(key, ep);
        this.startChecks(ep);
      }
      ep.cfg = cfg;
      ep.source = source;
    }
    this.pushTargets();
    this.logger.info("endpoints", { listener: this.cfg.name, source, endpoints: [...wanted.keys()] });
  }

  private pushTargets(): void {
    const targets: PickTarget[] = [];
    for (const ep of this.endpoints.values()) targets.push({ key: ep.cfg.key, weight: ep.cfg.weight, ep });
    this.balancer.update(targets);
  }

  private retire(ep: EndpointRuntime): void {
    this.clearDrain(ep);
    if (ep.conns.size === 0 && ep.pending === 0) {
      this.forgetSeries(ep);
      return;
    }
    ep.removedAtMs = Date.now();
    this.retiring.set(ep.cfg.key, ep);
    const drain = this.cfg.drainTimeoutMs;
    if (drain === null) return;
    ep.drainTimer = this.clock.setTimeout(() => {
      ep.drainTimer = undefined;
      this.closeConnections(ep, "removed");
    }, drain);
    ep.drainTimer.unref?.();
  }

  private forgetSeries(ep: EndpointRuntime): void {
    const l = { listener: this.cfg.name, endpoint: ep.cfg.key };
    const m = this.metrics;
    for (const g of [m.endpointUp, m.endpointEligible, m.endpointEjected, m.connectionsActive]) g.remove(l);
  }

  // ---------------------------------------------------------------- health

  private startChecks(ep: EndpointRuntime): void {
    this.stopChecks(ep);
    if (this.cfg.healthCheck.type === "none" || this.closed) return;
    const generation = ++ep.checkGeneration;
    const run = async () => {
      ep.checkTimer = undefined;
      const hc = this.cfg.healthCheck;
      const result = await this.probe(ep, hc);
      if (generation !== ep.checkGeneration || this.closed) return;
      this.recordCheck(ep, result);
      const jitter = 1 + hc.jitter * (this.random() * 2 - 1);
      ep.checkTimer = setTimeout(run, Math.max(10, hc.intervalMs * jitter));
      ep.checkTimer.unref();
    };
    // The first check runs at once so that a dead endpoint is known quickly.
    ep.checkTimer = setTimeout(run, 0);
    ep.checkTimer.unref();
  }

  private stopChecks(ep: EndpointRuntime): void {
    ep.checkGeneration++;
    if (ep.checkTimer) clearTimeout(ep.checkTimer);
    ep.checkTimer = undefined;
  }

  private probe(ep: EndpointRuntime, hc: HealthCheckConfig): Promise<ProbeResult> {
    const { host, port } = ep.cfg;
    if (hc.type === "tcp") return tcpProbe({ host, port, timeoutMs: hc.timeoutMs });
    return httpProbe({
      host,
      port,
      path: hc.path,
      expectStatus: hc.expectStatus,
      timeoutMs: hc.timeoutMs,
      tls:
        hc.type === "http"
          ? false
          : {
              insecure: hc.insecure,
              ...(hc.caPem !== undefined ? { ca: hc.caPem } : {}),
              ...(hc.clientCertPem !== undefined ? { cert: hc.clientCertPem, key: hc.clientKeyPem } : {}),
              ...(hc.serverName !== undefined ? { serverName: hc.serverName } : {}),
            },
    });
  }

  private recordCheck(ep: EndpointRuntime, r: ProbeResult): void {
    ep.lastCheck = {
      ok: r.ok,
      at: new Date().toISOString(),
      latencyMs: r.latencyMs,
      ...(r.status !== undefined ? { status: r.status } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
    };
    (r.ok ? ep.m.checksOk : ep.m.checksFailed).inc();
    this.metrics.checkDuration.observe({ listener: this.cfg.name, endpoint: ep.cfg.key }, r.latencyMs / 1000);
    if (!r.ok)
      this.logger.debug("health check failed", {
        listener: this.cfg.name,
        endpoint: ep.cfg.key,
        error: r.error,
      });
    this.health.reportCheck(ep.cfg.key, r.ok);
  }

  private onHealthEvent(e: HealthEvent): void {
    const name = this.cfg.name;
    switch (e.type) {
      case "down": {
        this.logger.warn("endpoint down", {
          listener: name,
          endpoint: e.key,
          lastCheck: this.endpoints.get(e.key)?.lastCheck?.error,
        });
        const ep = this.endpoints.get(e.key);
        if (ep) this.scheduleDrain(ep);
        break;
      }
      case "up": {
        this.logger.info("endpoint up", { listener: name, endpoint: e.key });
        const ep = this.endpoints.get(e.key);
        if (ep) this.clearDrain(ep);
        // Endpoints that failed while no other one was up may now be drained.
        for (const other of this.endpoints.values())
          if (other.downSinceMs !== undefined) this.enforceDrain(other);
        break;
      }
      case "ejected":
        this.logger.warn("endpoint ejected after connect failures", {
          listener: name,
          endpoint: e.key,
          untilMs: e.untilMs,
        });
        break;
      case "unejected":
        this.logger.info("endpoint ejection ended", { listener: name, endpoint: e.key });
        // As for "up": a down endpoint left alone while this one was not eligible may now drain.
        for (const other of this.endpoints.values())
          if (other.downSinceMs !== undefined) this.enforceDrain(other);
        break;
      case "panic-start":
        this.logger.warn("no endpoint is healthy: trying every endpoint (panic mode)", {
          listener: name,
          total: e.total,
        });
        break;
      case "panic-end":
        this.logger.info("panic mode ended", { listener: name, eligible: e.eligible });
        break;
      default:
        break;
    }
  }

  private scheduleDrain(ep: EndpointRuntime): void {
    this.clearDrain(ep);
    ep.downSinceMs = this.clock.now();
    const drain = this.cfg.drainTimeoutMs;
    if (drain === null) return;
    this.armDrainTimer(ep, drain);
  }

  private armDrainTimer(ep: EndpointRuntime, ms: number): void {
    if (ep.drainTimer) this.clock.clearTimeout(ep.drainTimer);
    ep.drainTimer = this.clock.setTimeout(() => {
      ep.drainTimer = undefined;
      this.enforceDrain(ep);
    }, ms);
    ep.drainTimer.unref?.();
  }

  private clearDrain(ep: EndpointRuntime): void {
    ep.downSinceMs = undefined;
    if (ep.drainTimer) this.clock.clearTimeout(ep.drainTimer);
    ep.drainTimer = undefined;
  }

  /**
   * Closes a down endpoint's connections once its drain deadline has passed, so that clients
   * reconnect to a healthy endpoint; while no other endpoint is up (panic) they are left alone.
   */
  private enforceDrain(ep: EndpointRuntime): void {
    const drain = this.cfg.drainTimeoutMs;
    if (ep.downSinceMs === undefined || drain === null) return;
    const left = drain - (this.clock.now() - ep.downSinceMs);
    if (left > 0) {
      // Not due yet. Node's timers may fire up to a millisecond before Date.now() says the delay
      // has passed (they run on a truncated monotonic clock): returning here without a timer
      // would leave the endpoint's connections open forever, so wait for the rest.
      if (ep.drainTimer === undefined) this.armDrainTimer(ep, Math.max(1, Math.ceil(left)));
      return;
    }
    const status = this.health.status(ep.cfg.key);
    if (status === undefined || status.up) return;
    let otherUp = false;
    for (const o of this.endpoints.values())
      if (o !== ep && this.health.isEligible(o.cfg.key)) otherUp = true;
    if (!otherUp) return;
    this.closeConnections(ep, "failed health checks");
  }

  private closeConnections(ep: EndpointRuntime, why: string): void {
    if (ep.conns.size === 0) return;
    this.logger.info("closing drained connections", {
      listener: this.cfg.name,
      endpoint: ep.cfg.key,
      connections: ep.conns.size,
      reason: why,
    });
    for (const c of [...ep.conns]) {
      ep.m.drained.inc();
      c.relay.close("aborted");
    }
  }

  // ---------------------------------------------------------------- traffic

  private onConnection(down: Socket): void {
    if (this.closed) {
      down.destroy();
      return;
    }
    down.on("error", noop);
    this.downstreams.add(down);
    down.once("close", () => this.downstreams.delete(down));
    const versions = this.acceptVersions;
    if (versions === undefined) {
      void this.route(down, undefined);
      return;
    }
    readProxyHeader(down, { versions, timeoutMs: this.cfg.proxyProtocolTimeoutMs }).then(
      (header) => this.route(down, header.command === "PROXY" ? header.addresses : undefined),
      (err: unknown) => {
        this.metrics.rejected.inc({ listener: this.cfg.name, reason: "proxy_protocol" });
        this.logger.debug("bad PROXY header", {
          listener: this.cfg.name,
          remote: down.remoteAddress,
          error: errorMessage(err),
        });
        down.destroy();
      },
    );
  }

  private async route(down: Socket, original: ProxyAddresses | undefined): Promise<void> {
    const cfg = this.cfg;
    let tried: Set<string> | undefined;
    for (let attempt = 0; attempt <= cfg.retries; attempt++) {
      const target = this.balancer.pick(
        this.needsClientAddress
          ? {
              clientAddress: original?.sourceAddress ?? down.remoteAddress ?? "",
              ...(tried ? { exclude: tried } : {}),
            }
          : tried
            ? { exclude: tried }
            : undefined,
      );
      if (target === undefined) break;
      const ep = target.ep;
      const key = ep.cfg.key;
      this.balancer.onStart(key);
      ep.pending++;
      let prelude: Buffer | undefined;
      if (this.sendVersion !== undefined)
        prelude = encodeProxyHeader(this.sendVersion, original ?? proxyAddressesOf(down));
      let up: Socket;
      try {
        up = await dialTcp({
          host: ep.cfg.host,
          port: ep.cfg.port,
          connectTimeoutMs: cfg.connectTimeoutMs,
          ...(prelude ? { prelude } : {}),
        });
      } catch (err) {
        ep.pending--;
        this.balancer.onFinish(key);
        ep.connectFailures++;
        ep.m.failures.inc();
        this.health.reportFailure(key);
        if (tried === undefined) tried = new Set();
        tried.add(key);
        this.logger.warn("connect failed", { listener: cfg.name, endpoint: key, error: errorMessage(err) });
        if (down.destroyed) return;
        if (attempt < cfg.retries) this.failovers.inc();
        continue;
      }
      ep.pending--;
      this.health.reportSuccess(key);
      if (down.destroyed || this.closed) {
        up.destroy();
        this.balancer.onFinish(key);
        if (ep.removedAtMs !== undefined && ep.conns.size === 0) this.finishRetired(ep);
        return;
      }
      this.startRelay(down, up, ep, prelude?.length ?? 0);
      return;
    }
    this.metrics.rejected.inc({ listener: cfg.name, reason: tried ? "connect_failed" : "no_endpoint" });
    down.destroy();
  }

  private startRelay(down: Socket, up: Socket, ep: EndpointRuntime, preludeBytes: number): void {
    let conn: Connection | undefined;
    const relay = relayTcp(down, up, {
      idleTimeoutMs: this.cfg.idleTimeoutMs,
      upstreamPreludeBytes: preludeBytes,
      onEnd: (stats) => {
        this.activeCount--;
        if (conn) ep.conns.delete(conn);
        ep.closedBytesUp += stats.bytesToUpstream;
        ep.closedBytesDown += stats.bytesToDownstream;
        this.balancer.onFinish(ep.cfg.key);
        if (ep.removedAtMs !== undefined && ep.conns.size === 0 && ep.pending === 0) this.finishRetired(ep);
      },
    });
    conn = { relay, endpoint: ep };
    ep.conns.add(conn);
    ep.totalConnections++;
    ep.m.total.inc();
    this.activeCount++;
    this.totalCount++;
  }

  private finishRetired(ep: EndpointRuntime): void {
    if (this.retiring.get(ep.cfg.key) !== ep) return;
    this.retiring.delete(ep.cfg.key);
    if (ep.drainTimer) this.clock.clearTimeout(ep.drainTimer);
    this.collectEndpoint(ep);
    this.forgetSeries(ep);
  }

  // ---------------------------------------------------------------- observability

  private bytesOf(ep: EndpointRuntime): { up: number; down: number } {
    let up = ep.closedBytesUp;
    let down = ep.closedBytesDown;
    for (const c of ep.conns) {
      const b = c.relay.bytes();
      up += b.toUpstream;
      down += b.toDownstream;
    }
    return { up, down };
  }

  private collectEndpoint(ep: EndpointRuntime): void {
    const b = this.bytesOf(ep);
    if (b.up > ep.reportedBytesUp) ep.m.bytesUp.inc(b.up - ep.reportedBytesUp);
    if (b.down > ep.reportedBytesDown) ep.m.bytesDown.inc(b.down - ep.reportedBytesDown);
    ep.reportedBytesUp = b.up;
    ep.reportedBytesDown = b.down;
  }

  /** Updates gauges and byte counters (called before each /metrics exposition). */
  collect(): void {
    for (const ep of this.endpoints.values()) {
      const s = this.health.status(ep.cfg.key);
      ep.m.up.set(s?.up === false ? 0 : 1);
      ep.m.eligible.set(s?.eligible === false ? 0 : 1);
      ep.m.ejected.set(s?.ejected ? 1 : 0);
      ep.m.active.set(ep.conns.size);
      this.collectEndpoint(ep);
    }
    for (const ep of this.retiring.values()) this.collectEndpoint(ep);
    this.health.eligible([...this.endpoints.values()].map((e) => ({ key: e.cfg.key, weight: e.cfg.weight })));
    this.panicGauge.set(this.health.panic ? 1 : 0);
  }

  status(): ListenerStatus {
    const eps: EndpointStatus[] = [];
    const one = (ep: EndpointRuntime, removed: boolean): EndpointStatus => {
      const s = this.health.status(ep.cfg.key);
      const b = this.bytesOf(ep);
      return {
        key: ep.cfg.key,
        source: ep.source,
        weight: ep.cfg.weight,
        state: removed ? "removed" : s?.ejected ? "ejected" : s?.up === false ? "down" : "up",
        eligible: !removed && s?.eligible !== false && ep.cfg.weight > 0,
        activeConnections: ep.conns.size,
        totalConnections: ep.totalConnections,
        connectFailures: ep.connectFailures,
        bytesToUpstream: b.up,
        bytesToDownstream: b.down,
        lastCheck: ep.lastCheck,
      };
    };
    for (const ep of this.endpoints.values()) eps.push(one(ep, false));
    for (const ep of this.retiring.values()) eps.push(one(ep, true));
    this.health.eligible([...this.endpoints.values()].map((e) => ({ key: e.cfg.key, weight: e.cfg.weight })));
    const a = this.address;
    return {
      name: this.cfg.name,
      address: a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`,
      balance: this.cfg.balance,
      healthCheck:
        this.cfg.healthCheck.type === "none"
          ? "none"
          : this.cfg.healthCheck.type === "tcp"
            ? "tcp"
            : `${this.cfg.healthCheck.type} GET ${this.cfg.healthCheck.path}`,
      panic: this.health.panic,
      activeConnections: this.activeCount,
      totalConnections: this.totalCount,
      endpoints: eps,
    };
  }

  // ---------------------------------------------------------------- shutdown

  private serverClosed: Promise<void> | undefined;

  /** Stops accepting (the port is released at once); open connections continue. */
  async stopAccepting(): Promise<void> {
    const server = this.server;
    if (!server || this.serverClosed) return;
    // close()'s callback waits for every connection to end: do not wait for it here.
    this.serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Stops accepting, waits up to `timeoutMs` for open connections to finish, then closes the
   * rest, and stops health checks.
   */
  async close(timeoutMs: number): Promise<void> {
    await this.stopAccepting();
    const deadline = Date.now() + timeoutMs;
    while (this.activeCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.closed = true;
    for (const ep of [...this.endpoints.values(), ...this.retiring.values()]) {
      this.stopChecks(ep);
      this.clearDrain(ep);
      for (const c of [...ep.conns]) c.relay.close("aborted");
    }
    for (const s of this.downstreams) s.destroy();
    this.unsubscribeHealth();
    await this.serverClosed;
  }
}
