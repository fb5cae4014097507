import type { Clock } from "@kproxy/core";
import { invalidOption } from "./table.js";
import type { Balancer, PickOptions, StrategyName, Target } from "./types.js";

/** Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours), in ms. */
export const DEFAULT_AFFINITY_TIMEOUT_MS = 10_800_000;
/** Default bound on remembered clients; the least recently seen is forgotten beyond it. */
export const DEFAULT_AFFINITY_MAX_CLIENTS = 262_144;

export interface AffinityOptions {
  clock: Clock;
  /** Sliding timeout since the client's last pick. Default 10800 s; 0 also means the default, as kube-proxy. */
  timeoutMs?: number;
  /** Most clients remembered (least recently used forgotten first). Default 262144. */
  maxClients?: number;
}

interface Sticky {
  key: string;
  lastUsedMs: number;
}

/**
 * kube-proxy's `sessionAffinity: ClientIP`: a client (by `clientAddress`, the IP without port) keeps
 * getting the endpoint it got last, while that endpoint is still in the set and the client was seen
 * less than `timeoutMs` ago (sliding: every pick refreshes it). Otherwise the inner balancer picks and
 * the choice is remembered. An excluded sticky endpoint (a retry) is replaced by the inner pick, as
 * kube-proxy's userspace mode does after a failed dial. Picks without clientAddress go to the inner
 * balancer unchanged. pick is O(1) amortized (expired clients are dropped oldest first).
 */
export function withClientIpAffinity<T extends Target>(
  inner: Balancer<T>,
  options: AffinityOptions,
): Balancer<T> {
  return new ClientIpAffinityBalancer(inner, options);
}

class ClientIpAffinityBalancer<T extends Target> implements Balancer<T> {
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly maxClients: number;
  private byKey = new Map<string, T>();
  /** Clients in least-recently-used order (Map iteration order = insertion order). */
  private readonly clients = new Map<string, Sticky>();

  constructor(
    private readonly inner: Balancer<T>,
    options: AffinityOptions,
  ) {
    if (options === null || typeof options !== "object" || typeof options.clock?.now !== "function")
      throw invalidOption("client-IP affinity needs a clock");
    const timeoutMs = options.timeoutMs ?? DEFAULT_AFFINITY_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs < 0)
      throw invalidOption(`affinity timeoutMs must be a number >= 0, got ${String(timeoutMs)}`, {
        timeoutMs,
      });
    const maxClients = options.maxClients ?? DEFAULT_AFFINITY_MAX_CLIENTS;
    if (!Number.isInteger(maxClients) || maxClients < 1)
      throw invalidOption(`affinity maxClients must be an integer >= 1, got ${String(maxClients)}`, {
        maxClients,
      });
    this.clock = options.clock;
    this.timeoutMs = timeoutMs === 0 ? DEFAULT_AFFINITY_TIMEOUT_MS : timeoutMs;
    this.maxClients = maxClients;
  }

  get strategy(): StrategyName {
    return this.inner.strategy;
  }

  get size(): number {
    return this.inner.size;
  }

  /** Clients currently remembered (for tests and metrics). */
  get clientCount(): number {
    return this.clients.size;
  }

  update(targets: readonly T[]): void {
    this.inner.update(targets);
    const byKey = new Map<string, T>();
    for (const t of targets) if (t.weight !== 0) byKey.set(t.key, t);
    this.byKey = byKey;
    // As kube-proxy on every sync: forget clients of removed endpoints and expired clients.
    const now = this.clock.now();
    for (const [client, s] of this.clients)
      if (!byKey.has(s.key) || now - s.lastUsedMs >= this.timeoutMs) this.clients.delete(client);
  }

  private expire(now: number): void {
    for (const [client, s] of this.clients) {
      if (now - s.lastUsedMs < this.timeoutMs) return;
      this.clients.delete(client);
    }
  }

  pick(options?: PickOptions): T | undefined {
    const client = options?.clientAddress;
    if (client === undefined || client === "") return this.inner.pick(options);
    const now = this.clock.now();
    this.expire(now);
    const sticky = this.clients.get(client);
    if (sticky !== undefined) {
      this.clients.delete(client);
      const target = this.byKey.get(sticky.key);
      if (target !== undefined && options?.exclude?.has(sticky.key) !== true) {
        sticky.lastUsedMs = now;
        this.clients.set(client, sticky);
        return target;
      }
    }
    const target = this.inner.pick(options);
    if (target !== undefined) {
      if (sticky !== undefined) {
        sticky.key = target.key;
        sticky.lastUsedMs = now;
        this.clients.set(client, sticky);
      } else {
        this.clients.set(client, { key: target.key, lastUsedMs: now });
        if (this.clients.size > this.maxClients) {
          const oldest = this.clients.keys().next();
          if (!oldest.done) this.clients.delete(oldest.value);
        }
      }
    }
    return target;
  }

  onStart(key: string): void {
    this.inner.onStart(key);
  }

  onFinish(key: string): void {
    this.inner.onFinish(key);
  }
}
