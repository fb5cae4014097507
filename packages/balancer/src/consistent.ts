import { murmur3, vnodeHash } from "./hash.js";
import { buildTable, checkInt, invalidOption } from "./table.js";
import type { Balancer, PickOptions, StrategyName, Target } from "./types.js";

const noop = (): void => {};
const TWO_32 = 4294967296;

/** Default minimum ring size (Envoy's `minimum_ring_size`). */
export const DEFAULT_RING_SIZE = 1024;
/** Largest ring (Envoy's `maximum_ring_size` default, 8M entries). */
export const MAX_RING_SIZE = 8388608;
/** Default maglev table size (Envoy's default, a prime). */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
const MAX_MAGLEV_TABLE_SIZE = 5000011;

/** Where a consistent-hash balancer takes its key from. */
export type HashKeySource = "hash-key" | "client-address";

function keyOf(options: PickOptions | undefined, source: HashKeySource): string | undefined {
  if (options === undefined) return undefined;
  return source === "client-address" ? options.clientAddress : (options.hashKey ?? options.clientAddress);
}

/**
 * Ring hash (Envoy's RING_HASH, Karger et al.): every endpoint is hashed onto a 32-bit ring as
 * virtual nodes (murmur3 of its key, mixed with the node number) in proportion to its weight (at least `ringSize` entries in
 * all, at most 8M); a key goes to the first virtual node at or after its murmur3 hash. Removing one
 * of n endpoints moves only its own ≈1/n of keys. pick is O(log ring). A pick without a key picks a random
 * point on the ring (weighted random). With `exclude`, walks the ring on to the next allowed endpoint.
 *
 * Used for "ring-hash" (key: hashKey, else clientAddress) and "source-ip" (key: clientAddress).
 */
export class RingHashBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName;
  private items: readonly T[] = [];
  private hashes = new Uint32Array(0);
  private owners = new Uint32Array(0);
  private readonly ringSize: number;
  private readonly source: HashKeySource;

  constructor(
    private readonly random: () => number,
    options: { ringSize?: number; source?: HashKeySource } = {},
  ) {
    this.ringSize = checkInt("ringSize", options.ringSize ?? DEFAULT_RING_SIZE, 1, MAX_RING_SIZE);
    this.source = options.source ?? "hash-key";
    this.strategy = this.source === "client-address" ? "source-ip" : "ring-hash";
  }

  get size(): number {
    return this.items.length;
  }

  /** Number of virtual nodes on the ring (for tests and metrics). */
  get ringEntries(): number {
    return this.hashes.length;
  }

  update(targets: readonly T[]): void {
    const table = buildTable(targets, true);
    const n = table.items.length;
    if (n >= 1 << 21) throw invalidOption(`ring hash supports at most ${(1 << 21) - 1} endpoints, got ${n}`);
    // Virtual nodes per endpoint: the lightest gets the smallest power of two that makes the ring at
    // least ringSize entries, others in proportion to weight. Powers of two keep every endpoint's
    // virtual nodes unchanged when one endpoint comes or goes (unless a power-of-two boundary is crossed),
    // so only the changed endpoint's keys move.
    let minWeight = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) minWeight = Math.min(minWeight, table.weights[i]!);
    const units = n === 0 ? 0 : table.total / minWeight;
    let perUnit = n === 0 ? 0 : 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(this.ringSize / units))));
    if (perUnit * units > MAX_RING_SIZE) perUnit = MAX_RING_SIZE / units;
    const counts = new Float64Array(n);
    let entries = 0;
    for (let i = 0; i < n; i++) {
      counts[i] = Math.max(1, Math.round((perUnit * table.weights[i]!) / minWeight));
      entries += counts[i]!;
    }
    // (hash, owner) packed in one double so that a native numeric sort orders the ring.
    const sorted = new Float64Array(entries);
    let j = 0;
    for (let i = 0; i < n; i++) {
      const base = murmur3(table.items[i]!.key);
      for (let v = 0; v < counts[i]!; v++) sorted[j++] = vnodeHash(base, v) * 2097152 + i;
    }
    sorted.sort();
    const hashes = new Uint32Array(sorted.length);
    const owners = new Uint32Array(sorted.length);
    for (let j = 0; j < sorted.length; j++) {
      const v = sorted[j]!;
      const h = Math.floor(v / 2097152);
      hashes[j] = h;
      owners[j] = v - h * 2097152;
    }
    this.items = table.items;
    this.hashes = hashes;
    this.owners = owners;
  }

  pick(options?: PickOptions): T | undefined {
    const len = this.hashes.length;
    if (len === 0) return undefined;
    const key = keyOf(options, this.source);
    const h = key === undefined ? Math.floor(this.random() * TWO_32) : murmur3(key);
    const hashes = this.hashes;
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const exclude = options?.exclude;
    if (exclude === undefined || exclude.size === 0) return this.items[this.owners[lo === len ? 0 : lo]!];
    for (let step = 0; step < len; step++) {
      const item = this.items[this.owners[(lo + step) % len]!]!;
      if (!exclude.has(item.key)) return item;
    }
    return undefined;
  }

  onStart = noop;
  onFinish = noop;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev (Eisenbud et al., NSDI 2016; Envoy's MAGLEV): a lookup table of prime size M where each
 * endpoint fills slots along its own permutation (offset = h1(key) mod M, skip = h2(key) mod (M−1) + 1),
 * taking turns so shares are even; weighted endpoints take turns in proportion to their weight
 * (Envoy's weighted variant). pick is O(1): table[hash(key) mod M]. Changing the set moves few keys
 * beyond those of the changed endpoint. With `exclude`, probes the following slots.
 */
export class MaglevBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "maglev";
  private items: readonly T[] = [];
  private table = new Uint32Array(0);
  private readonly tableSize: number;

  constructor(
    private readonly random: () => number,
    options: { tableSize?: number } = {},
  ) {
    const m = options.tableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
    if (!isPrime(m) || m > MAX_MAGLEV_TABLE_SIZE)
      throw invalidOption(
        `maglev table size must be a prime number <= ${MAX_MAGLEV_TABLE_SIZE} (e.g. 65537), got ${String(m)}`,
        { maglevTableSize: m },
      );
    this.tableSize = m;
  }

  get size(): number {
    return this.items.length;
  }

  update(targets: readonly T[]): void {
    const t = buildTable(targets, true);
    const n = t.items.length;
    const m = this.tableSize;
    const table = new Uint32Array(m);
    if (n > 0) {
      const filled = new Uint8Array(m);
      const pos = new Float64Array(n);
      const skip = new Float64Array(n);
      const norm = new Float64Array(n);
      const due = new Float64Array(n);
      let maxNorm = 0;
      for (let i = 0; i < n; i++) {
        const key = t.items[i]!.key;
        pos[i] = murmur3(key, 0x6d61676c) % m;
        skip[i] = (murmur3(key, 0x65762121) % (m - 1)) + 1;
        norm[i] = t.weights[i]! / t.total;
        maxNorm = Math.max(maxNorm, norm[i]!);
      }
      let placed = 0;
      for (let iteration = 1; placed < m; iteration++) {
        for (let i = 0; i < n && placed < m; i++) {
          // An endpoint of weight max/k takes a turn every k iterations.
          if (iteration * norm[i]! < due[i]!) continue;
          due[i] = due[i]! + maxNorm;
          let c = pos[i]!;
          while (filled[c] === 1) c = (c + skip[i]!) % m;
          filled[c] = 1;
          table[c] = i;
          pos[i] = (c + skip[i]!) % m;
          placed++;
        }
      }
    }
    this.items = t.items;
    this.table = table;
  }

  pick(options?: PickOptions): T | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const m = this.tableSize;
    const key = keyOf(options, "hash-key");
    const slot = key === undefined ? Math.min(m - 1, Math.floor(this.random() * m)) : murmur3(key) % m;
    const exclude = options?.exclude;
    if (exclude === undefined || exclude.size === 0) return this.items[this.table[slot]!];
    for (let step = 0; step < m; step++) {
      const item = this.items[this.table[(slot + step) % m]!]!;
      if (!exclude.has(item.key)) return item;
    }
    return undefined;
  }

  onStart = noop;
  onFinish = noop;
}
