import { isKproxyError } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { keysOf, scripted, tally, targets } from "../test/helpers.js";
import {
  createBalancer,
  mulberry32,
  RandomBalancer,
  RoundRobinBalancer,
  type Target,
  WeightedRoundRobinBalancer,
} from "./index.js";

const seq = (
  b: { pick(o?: { exclude?: ReadonlySet<string> }): Target | undefined },
  n: number,
  exclude?: string[],
) =>
  Array.from(
    { length: n },
    () => b.pick(exclude ? { exclude: new Set(exclude) } : undefined)?.key ?? "-",
  ).join(" ");

/** nginx's smooth weighted round robin, written plainly, as the reference. */
function nginxSequence(weights: number[], n: number): number[] {
  const current = weights.map(() => 0);
  const total = weights.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      current[i]! += weights[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    out.push(best);
  }
  return out;
}

describe("round-robin", () => {
  it.each([
    {
      name: "starts at a random position, then rotates",
      random: 0.5,
      exclude: undefined,
      want: "b c a b c a",
    },
    { name: "first position 0", random: 0, exclude: undefined, want: "a b c a b c" },
    { name: "skips excluded endpoints", random: 0, exclude: ["b"], want: "a c a c a c" },
    { name: "nothing when all excluded", random: 0, exclude: ["a", "b", "c"], want: "- - - - - -" },
  ])("$name", ({ random, exclude, want }) => {
    const b = new RoundRobinBalancer(scripted(random));
    b.update(targets("a", "b", "c"));
    expect(seq(b, 6, exclude)).toBe(want);
  });

  it("continues after the last endpoint picked across updates, and ignores weights except 0", () => {
    const b = new RoundRobinBalancer(scripted(0));
    b.update(targets("a", "b", "c"));
    expect(seq(b, 1)).toBe("a");
    b.update(targets("x", "a", ["b", 5], ["c", 0]));
    expect(b.size).toBe(3);
    expect(seq(b, 4)).toBe("b x a b");
    b.update([]);
    expect(b.pick()).toBeUndefined();
  });
});

describe("random", () => {
  it.each([
    {
      name: "uniform",
      ts: targets("a", "b", "c"),
      rs: [0.1, 0.5, 0.9, 0.34],
      exclude: undefined,
      want: "a b c b",
    },
    {
      name: "weighted 1:3",
      ts: targets(["a", 1], ["b", 3]),
      rs: [0.2, 0.3, 0.24, 0.99],
      exclude: undefined,
      want: "a b a b",
    },
    {
      name: "rejects an excluded draw",
      ts: targets("a", "b", "c"),
      rs: [0.1, 0.5],
      exclude: ["a"],
      want: "b",
    },
    {
      name: "after 4 rejected draws, draws exactly among the rest",
      ts: targets("a", "b", "c"),
      rs: [0.1, 0.1, 0.1, 0.1, 0.9],
      exclude: ["a"],
      want: "c",
    },
    {
      name: "weight 0 is never picked",
      ts: targets(["a", 0], "b"),
      rs: [0.0, 0.99],
      exclude: undefined,
      want: "b b",
    },
  ])("$name", ({ ts, rs, exclude, want }) => {
    const b = new RandomBalancer(scripted(...rs));
    b.update(ts);
    expect(seq(b, want.split(" ").length, exclude)).toBe(want);
  });

  it("follows the weights over 100k picks, with and without exclusions", () => {
    const b = new RandomBalancer(mulberry32(1));
    b.update(targets(["a", 1], ["b", 2], ["c", 7]));
    const c = tally(() => b.pick(), 100_000);
    expect(c.get("a")! / 100_000).toBeCloseTo(0.1, 1);
    expect(Math.abs(c.get("b")! / 100_000 - 0.2)).toBeLessThan(0.01);
    expect(Math.abs(c.get("c")! / 100_000 - 0.7)).toBeLessThan(0.01);
    const ex = new Set(["c"]);
    const d = tally(() => b.pick({ exclude: ex }), 100_000);
    expect(d.get("c")).toBeUndefined();
    expect(Math.abs(d.get("a")! / 100_000 - 1 / 3)).toBeLessThan(0.01);
  });

  it("uniform over 100 endpoints", () => {
    const b = new RandomBalancer(mulberry32(2));
    b.update(keysOf(100));
    const c = tally(() => b.pick(), 100_000);
    expect(c.size).toBe(100);
    for (const v of c.values()) expect(Math.abs(v - 1000)).toBeLessThan(150);
  });

  it("rejects bad targets with BALANCER_INVALID_TARGET", () => {
    const b = new RandomBalancer(Math.random);
    for (const bad of [
      [{ key: "a" }, { key: "a" }],
      [{ key: "" }],
      [{ key: "a", weight: -1 }],
      [{ key: "a", weight: Number.NaN }],
      [{ key: "a", weight: Number.POSITIVE_INFINITY }],
      [null],
    ] as unknown as Target[][]) {
      let err: unknown;
      try {
        b.update(bad);
      } catch (e) {
        err = e;
      }
      expect(isKproxyError(err, "BALANCER_INVALID_TARGET")).toBe(true);
    }
  });
});

describe("weighted-round-robin (nginx smooth)", () => {
  it.each([
    { weights: [5, 1, 1], want: "a a b a c a a a a b a c a a" },
    { weights: [4, 2, 1], want: "a b a c a b a" },
    { weights: [2, 1], want: "a b a a b a" },
    { weights: [1, 1, 1], want: "a b c a b c" },
    { weights: [0.5, 0.25], want: "a b a a b a" },
    { weights: [10, 20, 0], want: "b a b b a b" },
  ])("weights $weights give $want", ({ weights, want }) => {
    const b = new WeightedRoundRobinBalancer();
    b.update(weights.map((w, i) => ({ key: "abc"[i]!, weight: w })));
    expect(seq(b, want.split(" ").length)).toBe(want);
  });

  it("matches nginx's loop for random integer weights", () => {
    const r = mulberry32(3);
    for (let round = 0; round < 20; round++) {
      const weights = Array.from({ length: 1 + Math.floor(r() * 8) }, () => 1 + Math.floor(r() * 20));
      const b = new WeightedRoundRobinBalancer();
      b.update(weights.map((w, i) => ({ key: `e${i}`, weight: w })));
      const g = weights.reduce((a, c) => {
        let [x, y] = [a, c];
        while (y) [x, y] = [y, x % y];
        return x;
      });
      const want = nginxSequence(
        weights.map((w) => w / g),
        200,
      ).map((i) => `e${i}`);
      expect(Array.from({ length: 200 }, () => b.pick()!.key)).toEqual(want);
    }
  });

  it("runs nginx's loop live when the period is too large to precompute", () => {
    const weights = [3_000_000, 1_000_001, 7];
    const b = new WeightedRoundRobinBalancer();
    b.update(weights.map((w, i) => ({ key: `e${i}`, weight: w })));
    const want = nginxSequence(weights, 2000).map((i) => `e${i}`);
    expect(Array.from({ length: 2000 }, () => b.pick()!.key)).toEqual(want);
  });

  it("with exclusions takes the next allowed entry of the schedule", () => {
    const b = new WeightedRoundRobinBalancer();
    b.update(targets(["a", 5], ["b", 1], ["c", 1]));
    expect(seq(b, 3, ["a"])).toBe("b c b");
    expect(seq(b, 2)).toBe("a c");
    expect(seq(b, 2, ["a", "b", "c"])).toBe("- -");
    const heavy = new WeightedRoundRobinBalancer();
    heavy.update(targets(["a", 1000], ["b", 1]));
    expect(seq(heavy, 2, ["a"])).toBe("b b");
  });

  it("gives shares proportional to weights", () => {
    const b = createBalancer("weighted-round-robin");
    b.update(targets(["a", 3], ["b", 2], ["c", 5]));
    const c = tally(() => b.pick(), 10_000);
    expect([c.get("a"), c.get("b"), c.get("c")]).toEqual([3000, 2000, 5000]);
  });
});
