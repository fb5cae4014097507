import { isKproxyError, ManualClock } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { scripted, targets } from "../test/helpers.js";
import { createBalancer, type HealthEvent, HealthState, RoundRobinBalancer, withHealth } from "./index.js";

function recorder(h: HealthState): string[] {
  const out: string[] = [];
  h.onEvent((e: HealthEvent) => {
    if (!("key" in e)) out.push(`${e.type}@${e.atMs} ${e.eligible}/${e.total}`);
    else if (e.type === "ejected") out.push(`ejected ${e.key}@${e.atMs} until ${e.untilMs} #${e.ejections}`);
    else out.push(`${e.type} ${e.key}@${e.atMs}`);
  });
  return out;
}

describe("active checks: rise/fall (HAProxy)", () => {
  it.each([
    { name: "fall=3 consecutive failures take it down", checks: "F F F", up: false, events: ["down a@0"] },
    { name: "a success resets the failure streak", checks: "F F S F F", up: true, events: [] },
    {
      name: "rise=2 consecutive successes bring it back",
      checks: "F F F S S",
      up: true,
      events: ["down a@0", "up a@0"],
    },
    { name: "a failure resets the success streak", checks: "F F F S F S", up: false, events: ["down a@0"] },
  ])("$name", ({ checks, up, events }) => {
    const h = new HealthState({ clock: new ManualClock(), rise: 2, fall: 3 });
    const ev = recorder(h);
    h.setKeys(["a"]);
    for (const c of checks.split(" ")) h.reportCheck("a", c === "S");
    expect(h.status("a")?.up).toBe(up);
    expect(ev).toEqual(events);
  });

  it("new endpoints can start down until they pass `rise` checks", () => {
    const h = new HealthState({ clock: new ManualClock(), rise: 1, initiallyHealthy: false });
    h.setKeys(["a"]);
    expect(h.isEligible("a")).toBe(false);
    h.reportCheck("a", true);
    expect(h.isEligible("a")).toBe(true);
  });

  it("ignores reports for unknown keys and forgets removed keys", () => {
    const h = new HealthState({ clock: new ManualClock(), fall: 1 });
    h.setKeys(["a"]);
    h.reportCheck("zz", false);
    h.reportFailure("zz");
    expect(h.status("zz")).toBeUndefined();
    h.reportCheck("a", false);
    h.setKeys(["b"]);
    h.setKeys(["a", "b"]);
    expect(h.status("a")?.up).toBe(true);
  });

  it("rejects bad options with BALANCER_INVALID_OPTION", () => {
    for (const bad of [
      { rise: 0 },
      { fall: 1.5 },
      { outlier: { consecutiveFailures: 0 } },
      { outlier: { baseEjectionMs: -1 } },
      { outlier: { baseEjectionMs: 10, maxEjectionMs: 5 } },
      { outlier: { maxEjectionPercent: 101 } },
      { panicThresholdPercent: Number.NaN },
    ]) {
      let err: unknown;
      try {
        new HealthState(bad);
      } catch (e) {
        err = e;
      }
      expect(isKproxyError(err, "BALANCER_INVALID_OPTION")).toBe(true);
    }
  });
});

describe("passive outlier ejection", () => {
  const make = (clock: ManualClock, keys = ["a", "b", "c"]) => {
    const h = new HealthState({
      clock,
      outlier: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500, maxEjectionPercent: 50 },
    });
    h.setKeys(keys);
    return h;
  };
  const fail = (h: HealthState, key: string, n: number) => {
    for (let i = 0; i < n; i++) h.reportFailure(key);
  };

  it("ejects after N consecutive failures for base × ejections, capped, and lets it back when time passes", () => {
    const clock = new ManualClock(0);
    const h = make(clock);
    const ev = recorder(h);
    fail(h, "a", 2);
    h.reportSuccess("a");
    fail(h, "a", 2);
    expect(h.status("a")?.ejected).toBe(false);
    h.reportFailure("a");
    expect(h.status("a")).toMatchObject({
      ejected: true,
      ejectedUntilMs: 1000,
      ejections: 1,
      eligible: false,
    });
    clock.advance(999);
    expect(h.status("a")?.ejected).toBe(true);
    clock.advance(1);
    expect(h.status("a")?.ejected).toBe(false);
    fail(h, "a", 3); // at 1000: second ejection, 2 × 1000
    clock.advance(2000);
    h.sync();
    fail(h, "a", 3); // at 3000: third, 3 × 1000 capped at 2500
    expect(ev).toEqual([
      "ejected a@0 until 1000 #1",
      "unejected a@1000",
      "ejected a@1000 until 3000 #2",
      "unejected a@3000",
      "ejected a@3000 until 5500 #3",
    ]);
  });

  it("the ejection multiplier decays by one per base ejection time spent healthy", () => {
    const clock = new ManualClock(0);
    const h = make(clock);
    fail(h, "a", 3);
    clock.advance(1000);
    h.sync();
    fail(h, "a", 3); // #2 at 1000 until 3000
    clock.advance(2000);
    h.sync(); // unejected at 3000
    clock.advance(5000); // 5 base times healthy: multiplier 2 → 0
    fail(h, "a", 3);
    expect(h.status("a")).toMatchObject({ ejections: 1, ejectedUntilMs: 9000 });
  });

  it("respects maxEjectionPercent, but always allows one ejection", () => {
    const clock = new ManualClock(0);
    const h = make(clock, ["a", "b", "c", "d"]); // 50% of 4 = 2
    const ev = recorder(h);
    fail(h, "a", 3);
    fail(h, "b", 3);
    fail(h, "c", 3);
    expect(ev.map((e) => e.split("@")[0])).toEqual(["ejected a", "ejected b", "ejection-skipped c"]);
    const one = new HealthState({ clock, outlier: { consecutiveFailures: 1, maxEjectionPercent: 0 } });
    one.setKeys(["only"]);
    one.reportFailure("only");
    expect(one.status("only")?.ejected).toBe(true);
  });

  it("can be disabled", () => {
    const h = new HealthState({ clock: new ManualClock(), outlier: false });
    h.setKeys(["a"]);
    for (let i = 0; i < 100; i++) h.reportFailure("a");
    expect(h.isEligible("a")).toBe(true);
  });
});

describe("panic mode and draining", () => {
  const ts = targets("a", "b", "c");

  it.each([
    { name: "some healthy: only those", down: ["a"], opts: {}, want: ["b", "c"], panic: false },
    {
      name: "none healthy: all (panic)",
      down: ["a", "b", "c"],
      opts: {},
      want: ["a", "b", "c"],
      panic: true,
    },
    { name: "panic disabled: none", down: ["a", "b", "c"], opts: { panic: false }, want: [], panic: false },
    {
      name: "threshold 50%: 1 of 3 healthy panics",
      down: ["a", "b"],
      opts: { panicThresholdPercent: 50 },
      want: ["a", "b", "c"],
      panic: true,
    },
    {
      name: "threshold 50%: 2 of 3 healthy does not",
      down: ["a"],
      opts: { panicThresholdPercent: 50 },
      want: ["b", "c"],
      panic: false,
    },
  ])("$name", ({ down, opts, want, panic }) => {
    const h = new HealthState({ clock: new ManualClock(), fall: 1, ...opts });
    h.setKeys(ts.map((t) => t.key));
    for (const k of down) h.reportCheck(k, false);
    const r = h.eligible(ts);
    expect(r.targets.map((t) => t.key)).toEqual(want);
    expect(r.panic).toBe(panic);
  });

  it("draining endpoints get no picks, even in panic, and state changes are reported", () => {
    const clock = new ManualClock(5);
    const h = new HealthState({ clock, fall: 1 });
    const ev = recorder(h);
    h.setKeys(["a", "b", "c"]);
    h.setDraining("c", true);
    h.reportCheck("a", false);
    h.reportCheck("b", false);
    expect(h.eligible(ts).targets.map((t) => t.key)).toEqual(["a", "b"]);
    h.reportCheck("b", true);
    h.reportCheck("b", true);
    expect(h.eligible(ts).targets.map((t) => t.key)).toEqual(["b"]);
    h.setDraining("c", false);
    expect(ev).toEqual([
      "drain-start c@5",
      "down a@5",
      "down b@5",
      "panic-start@5 0/2",
      "up b@5",
      "panic-end@5 1/2",
      "drain-end c@5",
    ]);
  });
});

describe("withHealth", () => {
  it("re-feeds the balancer when health changes, including ejections ending on their own", () => {
    const clock = new ManualClock(0);
    const h = new HealthState({
      clock,
      fall: 1,
      rise: 1,
      outlier: { consecutiveFailures: 1, baseEjectionMs: 100 },
    });
    const b = withHealth(new RoundRobinBalancer(scripted(0)), h);
    b.update(targets("a", "b", "c"));
    const picks = (n: number) => Array.from({ length: n }, () => b.pick()?.key ?? "-").join(" ");
    expect(picks(3)).toBe("a b c");
    h.reportFailure("b");
    expect(b.size).toBe(2);
    expect(picks(4)).toBe("a c a c");
    clock.advance(100);
    expect(picks(3)).toBe("a b c");
    for (const k of ["a", "b", "c"]) h.reportCheck(k, false);
    expect(picks(3)).toBe("a b c"); // panic: all
    h.setDraining("a", true);
    expect(picks(2)).toBe("b c");
    h.reportCheck("c", true);
    expect(picks(2)).toBe("c c");
  });

  it("is what createBalancer({health}) builds, for every strategy", () => {
    const h = new HealthState({ clock: new ManualClock(), fall: 1 });
    const b = createBalancer("least-connections", { health: h });
    b.update(targets("a", "b"));
    h.reportCheck("a", false);
    for (let i = 0; i < 10; i++) expect(b.pick()?.key).toBe("b");
  });
});
