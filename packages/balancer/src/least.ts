import { buildTable, sampleIndex, sampleIndexExcluding, type TargetTable } from "./table.js";
import type { Balancer, PickOptions, StrategyName, Target } from "./types.js";

/** In-flight count of one key. Survives updates that drop the key while requests are still running. */
interface Slot {
  count: number;
  /** Position in the current table, -1 when the key is not in it. */
  index: number;
}

/**
 * In-flight accounting by key. A key removed by `update` keeps its slot while it has requests in
 * flight, so that finishing them (or the key coming back, e.g. after an ejection) stays exact.
 */
class InflightCounts {
  private readonly slots = new Map<string, Slot>();

  /** Binds the keys of a new table to their slots (index = position); forgets idle removed keys. */
  bind(keys: readonly string[]): Slot[] {
    for (const [key, slot] of this.slots) {
      slot.index = -1;
      if (slot.count === 0) this.slots.delete(key);
    }
    const out: Slot[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      let slot = this.slots.get(key);
      if (slot === undefined) {
        slot = { count: 0, index: i };
        this.slots.set(key, slot);
      } else slot.index = i;
      out[i] = slot;
    }
    return out;
  }

  /** +1 (start) or -1 (finish); returns the slot, or undefined for an unknown key. */
  add(key: string, delta: 1 | -1): Slot | undefined {
    let slot = this.slots.get(key);
    if (slot === undefined) {
      if (delta < 0) return undefined;
      slot = { count: 0, index: -1 };
      this.slots.set(key, slot);
    }
    slot.count = Math.max(0, slot.count + delta);
    if (slot.count === 0 && slot.index < 0) this.slots.delete(key);
    return slot;
  }

  get(key: string): number {
    return this.slots.get(key)?.count ?? 0;
  }
}

/**
 * Least request by "power of two choices" (Envoy's LEAST_REQUEST): draw `choiceCount` endpoints at
 * random (weighted) and take the one with the lowest (in-flight + 1) / weight; the first drawn wins
 * ties. With equal weights the two draws are distinct endpoints. O(1) uniform, O(log n) weighted.
 */
export class LeastRequestBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "least-request";
  private table: TargetTable<T> = buildTable<T>([]);
  private slots: Slot[] = [];
  private readonly counts = new InflightCounts();

  constructor(
    private readonly random: () => number,
    private readonly choiceCount = 2,
  ) {}

  get size(): number {
    return this.table.items.length;
  }

  /** Requests in flight to `key` (started and not finished). */
  inflight(key: string): number {
    return this.counts.get(key);
  }

  update(targets: readonly T[]): void {
    const table = buildTable(targets);
    this.slots = this.counts.bind(table.items.map((t) => t.key));
    this.table = table;
  }

  private load(i: number): number {
    return (this.slots[i]!.count + 1) / this.table.weights[i]!;
  }

  pick(options?: PickOptions): T | undefined {
    const table = this.table;
    const n = table.items.length;
    if (n === 0) return undefined;
    const exclude = options?.exclude;
    const hasExclude = exclude !== undefined && exclude.size > 0;
    let best: number;
    if (!hasExclude && table.uniform && n > 1 && this.choiceCount === 2) {
      // Two distinct endpoints, uniformly.
      const a = Math.min(n - 1, Math.floor(this.random() * n));
      let b = Math.min(n - 2, Math.floor(this.random() * (n - 1)));
      if (b >= a) b++;
      best = this.load(b) < this.load(a) ? b : a;
    } else {
      best = hasExclude ? sampleIndexExcluding(table, this.random, exclude) : sampleIndex(table, this.random);
      if (best < 0) return undefined;
      for (let c = 1; c < this.choiceCount; c++) {
        const i = hasExclude
          ? sampleIndexExcluding(table, this.random, exclude)
          : sampleIndex(table, this.random);
        if (this.load(i) < this.load(best)) best = i;
      }
    }
    return table.items[best];
  }

  onStart(key: string): void {
    this.counts.add(key, 1);
  }

  onFinish(key: string): void {
    this.counts.add(key, -1);
  }
}

/**
 * Least connections, exactly (HAProxy's `balance leastconn`): the endpoint with the lowest
 * (in-flight + 1) / weight; among equals, the one picked or changed least recently, so that equal
 * endpoints are used in turn. A binary heap keyed by (load, sequence): pick, start and finish are
 * O(log n). With `exclude`, pick scans all endpoints (O(n), retries only).
 */
export class LeastConnectionsBalancer<T extends Target> implements Balancer<T> {
  readonly strategy: StrategyName = "least-connections";
  private table: TargetTable<T> = buildTable<T>([]);
  private slots: Slot[] = [];
  private readonly counts = new InflightCounts();
  /** heap[h] = table index; pos[i] = heap position of table index i. */
  private heap = new Int32Array(0);
  private pos = new Int32Array(0);
  private seq = new Float64Array(0);
  private clock = 0;

  get size(): number {
    return this.table.items.length;
  }

  /** Connections in flight to `key` (started and not finished). */
  inflight(key: string): number {
    return this.counts.get(key);
  }

  update(targets: readonly T[]): void {
    const table = buildTable(targets);
    const n = table.items.length;
    // Kept keys keep their place among equals; new keys queue behind, in input order.
    const seq = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const old = this.table.indexByKey.get(table.items[i]!.key);
      seq[i] = old === undefined ? ++this.clock : this.seq[old]!;
    }
    this.slots = this.counts.bind(table.items.map((t) => t.key));
    this.table = table;
    this.seq = seq;
    this.heap = new Int32Array(n);
    this.pos = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.heap[i] = i;
      this.pos[i] = i;
    }
    for (let h = (n >>> 1) - 1; h >= 0; h--) this.down(h);
  }

  private less(a: number, b: number): boolean {
    const la = (this.slots[a]!.count + 1) / this.table.weights[a]!;
    const lb = (this.slots[b]!.count + 1) / this.table.weights[b]!;
    return la < lb || (la === lb && this.seq[a]! < this.seq[b]!);
  }

  private swap(h1: number, h2: number): void {
    const a = this.heap[h1]!;
    const b = this.heap[h2]!;
    this.heap[h1] = b;
    this.heap[h2] = a;
    this.pos[b] = h1;
    this.pos[a] = h2;
  }

  private up(h: number): void {
    while (h > 0) {
      const parent = (h - 1) >>> 1;
      if (!this.less(this.heap[h]!, this.heap[parent]!)) return;
      this.swap(h, parent);
      h = parent;
    }
  }

  private down(h: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * h + 1;
      if (l >= n) return;
      const r = l + 1;
      let m = l;
      if (r < n && this.less(this.heap[r]!, this.heap[l]!)) m = r;
      if (!this.less(this.heap[m]!, this.heap[h]!)) return;
      this.swap(h, m);
      h = m;
    }
  }

  /** Moves table index i behind its equals and restores heap order. */
  private touch(i: number): void {
    this.seq[i] = ++this.clock;
    const h = this.pos[i]!;
    this.up(h);
    this.down(this.pos[i]!);
  }

  pick(options?: PickOptions): T | undefined {
    const n = this.table.items.length;
    if (n === 0) return undefined;
    const exclude = options?.exclude;
    let best = -1;
    if (exclude === undefined || exclude.size === 0) best = this.heap[0]!;
    else
      for (let i = 0; i < n; i++)
        if (!exclude.has(this.table.items[i]!.key) && (best < 0 || this.less(i, best))) best = i;
    if (best < 0) return undefined;
    this.touch(best);
    return this.table.items[best];
  }

  onStart(key: string): void {
    const slot = this.counts.add(key, 1);
    if (slot !== undefined && slot.index >= 0) this.touch(slot.index);
  }

  onFinish(key: string): void {
    const slot = this.counts.add(key, -1);
    if (slot !== undefined && slot.index >= 0) this.touch(slot.index);
  }
}
