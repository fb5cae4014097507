export type { AffinityOptions } from "./affinity.js";
export {
  DEFAULT_AFFINITY_MAX_CLIENTS,
  DEFAULT_AFFINITY_TIMEOUT_MS,
  withClientIpAffinity,
} from "./affinity.js";
export type { HashKeySource } from "./consistent.js";
export {
  DEFAULT_MAGLEV_TABLE_SIZE,
  DEFAULT_RING_SIZE,
  isPrime,
  MAX_RING_SIZE,
  MaglevBalancer,
  RingHashBalancer,
} from "./consistent.js";
export type { BalancerOptions } from "./factory.js";
export { balanceFlag, createBalancer, isStrategyName, parseStrategyName } from "./factory.js";
export { mulberry32, murmur3 } from "./hash.js";
export type {
  EligibleTargets,
  EndpointHealth,
  HealthEvent,
  HealthOptions,
  OutlierOptions,
} from "./health.js";
export { HealthState, withHealth } from "./health.js";
export { LeastConnectionsBalancer, LeastRequestBalancer } from "./least.js";
export { RandomBalancer, RoundRobinBalancer, WeightedRoundRobinBalancer } from "./simple.js";
export type { Balancer, PickOptions, StrategyName, Target } from "./types.js";
export { BALANCER_ERROR_CODES, STRATEGY_NAMES } from "./types.js";
