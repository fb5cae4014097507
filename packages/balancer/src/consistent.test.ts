import { isKproxyError } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { keysOf, scripted, targets } from "../test/helpers.js";
import {
  createBalancer,
  MaglevBalancer,
  mulberry32,
  murmur3,
  RingHashBalancer,
  type Target,
} from "./index.js";

/** The virtual node hash, written out: murmur3's fmix32 of key hash XOR (v+1)·0x9e3779b9. */
function vnode(base: number, v: number): number {
  let x = (base ^ Number((BigInt(v + 1) * 0x9e3779b9n) & 0xffffffffn)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Number((BigInt(x) * 0x85ebca6bn) & 0xffffffffn);
  x = (x ^ (x >>> 13)) >>> 0;
  x = Number((BigInt(x) * 0xc2b2ae35n) & 0xffffffffn);
  return (x ^ (x >>> 16)) >>> 0;
}

const requestKeys = (n: number, seed = 11) => {
  const r = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => `client-${i}-${Math.floor(r() * 1e9)}`);
};

function mapping(b: { pick(o: { hashKey: string }): Target | undefined }, keys: string[]): string[] {
  return keys.map((k) => b.pick({ hashKey: k })!.key);
}

function shares(owners: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const o of owners) m.set(o, (m.get(o) ?? 0) + 1 / owners.length);
  return m;
}

/** Maglev as in the paper (Eisenbud et al., Pseudocode 1): explicit permutation rows. */
function referenceMaglev(keys: string[], m: number): number[] {
  const sorted = [...keys].sort();
  const perm = sorted.map((k) => {
    const offset = murmur3(k, 0x6d61676c) % m;
    const skip = (murmur3(k, 0x65762121) % (m - 1)) + 1;
    return Array.from({ length: m }, (_, j) => (offset + j * skip) % m);
  });
  const next = sorted.map(() => 0);
  const entry = new Array<number>(m).fill(-1);
  let n = 0;
  for (;;) {
    for (let i = 0; i < sorted.length; i++) {
      let c = perm[i]![next[i]!]!;
      while (entry[c]! >= 0) {
        next[i]!++;
        c = perm[i]![next[i]!]!;
      }
      entry[c] = i;
      next[i]!++;
      if (++n === m) return entry;
    }
  }
}

describe.each([
  {
    name: "ring-hash",
    make: () => new RingHashBalancer(Math.random, { ringSize: 4096 }),
    disruption: "exact",
  },
  { name: "maglev", make: () => new MaglevBalancer(Math.random), disruption: "near" },
])("$name", ({ make, disruption }) => {
  it("maps a key to the same endpoint whatever the order of the set", () => {
    const a = make();
    const b = make();
    const ts = keysOf(10);
    a.update(ts);
    b.update([...ts].reverse());
    const keys = requestKeys(2000);
    expect(mapping(a, keys)).toEqual(mapping(b, keys));
  });

  it("spreads keys over endpoints (100k keys)", () => {
    const b = make();
    b.update(keysOf(10));
    const s = shares(mapping(b, requestKeys(100_000)));
    expect(s.size).toBe(10);
    for (const v of s.values()) expect(Math.abs(v - 0.1)).toBeLessThan(0.03);
  });

  it("removing 1 of 10 endpoints remaps about 1/10 of keys, adding one back restores them", () => {
    const b = make();
    const ts = keysOf(10);
    const keys = requestKeys(20_000);
    b.update(ts);
    const before = mapping(b, keys);
    const removed = ts[4]!.key;
    b.update(ts.filter((t) => t.key !== removed));
    const after = mapping(b, keys);
    const moved = keys.filter((_, i) => before[i] !== after[i]).length / keys.length;
    const movedElsewhere =
      keys.filter((_, i) => before[i] !== after[i] && before[i] !== removed).length / keys.length;
    expect(moved).toBeGreaterThan(0.06);
    expect(moved).toBeLessThan(0.16);
    if (disruption === "exact") expect(movedElsewhere).toBe(0);
    else expect(movedElsewhere).toBeLessThan(0.03);
    b.update(ts);
    const restored = mapping(b, keys);
    expect(restored.filter((o, i) => o !== before[i]).length / keys.length).toBeLessThan(
      disruption === "exact" ? 1e-9 : 0.03,
    );
  });

  it("gives weighted endpoints proportional shares", () => {
    const b = make();
    b.update(targets(["a", 1], ["b", 3]));
    const s = shares(mapping(b, requestKeys(50_000)));
    expect(Math.abs(s.get("a")! - 0.25)).toBeLessThan(0.04);
  });

  it("with exclude moves on to another endpoint, the same one each time for a key", () => {
    const b = make();
    b.update(keysOf(5));
    for (const key of requestKeys(200)) {
      const first = b.pick({ hashKey: key })!.key;
      const ex = new Set([first]);
      const second = b.pick({ hashKey: key, exclude: ex })!.key;
      expect(second).not.toBe(first);
      expect(b.pick({ hashKey: key, exclude: ex })!.key).toBe(second);
    }
    expect(b.pick({ hashKey: "x", exclude: new Set(keysOf(5).map((t) => t.key)) })).toBeUndefined();
  });

  it("uses the client address when there is no hash key, and is empty when the set is", () => {
    const b = make();
    b.update(keysOf(7));
    for (const ip of ["10.1.2.3", "192.168.0.9", "fd00::1"])
      expect(b.pick({ clientAddress: ip })!.key).toBe(b.pick({ hashKey: ip })!.key);
    b.update([]);
    expect(b.pick({ hashKey: "x" })).toBeUndefined();
  });
});

describe("ring-hash details", () => {
  it("matches a plain sorted-ring lookup over the virtual nodes of each endpoint", () => {
    const ts = targets("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80");
    const b = new RingHashBalancer(Math.random, { ringSize: 12 });
    b.update(ts);
    expect(b.ringEntries).toBe(12);
    const ring = ts
      .flatMap((t) => [0, 1, 2, 3].map((v) => ({ h: vnode(murmur3(t.key), v), key: t.key })))
      .sort((x, y) => x.h - y.h);
    for (const k of requestKeys(500)) {
      const h = murmur3(k);
      const want = (ring.find((e) => e.h >= h) ?? ring[0]!).key;
      expect(b.pick({ hashKey: k })!.key).toBe(want);
    }
  });

  it("puts virtual nodes in proportion to weight, at least one for the lightest", () => {
    const b = new RingHashBalancer(Math.random, { ringSize: 1024 });
    b.update(targets(["a", 1], ["b", 1000]));
    expect(b.ringEntries).toBe(2 + 2000);
    b.update(targets(["a", 1], ["b", 1e7]));
    expect(b.ringEntries).toBeLessThanOrEqual(8388608);
    expect(b.pick({ hashKey: "k" })).toBeDefined();
  }, 60_000);

  it("picks a random point when there is no key", () => {
    const b = new RingHashBalancer(scripted(0, 0.999999));
    b.update(targets("a", "b", "c"));
    const x = b.pick()!.key;
    const y = b.pick()!.key;
    expect([x, y].every((k) => ["a", "b", "c"].includes(k))).toBe(true);
  });

  it("source-ip hashes the client address only", () => {
    const b = createBalancer("source-ip", { random: scripted() });
    expect(b.strategy).toBe("source-ip");
    b.update(keysOf(8));
    const ips = Array.from({ length: 300 }, (_, i) => `10.9.${i >> 8}.${i & 255}`);
    const first = ips.map((ip) => b.pick({ clientAddress: ip, hashKey: "ignored" })!.key);
    expect(ips.map((ip) => b.pick({ clientAddress: ip })!.key)).toEqual(first);
    expect(new Set(first).size).toBe(8);
  });
});

describe("maglev details", () => {
  it("fills the table exactly as the paper's algorithm", () => {
    for (const m of [7, 13, 251]) {
      const ts = keysOf(5);
      const b = new MaglevBalancer(Math.random, { tableSize: m });
      b.update(ts);
      const table = referenceMaglev(
        ts.map((t) => t.key),
        m,
      );
      const sorted = ts.map((t) => t.key).sort();
      for (const k of requestKeys(300))
        expect(b.pick({ hashKey: k })!.key).toBe(sorted[table[murmur3(k) % m]!]);
    }
  });

  it("requires a prime table size", () => {
    for (const bad of [65536, 1, 0, -7, 1.5, 10_000_019]) {
      let err: unknown;
      try {
        createBalancer("maglev", { maglevTableSize: bad });
      } catch (e) {
        err = e;
      }
      expect(isKproxyError(err, "BALANCER_INVALID_OPTION")).toBe(true);
    }
    expect(() => createBalancer("ring-hash", { ringSize: 0 })).toThrow(/ringSize/);
  });
});
