import { describe, expect, it } from "vitest";
import { keysOf, scripted, tally, targets } from "../test/helpers.js";
import { LeastConnectionsBalancer, LeastRequestBalancer, mulberry32, RandomBalancer } from "./index.js";

describe("least-request (power of two choices)", () => {
  it.each([
    // a has 2 in flight, b 1, c 0. Draw 1 = floor(r·3); draw 2 = floor(r·2), skipping draw 1.
    { name: "takes the less loaded of the two draws", rs: [0.1, 0.9], want: "c" },
    { name: "compares in-flight counts", rs: [0.5, 0.1], want: "b" },
    { name: "second draw is distinct from the first", rs: [0.1, 0.1], want: "b" },
  ])("$name", ({ rs, want }) => {
    const b = new LeastRequestBalancer(scripted(...rs));
    b.update(targets("a", "b", "c"));
    b.onStart("a");
    b.onStart("a");
    b.onStart("b");
    expect(b.pick()?.key).toBe(want);
  });

  it("keeps the first draw on ties", () => {
    const b = new LeastRequestBalancer(scripted(0.1, 0.5));
    b.update(targets("a", "b", "c"));
    expect(b.pick()?.key).toBe("a");
  });

  it("weighs load by weight: (in-flight + 1) / weight", () => {
    const b = new LeastRequestBalancer(scripted(0.1, 0.9, 0.1, 0.9));
    b.update(targets(["a", 1], ["b", 3]));
    expect(b.pick()?.key).toBe("b"); // 1/1 vs 1/3
    for (let i = 0; i < 3; i++) b.onStart("b");
    expect(b.pick()?.key).toBe("a"); // 1/1 vs 4/3
  });

  it("avoids a loaded endpoint that random would hit a third of the time", () => {
    const p2c = new LeastRequestBalancer(mulberry32(5));
    const rnd = new RandomBalancer(mulberry32(5));
    for (const b of [p2c, rnd]) {
      b.update(targets("a", "b", "c"));
      for (let i = 0; i < 100; i++) b.onStart("a");
    }
    const run = (b: typeof p2c | typeof rnd) =>
      tally(() => {
        const t = b.pick()!;
        b.onStart(t.key);
        b.onFinish(t.key);
        return t;
      }, 100_000);
    const c = run(p2c);
    expect(c.get("a")).toBeUndefined();
    expect(Math.abs(c.get("b")! - 50_000)).toBeLessThan(1500);
    expect(Math.abs(run(rnd).get("a")! - 33_333)).toBeLessThan(1500);
  });

  it("spreads evenly over idle endpoints and honours exclude", () => {
    const b = new LeastRequestBalancer(mulberry32(6));
    b.update(keysOf(10));
    const ex = new Set(["10.0.0.1:8080"]);
    const c = tally(() => b.pick({ exclude: ex }), 100_000);
    expect(c.has("10.0.0.1:8080")).toBe(false);
    expect(c.size).toBe(9);
    for (const v of c.values()) expect(Math.abs(v - 100_000 / 9)).toBeLessThan(600);
    expect(b.pick({ exclude: new Set(keysOf(10).map((t) => t.key)) })).toBeUndefined();
  });

  it("keeps in-flight counts of an endpoint across updates that drop and re-add it", () => {
    const b = new LeastRequestBalancer(mulberry32(1));
    b.update(targets("a", "b"));
    b.onStart("a");
    b.onStart("a");
    b.update(targets("b"));
    expect(b.inflight("a")).toBe(2);
    b.onFinish("a");
    b.update(targets("a", "b"));
    expect(b.inflight("a")).toBe(1);
    b.onFinish("a");
    b.onFinish("a");
    b.onFinish("zzz");
    expect(b.inflight("a")).toBe(0);
  });
});

describe("least-connections (exact, HAProxy leastconn)", () => {
  const run = (b: LeastConnectionsBalancer<{ key: string }>, script: string): string =>
    script
      .split(" ")
      .map((op) => {
        if (op === "p") return b.pick()?.key ?? "-";
        if (op === "P") {
          const t = b.pick();
          if (t) b.onStart(t.key);
          return t?.key ?? "-";
        }
        if (op.startsWith("+")) b.onStart(op.slice(1));
        else if (op.startsWith("-")) b.onFinish(op.slice(1));
        return "";
      })
      .filter(Boolean)
      .join(" ");

  it.each([
    {
      name: "idle endpoints are used in turn",
      ts: targets("a", "b", "c"),
      script: "p p p p p p",
      want: "a b c a b c",
    },
    {
      name: "picks the least loaded; ties go to the least recently used",
      ts: targets("a", "b", "c"),
      script: "P P P -b P P",
      want: "a b c b a",
    },
    {
      name: "connections held elsewhere steer picks",
      ts: targets("a", "b", "c"),
      script: "+a +a +b p p p",
      want: "c c c",
    },
    {
      name: "weighted: (connections + 1) / weight",
      ts: targets(["a", 2], ["b", 1]),
      script: "P P P P P",
      want: "a b a a b",
    },
  ])("$name", ({ ts, script, want }) => {
    const b = new LeastConnectionsBalancer();
    b.update(ts);
    expect(run(b, script)).toBe(want);
  });

  it("picks the least loaded among endpoints not excluded", () => {
    const b = new LeastConnectionsBalancer();
    b.update(targets("a", "b", "c"));
    b.onStart("b");
    b.onStart("b");
    b.onStart("c");
    expect(b.pick({ exclude: new Set(["a"]) })?.key).toBe("c");
    expect(b.pick({ exclude: new Set(["a", "b", "c"]) })).toBeUndefined();
  });

  it("always picks a minimum under random starts and finishes (heap vs brute force)", () => {
    const r = mulberry32(9);
    const ts = keysOf(37);
    const b = new LeastConnectionsBalancer();
    b.update(ts.map((t, i) => ({ ...t, weight: 1 + (i % 4) })));
    const open: string[] = [];
    for (let step = 0; step < 5000; step++) {
      if (open.length > 0 && r() < 0.45) {
        const [k] = open.splice(Math.floor(r() * open.length), 1);
        b.onFinish(k!);
        continue;
      }
      const t = b.pick()!;
      const load = (k: string, w: number) => (b.inflight(k) + 1) / w;
      const min = Math.min(...ts.map((x, i) => load(x.key, 1 + (i % 4))));
      expect(load(t.key, t.weight!)).toBe(min);
      b.onStart(t.key);
      open.push(t.key);
    }
  });

  it("keeps counts and order for kept keys across updates", () => {
    const b = new LeastConnectionsBalancer();
    b.update(targets("a", "b", "c"));
    b.onStart("a");
    b.onStart("b");
    b.update(targets("c", "b", "a", "d"));
    expect(b.inflight("a")).toBe(1);
    expect(run(b, "p p")).toBe("c d");
  });
});
