import { isKproxyError, ManualClock } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { scripted, targets } from "../test/helpers.js";
import {
  createBalancer,
  DEFAULT_AFFINITY_TIMEOUT_MS,
  HealthState,
  RoundRobinBalancer,
  withClientIpAffinity,
} from "./index.js";

function setup(timeoutMs?: number, maxClients?: number) {
  const clock = new ManualClock(0);
  const b = withClientIpAffinity(new RoundRobinBalancer(scripted(0)), { clock, timeoutMs, maxClients });
  b.update(targets("a", "b", "c"));
  const pick = (client?: string, exclude?: string[]) =>
    b.pick({ clientAddress: client, exclude: exclude && new Set(exclude) })?.key;
  return { clock, b, pick };
}

describe("client-IP affinity (kube-proxy sessionAffinity: ClientIP)", () => {
  it("keeps each client on its endpoint; new clients get the inner pick", () => {
    const { pick } = setup(1000);
    expect([
      pick("1.1.1.1"),
      pick("2.2.2.2"),
      pick("1.1.1.1"),
      pick("3.3.3.3"),
      pick("2.2.2.2"),
      pick(),
    ]).toEqual(["a", "b", "a", "c", "b", "a"]);
  });

  it("expires timeoutMs after the last use (sliding), not after the first", () => {
    const { clock, pick } = setup(1000);
    expect(pick("1.1.1.1")).toBe("a");
    clock.advance(999);
    expect(pick("1.1.1.1")).toBe("a"); // refreshed at 999
    clock.advance(999);
    expect(pick("1.1.1.1")).toBe("a"); // refreshed at 1998
    clock.advance(1000);
    expect(pick("1.1.1.1")).toBe("b"); // 1000 ms idle: expired, round robin moves on
  });

  it("defaults to 10800 s, and 0 means the default as in kube-proxy", () => {
    for (const t of [undefined, 0]) {
      const { clock, pick } = setup(t);
      expect(pick("9.9.9.9")).toBe("a");
      clock.advance(DEFAULT_AFFINITY_TIMEOUT_MS - 1);
      expect(pick("9.9.9.9")).toBe("a");
      clock.advance(DEFAULT_AFFINITY_TIMEOUT_MS);
      expect(pick("9.9.9.9")).toBe("b");
    }
    expect(DEFAULT_AFFINITY_TIMEOUT_MS).toBe(10_800_000);
  });

  it("re-picks when the endpoint leaves the set, and sticks to the new one", () => {
    const { b, pick } = setup(1000);
    expect(pick("1.1.1.1")).toBe("a");
    b.update(targets("b", "c"));
    expect(pick("1.1.1.1")).toBe("b");
    b.update(targets("a", "b", "c"));
    expect(pick("1.1.1.1")).toBe("b");
  });

  it("a retry excluding the sticky endpoint moves the client (as after a failed dial)", () => {
    const { pick } = setup(1000);
    expect(pick("1.1.1.1")).toBe("a");
    expect(pick("1.1.1.1", ["a"])).toBe("b");
    expect(pick("1.1.1.1")).toBe("b");
    expect(pick("1.1.1.1", ["a", "b", "c"])).toBeUndefined();
  });

  it("forgets the least recently seen client beyond maxClients", () => {
    const { pick, b } = setup(1000, 2);
    expect([pick("1"), pick("2"), pick("1"), pick("3")]).toEqual(["a", "b", "a", "c"]);
    expect((b as unknown as { clientCount: number }).clientCount).toBe(2);
    expect(pick("1")).toBe("a"); // kept (recently used)
    expect(pick("2")).toBe("a"); // forgotten: fresh round-robin pick
  });

  it("with health, only sticks to eligible endpoints", () => {
    const clock = new ManualClock(0);
    const health = new HealthState({ clock, fall: 1, rise: 1 });
    const b = createBalancer("round-robin", {
      random: scripted(0),
      clock,
      affinity: { timeoutMs: 60_000 },
      health,
    });
    b.update(targets("a", "b", "c"));
    expect(b.pick({ clientAddress: "1.1.1.1" })?.key).toBe("a");
    health.reportCheck("a", false);
    expect(b.pick({ clientAddress: "1.1.1.1" })?.key).toBe("b");
    health.reportCheck("a", true);
    expect(b.pick({ clientAddress: "1.1.1.1" })?.key).toBe("b");
  });

  it("rejects bad options", () => {
    for (const opts of [{ timeoutMs: -1 }, { timeoutMs: Number.NaN }, { maxClients: 0 }]) {
      let err: unknown;
      try {
        withClientIpAffinity(new RoundRobinBalancer(Math.random), { clock: new ManualClock(), ...opts });
      } catch (e) {
        err = e;
      }
      expect(isKproxyError(err, "BALANCER_INVALID_OPTION")).toBe(true);
    }
  });
});
