import type { Target } from "../src/index.js";

/** A random source that returns the given values in order and fails when they run out. */
export function scripted(...values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error(`scripted random exhausted after ${values.length} values`);
    return values[i++]!;
  };
}

/** Targets "a", "b", … or from the given keys, with optional weights. */
export function targets(...specs: (string | [string, number])[]): Target[] {
  return specs.map((s) => (typeof s === "string" ? { key: s } : { key: s[0], weight: s[1] }));
}

export function keysOf(n: number, prefix = "10.0.0."): Target[] {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i + 1}:8080` }));
}

/** Counts picks per key. */
export function tally(pick: () => Target | undefined, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const t = pick();
    const k = t?.key ?? "(none)";
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}
