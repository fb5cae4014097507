import { KproxyError } from "@kproxy/core";
import type { Target } from "./types.js";

/** The pickable endpoints of one `update`, with the weight arrays every strategy samples from. */
export interface TargetTable<T extends Target> {
  /** Endpoints with weight > 0, in input order (or sorted by key when asked). */
  readonly items: readonly T[];
  readonly weights: Float64Array;
  /** cumulative[i] = weights[0] + … + weights[i]. */
  readonly cumulative: Float64Array;
  readonly total: number;
  /** True when every pickable weight is equal: sampling is then O(1). */
  readonly uniform: boolean;
  readonly indexByKey: ReadonlyMap<string, number>;
}

export function invalidOption(message: string, details?: Record<string, unknown>): KproxyError {
  return new KproxyError("BALANCER_INVALID_OPTION", message, details ? { details } : undefined);
}

/** Validates targets (non-empty unique keys, finite weights >= 0) and builds the shared table. */
export function buildTable<T extends Target>(targets: readonly T[], sortByKey = false): TargetTable<T> {
  if (!Array.isArray(targets))
    throw new KproxyError("BALANCER_INVALID_TARGET", "balancer update: targets must be an array");
  const seen = new Set<string>();
  const items: T[] = [];
  for (const t of targets) {
    const key = (t as Partial<Target> | null | undefined)?.key;
    if (typeof key !== "string" || key === "")
      throw new KproxyError(
        "BALANCER_INVALID_TARGET",
        "balancer update: every endpoint needs a non-empty key",
      );
    if (seen.has(key))
      throw new KproxyError("BALANCER_INVALID_TARGET", `balancer update: duplicate endpoint key "${key}"`, {
        details: { key },
      });
    seen.add(key);
    const w = t.weight;
    if (w !== undefined && (typeof w !== "number" || !Number.isFinite(w) || w < 0))
      throw new KproxyError(
        "BALANCER_INVALID_TARGET",
        `balancer update: endpoint "${key}" has weight ${String(w)}; weights are finite numbers >= 0`,
        { details: { key, weight: w } },
      );
    if (w !== 0) items.push(t);
  }
  if (sortByKey) items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = items.length;
  const weights = new Float64Array(n);
  const cumulative = new Float64Array(n);
  const indexByKey = new Map<string, number>();
  let total = 0;
  let uniform = true;
  for (let i = 0; i < n; i++) {
    const item = items[i]!;
    const w = item.weight ?? 1;
    weights[i] = w;
    total += w;
    cumulative[i] = total;
    if (w !== weights[0]) uniform = false;
    indexByKey.set(item.key, i);
  }
  return { items, weights, cumulative, total, uniform, indexByKey };
}

/** Index of a weighted-random endpoint; -1 when the table is empty. O(1) if uniform, else O(log n). */
export function sampleIndex(table: TargetTable<Target>, random: () => number): number {
  const n = table.items.length;
  if (n === 0) return -1;
  if (table.uniform) return Math.min(n - 1, Math.floor(random() * n));
  const r = random() * table.total;
  const cum = table.cumulative;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > r) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const REJECTION_TRIES = 4;

/**
 * Like sampleIndex, restricted to keys not in `exclude`: a few rejection samples (exact
 * conditional distribution), then an exact O(n) draw over the remaining weight.
 */
export function sampleIndexExcluding(
  table: TargetTable<Target>,
  random: () => number,
  exclude: ReadonlySet<string> | undefined,
): number {
  if (exclude === undefined || exclude.size === 0) return sampleIndex(table, random);
  const items = table.items;
  for (let i = 0; i < REJECTION_TRIES; i++) {
    const idx = sampleIndex(table, random);
    if (idx < 0) return -1;
    if (!exclude.has(items[idx]!.key)) return idx;
  }
  let remaining = 0;
  let last = -1;
  for (let i = 0; i < items.length; i++)
    if (!exclude.has(items[i]!.key)) {
      remaining += table.weights[i]!;
      last = i;
    }
  if (last < 0) return -1;
  let r = random() * remaining;
  for (let i = 0; i < items.length; i++) {
    if (exclude.has(items[i]!.key)) continue;
    r -= table.weights[i]!;
    if (r < 0) return i;
  }
  return last;
}

export function checkRandom(random: unknown): () => number {
  if (typeof random !== "function") throw invalidOption("balancer option random must be a function");
  return random as () => number;
}

export function checkInt(name: string, value: number, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw invalidOption(
      `balancer option ${name} must be an integer in [${min}, ${max}], got ${String(value)}`,
      {
        [name]: value,
      },
    );
  return value;
}
