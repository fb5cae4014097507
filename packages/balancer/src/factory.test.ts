import { isKproxyError, KproxyError, ManualClock } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { keysOf, targets } from "../test/helpers.js";
import {
  type Balancer,
  balanceFlag,
  createBalancer,
  HealthState,
  isStrategyName,
  mulberry32,
  parseStrategyName,
  STRATEGY_NAMES,
  type Target,
} from "./index.js";

const make = (name: string, seed = 1) =>
  createBalancer<Target>(name, { random: mulberry32(seed), ringSize: 1024, maglevTableSize: 1021 });

/** Picks with a fresh hash key and client address each time, so hash strategies spread too. */
function pickWith(b: Balancer<Target>, i: number, exclude?: ReadonlySet<string>): Target | undefined {
  const t = b.pick({
    hashKey: `req-${i}`,
    clientAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    exclude,
  });
  if (t) b.onStart(t.key);
  if (t) b.onFinish(t.key);
  return t;
}

describe("strategy names", () => {
  it("creates every named strategy", () => {
    expect([...STRATEGY_NAMES]).toEqual([
      "random",
      "round-robin",
      "least-request",
      "least-connections",
      "weighted-round-robin",
      "ring-hash",
      "maglev",
      "source-ip",
    ]);
    for (const name of STRATEGY_NAMES) {
      expect(isStrategyName(name)).toBe(true);
      expect(createBalancer(name).strategy).toBe(name);
    }
  });

  it("rejects an unknown name with BALANCER_UNKNOWN_STRATEGY listing the valid ones", () => {
    let err: unknown;
    try {
      createBalancer("roundrobin");
    } catch (e) {
      err = e;
    }
    expect(isKproxyError(err, "BALANCER_UNKNOWN_STRATEGY")).toBe(true);
    expect((err as KproxyError).message).toBe(
      'unknown balancing strategy "roundrobin": valid strategies are random, round-robin, least-request, ' +
        "least-connections, weighted-round-robin, ring-hash, maglev, source-ip",
    );
    expect(() => parseStrategyName("")).toThrow(KproxyError);
    expect(isStrategyName("RANDOM")).toBe(false);
  });

  it("describes a --balance flag with the app's default", () => {
    expect(balanceFlag("random")).toMatchObject({ name: "balance", type: "string", default: "random" });
    expect(balanceFlag("least-connections").help).toContain("maglev");
    expect(() => createBalancer("random", { random: 3 as unknown as () => number })).toThrow(/random/);
    expect(() => createBalancer("least-request", { choiceCount: 0 })).toThrow(/choiceCount/);
  });
});

describe.each(STRATEGY_NAMES.map((name) => ({ name })))("$name", ({ name }) => {
  it("never picks an excluded endpoint, and nothing when all are excluded", () => {
    const b = make(name);
    const ts = keysOf(6);
    b.update(ts);
    const ex = new Set([ts[0]!.key, ts[3]!.key]);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const t = pickWith(b, i, ex)!;
      expect(ex.has(t.key)).toBe(false);
      seen.add(t.key);
    }
    expect(seen.size).toBe(4);
    expect(pickWith(b, 1, new Set(ts.map((t) => t.key)))).toBeUndefined();
  });

  it("picks only healthy, non-draining endpoints; in panic, all non-draining", () => {
    const h = new HealthState({ clock: new ManualClock(), fall: 1 });
    const b = createBalancer<Target>(name, { random: mulberry32(3), health: h });
    b.update(targets("a", "b", "c", "d"));
    h.reportCheck("a", false);
    h.setDraining("b", true);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(pickWith(b, i)!.key);
    expect([...seen].sort()).toEqual(["c", "d"]);
    h.reportCheck("c", false);
    h.reportCheck("d", false);
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(pickWith(b, i)!.key);
    expect([...seen].sort()).toEqual(["a", "c", "d"]);
  });

  it("never picks weight 0, and nothing from an empty set", () => {
    const b = make(name);
    expect(b.pick()).toBeUndefined();
    b.update(targets(["a", 0], "b", "c"));
    expect(b.size).toBe(2);
    for (let i = 0; i < 1000; i++) expect(pickWith(b, i)!.key).not.toBe("a");
    b.update([]);
    expect(pickWith(b, 0)).toBeUndefined();
  });
});

describe.each(
  (
    [
      "random",
      "least-request",
      "least-connections",
      "weighted-round-robin",
      "ring-hash",
      "maglev",
      "source-ip",
    ] as const
  ).map((name) => ({ name })),
)("$name honours weights", ({ name }) => {
  it("weight 1 vs 3 gets about a quarter (connections held open)", () => {
    const b = make(name, 4);
    b.update(targets(["a", 1], ["b", 3]));
    let a = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const t = b.pick({ hashKey: `k${i}`, clientAddress: `10.0.${i >> 8}.${i & 255}` })!;
      b.onStart(t.key); // held: least-* must balance by weight
      if (t.key === "a") a++;
    }
    expect(Math.abs(a / n - 0.25)).toBeLessThan(0.04);
  });
});
