import { buildTable, sampleIndexExcluding, type TargetTable } from "./table.js";
import type { Balancer, PickOptions, StrategyName, Target } from "./types.js";

const noop = (): void => {};

/**
 * Round robin over endpoints in the order given (weights ignored, except that weight 0 is never
 * picked). The first position is random (as Envoy does, so that replicas do not all start on the
 * first endpoint); after an update, the rotation continues with the endpoint that was due next (or
 * the first one after it still in the set).
 * pick is O(1), plus one step per excluded endpoint skipped.
 */
export class RoundRobinBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "round-robin";
  private items: readonly T[] = [];
  private next = 0;
  private started = false;

  constructor(private readonly random: () => number) {}

  get size(): number {
    return this.items.length;
  }

  update(targets: readonly T[]): void {
    const table = buildTable(targets);
    const old = this.items;
    this.items = table.items;
    const n = this.items.length;
    if (n === 0) return;
    if (!this.started) {
      this.next = Math.min(n - 1, Math.floor(this.random() * n));
      this.started = true;
      return;
    }
    // Continue with the endpoint that was due next, or the first one after it that is still here.
    let next = -1;
    for (let step = 0; step < old.length && next < 0; step++)
      next = table.indexByKey.get(old[(this.next + step) % old.length]!.key) ?? -1;
    this.next = next >= 0 ? next : this.next % n;
  }

  pick(options?: PickOptions): T | undefined {
    const items = this.items;
    const n = items.length;
    const exclude = options?.exclude;
    for (let step = 0; step < n; step++) {
      const i = (this.next + step) % n;
      const item = items[i]!;
      if (exclude?.has(item.key)) continue;
      this.next = (i + 1) % n;
      return item;
    }
    return undefined;
  }

  onStart = noop;
  onFinish = noop;
}

/**
 * Weighted random: each endpoint with probability weight / total weight (uniform when weights are
 * equal, as the API server and kube-proxy's iptables/nftables modes do). O(1) uniform, O(log n) weighted.
 */
export class RandomBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "random";
  private table: TargetTable<T> = buildTable<T>([]);

  constructor(private readonly random: () => number) {}

  get size(): number {
    return this.table.items.length;
  }

  update(targets: readonly T[]): void {
    this.table = buildTable(targets);
  }

  pick(options?: PickOptions): T | undefined {
    const i = sampleIndexExcluding(this.table, this.random, options?.exclude);
    return i < 0 ? undefined : this.table.items[i];
  }

  onStart = noop;
  onFinish = noop;
}

/** Largest schedule (entries × endpoints work to build it) precomputed by WeightedRoundRobinBalancer. */
const SCHEDULE_BUILD_LIMIT = 1 << 22;
const WEIGHT_SCALE = 1000;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Smooth weighted round robin, exactly nginx's sequence (ngx_http_upstream_get_peer): every pick
 * adds each endpoint's weight to its current weight, picks the largest current weight (first on
 * ties) and subtracts the total from it. Weights {a:5, b:1, c:1} give a a b a c a a.
 *
 * The sequence is periodic (period = sum of weights reduced by their gcd), so it is precomputed at
 * update and pick is O(1). Fractional weights are scaled by 1000 and rounded. When the schedule would
 * be too large to build, pick runs nginx's O(n) loop instead (same sequence).
 */
export class WeightedRoundRobinBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "weighted-round-robin";
  private items: readonly T[] = [];
  private intWeights = new Float64Array(0);
  private schedule: Uint32Array | undefined;
  private mode: "order" | "schedule" | "live" = "order";
  private cursor = 0;
  private current = new Float64Array(0);
  private lastKey: string | undefined;

  get size(): number {
    return this.items.length;
  }

  update(targets: readonly T[]): void {
    const table = buildTable(targets);
    const items = table.items;
    const n = items.length;
    const allIntegers = table.weights.every((w) => Number.isInteger(w));
    const weights = new Float64Array(n);
    let g = 0;
    for (let i = 0; i < n; i++) {
      const w = table.weights[i]!;
      weights[i] = allIntegers ? w : Math.max(1, Math.round(w * WEIGHT_SCALE));
      g = gcd(weights[i]!, g);
    }
    let period = 0;
    for (let i = 0; i < n; i++) {
      weights[i] = weights[i]! / (g || 1);
      period += weights[i]!;
    }
    const previous = this.lastKey === undefined ? undefined : table.indexByKey.get(this.lastKey);
    this.items = items;
    this.intWeights = weights;
    this.current = new Float64Array(n);
    if (table.uniform) {
      // Equal weights: nginx's sequence is plain order.
      this.mode = "order";
      this.schedule = undefined;
      this.cursor = previous === undefined ? 0 : (previous + 1) % Math.max(1, n);
    } else if (period * n <= SCHEDULE_BUILD_LIMIT) {
      const schedule = new Uint32Array(period);
      for (let s = 0; s < period; s++) schedule[s] = this.smoothStep(undefined);
      this.current.fill(0);
      this.mode = "schedule";
      this.schedule = schedule;
      this.cursor = period === 0 ? 0 : this.cursor % period;
    } else {
      this.mode = "live";
      this.schedule = undefined;
      this.cursor = 0;
    }
  }

  /** One step of nginx's algorithm over endpoints not excluded; -1 when none. */
  private smoothStep(exclude: ReadonlySet<string> | undefined): number {
    const items = this.items;
    const current = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      if (exclude?.has(items[i]!.key)) continue;
      const w = this.intWeights[i]!;
      current[i] = current[i]! + w;
      total += w;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best >= 0) current[best] = current[best]! - total;
    return best;
  }

  pick(options?: PickOptions): T | undefined {
    const items = this.items;
    const n = items.length;
    if (n === 0) return undefined;
    const exclude = options?.exclude;
    const hasExclude = exclude !== undefined && exclude.size > 0;
    const schedule = this.schedule;
    if (this.mode === "live") {
      // Large weights: run nginx's loop live.
      const i = this.smoothStep(hasExclude ? exclude : undefined);
      return i < 0 ? undefined : this.remember(items[i]!);
    }
    const period = schedule === undefined ? n : schedule.length;
    // Without exclusions the entry at the cursor is taken; with them, the next non-excluded entry
    // within a bounded scan, then the heaviest non-excluded endpoint.
    const limit = hasExclude ? Math.min(period, 4 * n + 64) : 1;
    for (let step = 0; step < limit; step++) {
      const pos = (this.cursor + step) % period;
      const i = schedule === undefined ? pos : schedule[pos]!;
      const item = items[i]!;
      if (hasExclude && exclude.has(item.key)) continue;
      this.cursor = (pos + 1) % period;
      return this.remember(item);
    }
    let best = -1;
    for (let i = 0; i < n; i++)
      if (!exclude!.has(items[i]!.key) && (best < 0 || this.intWeights[i]! > this.intWeights[best]!))
        best = i;
    return best < 0 ? undefined : this.remember(items[best]!);
  }

  private remember(item: T): T {
    this.lastKey = item.key;
    return item;
  }

  onStart = noop;
  onFinish = noop;
}
