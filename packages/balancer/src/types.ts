/** An endpoint a balancer may pick, e.g. `{ key: "10.0.0.1:8080" }`. Apps may extend it with their own data. */
export interface Target {
  /** Unique, stable identity of the endpoint ("ip:port"); state (counts, health, affinity) is kept by key. */
  readonly key: string;
  /**
   * Relative weight, default 1. 0 means "no new picks" (HAProxy's weight 0): the endpoint is kept for
   * accounting but never picked. Must be a finite number >= 0.
   */
  readonly weight?: number;
}

/** Per-pick inputs. Create one object per downstream request/connection; nothing here is retained. */
export interface PickOptions {
  /** Key for ring-hash / maglev (e.g. a header or cookie value). Falls back to `clientAddress`. */
  hashKey?: string;
  /** The downstream client's IP address, without port: used by source-ip and client-IP affinity. */
  clientAddress?: string;
  /** Keys that must not be picked, e.g. endpoints already tried by this request (retries). */
  exclude?: ReadonlySet<string>;
}

/** Picks an endpoint among a set replaced with `update`. Pure: no I/O, no timers. */
export interface Balancer<T extends Target> {
  /** The strategy that picks (wrappers report their inner strategy). */
  readonly strategy: StrategyName;
  /** Number of endpoints that may currently be picked (weight > 0, and eligible when health-filtered). */
  readonly size: number;
  /**
   * Replaces the endpoint set. Tables are rebuilt here, never in `pick`. State tied to keys that are
   * kept (in-flight counts, affinity, round-robin position) survives. Throws BALANCER_INVALID_TARGET for
   * an empty or duplicate key or a bad weight.
   */
  update(targets: readonly T[]): void;
  /** Picks an endpoint, or undefined when none may be picked (empty set, or everything excluded). */
  pick(options?: PickOptions): T | undefined;
  /** Call when a request/connection to `key` starts (after `pick`); least-request/connections use it. */
  onStart(key: string): void;
  /** Call when that request/connection ends, successfully or not. Unknown keys are ignored. */
  onFinish(key: string): void;
}

/** Strategy names, as accepted by `--balance`. */
export type StrategyName =
  | "random"
  | "round-robin"
  | "least-request"
  | "least-connections"
  | "weighted-round-robin"
  | "ring-hash"
  | "maglev"
  | "source-ip";

export const STRATEGY_NAMES: readonly StrategyName[] = Object.freeze([
  "random",
  "round-robin",
  "least-request",
  "least-connections",
  "weighted-round-robin",
  "ring-hash",
  "maglev",
  "source-ip",
] as const);

/** Stable error codes thrown by this package. */
export const BALANCER_ERROR_CODES = Object.freeze({
  unknownStrategy: "BALANCER_UNKNOWN_STRATEGY",
  invalidOption: "BALANCER_INVALID_OPTION",
  invalidTarget: "BALANCER_INVALID_TARGET",
} as const);
