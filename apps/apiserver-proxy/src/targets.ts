/**
 * From a proxy `{id}` to the address to dial, by upstream's rules (@kproxy/endpoints), on the
 * watched snapshot: no API request per proxied request. Service endpoints are balanced per
 * service port (--balance) with passive health (outlier ejection). Only addresses taken from the
 * cluster's objects are ever returned, and loopback, link-local, multicast and unspecified ones
 * are refused (400 `address not allowed`) unless --dev-allow-loopback-endpoints allows loopback.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, isIPv4 } from "node:net";
import {
  type Balancer,
  createBalancer,
  type HealthEvent,
  HealthState,
  type StrategyName,
} from "@kproxy/balancer";
import type { Endpoint, EndpointSet } from "@kproxy/core";
import { type Clock, errorMessage, KproxyError, systemClock } from "@kproxy/core";
import {
  endpointKey,
  isProxyableIP,
  joinHostPort,
  type LookupAll,
  lookupService,
  resolveNode,
  type ServiceInfo,
  type Snapshot,
  servicePortName,
  splitSchemeNamePort,
} from "@kproxy/endpoints";

export type TargetKind = "service" | "pod" | "node";

export interface Target {
  kind: TargetKind;
  /** For metrics and logs: `service/ns/name:port`, `pod/ns/name`, `node/name`. */
  label: string;
  scheme: "http" | "https";
  /** What to dial: an IP, or a node's DNS name (checked). */
  address: string;
  port: number;
  /** `address:port` (IPv6 in brackets). */
  hostPort: string;
  origin: string;
  /** Use the kubelet client credentials (node proxy to the kubelet port). */
  kubelet: boolean;
  /** TLS server name to verify (a node's DNS name, when the dial goes to the address it resolved to). */
  serverName?: string;
  /** Set for service endpoints: the balanced endpoint and its pool. */
  endpoint?: { key: string; pool: ServicePool };
}

interface PoolTarget {
  readonly key: string;
  readonly endpoint: Endpoint;
}

/** The balancer and health of one service port. */
export interface ServicePool {
  readonly name: string;
  /** `service/<name>`, for metrics and logs. */
  readonly label: string;
  readonly balancer: Balancer<PoolTarget>;
  readonly health: HealthState;
  set: EndpointSet | undefined;
  service: ServiceInfo | undefined;
  /** Candidates refused because of their address. */
  refused: number;
  allowed: number;
}

export interface TargetResolverOptions {
  snapshot: () => Snapshot;
  balance: StrategyName;
  preferredAddressTypes: readonly string[];
  /** Allow loopback addresses (127.0.0.0/8, ::1): development only. */
  allowLoopback: boolean;
  outlier: { consecutiveFailures: number; baseEjectionMs: number; maxEjectionPercent: number };
  clock?: Clock;
  random?: () => number;
  lookup?: LookupAll;
  onHealthEvent?: (pool: string, event: HealthEvent) => void;
}

function resolveError(code: string, message: string, status: number, reason: string): KproxyError {
  return new KproxyError(code, message, { details: { status, reason } });
}

function addressNotAllowed(): KproxyError {
  return resolveError("ADDRESS_NOT_ALLOWED", "address not allowed", 400, "BadRequest");
}

function isLoopback(ip: string): boolean {
  if (isIPv4(ip)) return ip.startsWith("127.");
  const lower = ip.toLowerCase();
  if (lower === "::1" || lower === "0:0:0:0:0:0:0:1") return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped !== null && (mapped[1] as string).startsWith("127.");
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

export class TargetResolver {
  private readonly pools = new Map<string, ServicePool>();
  private readonly resolved = new Map<
    string,
    { snapshot: Snapshot; pool: ServicePool; scheme: "http" | "https" }
  >();
  private readonly clock: Clock;
  private readonly lookup: LookupAll;

  constructor(private readonly options: TargetResolverOptions) {
    this.clock = options.clock ?? systemClock;
    this.lookup = options.lookup ?? ((host) => dnsLookup(host, { all: true }));
  }

  /** May this IP be dialled? Go's IsGlobalUnicast, plus loopback in development mode. */
  allowedIP(ip: string): boolean {
    return isProxyableIP(ip) || (this.options.allowLoopback && isIP(ip) !== 0 && isLoopback(ip));
  }

  /** The pools of service ports, for status and metrics. */
  get servicePools(): ReadonlyMap<string, ServicePool> {
    return this.pools;
  }

  /** Forget pools whose service port is gone (call on snapshot changes). */
  prune(changedServicePorts: Iterable<string>): void {
    const snap = this.options.snapshot();
    for (const name of changedServicePorts) {
      const pool = this.pools.get(name);
      if (pool === undefined) continue;
      const slash = name.indexOf("/");
      const colon = name.lastIndexOf(":");
      const set = snap.endpointSet(name.slice(0, slash), name.slice(slash + 1, colon), name.slice(colon + 1));
      if (set === undefined) this.pools.delete(name);
    }
  }

  resolve(
    kind: TargetKind,
    namespace: string,
    id: string,
    opts: { clientAddress?: string; exclude?: ReadonlySet<string> } = {},
  ): Target | Promise<Target> {
    if (kind === "service") return this.resolveService(namespace, id, opts);
    if (kind === "pod") return this.resolvePod(namespace, id);
    return this.resolveNode(id);
  }

  private pool(name: string): ServicePool {
    let pool = this.pools.get(name);
    if (pool === undefined) {
      const health = new HealthState({
        clock: this.clock,
        outlier: {
          consecutiveFailures: this.options.outlier.consecutiveFailures,
          baseEjectionMs: Math.max(1, this.options.outlier.baseEjectionMs),
          maxEjectionMs: Math.max(1, this.options.outlier.baseEjectionMs * 10),
          maxEjectionPercent: this.options.outlier.maxEjectionPercent,
        },
      });
      const onEvent = this.options.onHealthEvent;
      if (onEvent !== undefined) health.onEvent((e) => onEvent(name, e));
      pool = {
        name,
        label: `service/${name}`,
        health,
        balancer: createBalancer<PoolTarget>(this.options.balance, {
          health,
          clock: this.clock,
          ...(this.options.random ? { random: this.options.random } : {}),
        }),
        set: undefined,
        service: undefined,
        refused: 0,
        allowed: 0,
      };
      this.pools.set(name, pool);
    }
    return pool;
  }

  private resolveService(
    namespace: string,
    id: string,
    opts: { clientAddress?: string; exclude?: ReadonlySet<string> },
  ): Target {
    // Fast path: the same {id} on the same (immutable) snapshot resolves to the same pool.
    const snapshot = this.options.snapshot();
    const cacheKey = `${namespace}/${id}`;
    let cached = this.resolved.get(cacheKey);
    if (cached === undefined || cached.snapshot !== snapshot) {
      cached = this.lookupPool(snapshot, namespace, id);
      if (this.resolved.size >= 10_000) this.resolved.clear();
      this.resolved.set(cacheKey, cached);
    }
    const { pool, scheme } = cached;
    if (pool.allowed === 0) throw addressNotAllowed();
    const picked = pool.balancer.pick({
      ...(opts.clientAddress !== undefined ? { clientAddress: opts.clientAddress } : {}),
      ...(opts.exclude !== undefined ? { exclude: opts.exclude } : {}),
    });
    if (picked === undefined)
      throw resolveError(
        "NO_ENDPOINTS",
        `no endpoints available for service ${JSON.stringify(id)}`,
        503,
        "ServiceUnavailable",
      );
    const e = picked.endpoint;
    return {
      kind: "service",
      label: pool.label,
      scheme,
      address: e.address,
      port: e.port,
      hostPort: picked.key,
      origin: `${scheme}://${picked.key}`,
      kubelet: false,
      endpoint: { key: picked.key, pool },
    };
  }

  /** Upstream's lookup (errors included) on `snapshot`, and the pool of the service port, refreshed. */
  private lookupPool(
    snapshot: Snapshot,
    namespace: string,
    id: string,
  ): { snapshot: Snapshot; pool: ServicePool; scheme: "http" | "https" } {
    const pid = splitSchemeNamePort(id, "service");
    const found = lookupService(snapshot, namespace, pid.name, pid.port, { id });
    const name = servicePortName(namespace, pid.name, found.portName);
    const pool = this.pool(name);
    if (pool.set !== found.endpointSet || pool.service !== found.service) {
      const targets: PoolTarget[] = [];
      let refused = 0;
      for (const e of found.candidates) {
        if (e.addressType !== "FQDN" && this.allowedIP(e.address))
          targets.push({ key: endpointKey(e), endpoint: e });
        else refused++;
      }
      pool.balancer.update(targets);
      pool.set = found.endpointSet;
      pool.service = found.service;
      pool.refused = refused;
      pool.allowed = targets.length;
    }
    return { snapshot, pool, scheme: pid.scheme === "https" ? "https" : "http" };
  }

  /** Another endpoint of the same service port for a retry, or undefined. */
  retryTarget(
    previous: Target,
    namespace: string,
    id: string,
    tried: ReadonlySet<string>,
  ): Target | undefined {
    if (previous.endpoint === undefined) return undefined;
    try {
      return this.resolveService(namespace, id, { exclude: tried });
    } catch {
      return undefined;
    }
  }

  private resolvePod(namespace: string, id: string): Target {
    const pid = splitSchemeNamePort(id, "pod");
    const pod = this.options.snapshot().pod(namespace, pid.name);
    if (pod === undefined)
      throw new KproxyError("POD_NOT_FOUND", `pods ${JSON.stringify(pid.name)} not found`, {
        details: { status: 404, reason: "NotFound", kind: "pods", name: pid.name },
      });
    const address = pod.podIPs[0] ?? "";
    if (!this.allowedIP(address)) throw addressNotAllowed();
    const scheme = pid.scheme === "https" ? "https" : "http";
    let port: number | undefined;
    if (pid.port === "") port = pod.defaultPort ?? (scheme === "https" ? 443 : 80);
    else {
      port = parsePort(pid.port);
      // Beyond upstream (which hands the name to Go's dialer): a named container port is resolved.
      if (port === undefined) port = pod.ports.find((p) => p.name === pid.port)?.containerPort;
      if (port === undefined)
        throw new KproxyError(
          "UPSTREAM_UNREACHABLE",
          `dial tcp: address ${joinHostPort(address, pid.port)}: unknown port`,
          { details: { target: joinHostPort(address, pid.port) } },
        );
    }
    const hostPort = joinHostPort(address, port);
    return {
      kind: "pod",
      label: `pod/${namespace}/${pid.name}`,
      scheme,
      address,
      port,
      hostPort,
      origin: `${scheme}://${hostPort}`,
      kubelet: false,
    };
  }

  private async resolveNode(id: string): Promise<Target> {
    const pid = splitSchemeNamePort(id, "node");
    const r = resolveNode(this.options.snapshot(), pid.name, pid.port, {
      preferredAddressTypes: this.options.preferredAddressTypes,
      scheme: pid.scheme,
    });
    // Dial the address that was checked (no second DNS answer can send the request elsewhere).
    const address = await this.checkHost(r.address);
    const port = parsePort(r.port);
    if (port === undefined)
      throw new KproxyError("UPSTREAM_UNREACHABLE", `dial tcp: address ${r.host}: unknown port`, {
        details: { target: r.host },
      });
    const hostPort = joinHostPort(address, port);
    return {
      kind: "node",
      label: `node/${pid.name}`,
      scheme: r.scheme,
      address,
      port,
      hostPort,
      origin: `${r.scheme}://${hostPort}`,
      kubelet: r.kubelet,
      ...(address !== r.address ? { serverName: r.address } : {}),
    };
  }

  /** Upstream's IsProxyableHostname: every address a node name resolves to must be allowed. */
  private async checkHost(host: string): Promise<string> {
    if (isIP(host) !== 0) {
      if (!this.allowedIP(host)) throw addressNotAllowed();
      return host;
    }
    let addresses: readonly { address: string }[];
    try {
      addresses = await this.lookup(host);
    } catch (err) {
      throw new KproxyError("ADDRESS_NOT_ALLOWED", `lookup ${host}: ${errorMessage(err)}`, {
        cause: err,
        details: { status: 400, reason: "BadRequest" },
      });
    }
    if (addresses.length === 0)
      throw resolveError("ADDRESS_NOT_ALLOWED", "no addresses for hostname", 400, "BadRequest");
    for (const a of addresses) if (!this.allowedIP(a.address)) throw addressNotAllowed();
    return (addresses[0] as { address: string }).address;
  }
}
