import { type Clock, type FlagSpec, KproxyError, systemClock } from "@kproxy/core";
import { withClientIpAffinity } from "./affinity.js";
import { MaglevBalancer, RingHashBalancer } from "./consistent.js";
import { type HealthState, withHealth } from "./health.js";
import { LeastConnectionsBalancer, LeastRequestBalancer } from "./least.js";
import { RandomBalancer, RoundRobinBalancer, WeightedRoundRobinBalancer } from "./simple.js";
import { checkInt, checkRandom } from "./table.js";
import { type Balancer, STRATEGY_NAMES, type StrategyName, type Target } from "./types.js";

export interface BalancerOptions {
  /** Random source in [0, 1). Default Math.random; inject mulberry32(seed) in tests. */
  random?: () => number;
  /** Clock for client-IP affinity. Default systemClock. */
  clock?: Clock;
  /** ring-hash / source-ip: minimum number of virtual nodes on the ring. Default 1024 (Envoy). */
  ringSize?: number;
  /** maglev: lookup table size, a prime. Default 65537 (Envoy). */
  maglevTableSize?: number;
  /** least-request: endpoints drawn per pick. Default 2 (power of two choices). */
  choiceCount?: number;
  /** Wraps the strategy with kube-proxy's ClientIP session affinity (see withClientIpAffinity). */
  affinity?: { timeoutMs?: number; maxClients?: number };
  /** Filters by this health state (see withHealth); affinity then only sticks to eligible endpoints. */
  health?: HealthState;
}

export function isStrategyName(name: unknown): name is StrategyName {
  return typeof name === "string" && (STRATEGY_NAMES as readonly string[]).includes(name);
}

/** Returns `name` as a StrategyName, or throws BALANCER_UNKNOWN_STRATEGY listing the valid names. */
export function parseStrategyName(name: string): StrategyName {
  if (isStrategyName(name)) return name;
  throw new KproxyError(
    "BALANCER_UNKNOWN_STRATEGY",
    `unknown balancing strategy ${JSON.stringify(name)}: valid strategies are ${STRATEGY_NAMES.join(", ")}`,
    { details: { strategy: name, valid: [...STRATEGY_NAMES] } },
  );
}

/** A `--balance` flag description for an app, with its default strategy. */
export function balanceFlag(defaultStrategy: StrategyName): FlagSpec {
  return {
    name: "balance",
    type: "string",
    default: parseStrategyName(defaultStrategy),
    metavar: "strategy",
    help: `How to pick an endpoint: one of ${STRATEGY_NAMES.join(", ")}.`,
  };
}

/**
 * Creates a balancer by strategy name (e.g. from `--balance`). Throws BALANCER_UNKNOWN_STRATEGY for
 * an unknown name and BALANCER_INVALID_OPTION for bad options. With `health` and/or `affinity`, the
 * result is health-filtered outside and affine inside: withHealth(withClientIpAffinity(strategy)).
 */
export function createBalancer<T extends Target>(
  strategy: string,
  options: BalancerOptions = {},
): Balancer<T> {
  const name = parseStrategyName(strategy);
  const random = checkRandom(options.random ?? Math.random);
  let balancer: Balancer<T>;
  switch (name) {
    case "random":
      balancer = new RandomBalancer<T>(random);
      break;
    case "round-robin":
      balancer = new RoundRobinBalancer<T>(random);
      break;
    case "least-request":
      balancer = new LeastRequestBalancer<T>(
        random,
        checkInt("choiceCount", options.choiceCount ?? 2, 1, 64),
      );
      break;
    case "least-connections":
      balancer = new LeastConnectionsBalancer<T>();
      break;
    case "weighted-round-robin":
      balancer = new WeightedRoundRobinBalancer<T>();
      break;
    case "ring-hash":
      balancer = new RingHashBalancer<T>(random, { ringSize: options.ringSize, source: "hash-key" });
      break;
    case "source-ip":
      balancer = new RingHashBalancer<T>(random, { ringSize: options.ringSize, source: "client-address" });
      break;
    case "maglev":
      balancer = new MaglevBalancer<T>(random, { tableSize: options.maglevTableSize });
      break;
  }
  if (options.affinity !== undefined)
    balancer = withClientIpAffinity(balancer, { clock: options.clock ?? systemClock, ...options.affinity });
  if (options.health !== undefined) balancer = withHealth(balancer, options.health);
  return balancer;
}
