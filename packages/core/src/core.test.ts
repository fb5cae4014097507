import { describe, expect, it } from "vitest";
import {
  createLogger,
  errorMessage,
  isKproxyError,
  KproxyError,
  ManualClock,
  redactHeaders,
  redactQuery,
} from "./index.js";

describe("KproxyError", () => {
  it("carries a stable code and its cause", () => {
    const cause = new Error("ENOENT");
    const err = new KproxyError("KUBECONFIG_NOT_FOUND", "no such file", { cause });
    expect(err.code).toBe("KUBECONFIG_NOT_FOUND");
    expect(err.cause).toBe(cause);
    expect(isKproxyError(err, "KUBECONFIG_NOT_FOUND")).toBe(true);
    expect(isKproxyError(err, "OTHER")).toBe(false);
    expect(isKproxyError(cause)).toBe(false);
  });

  it("errorMessage never returns a stack", () => {
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage("plain")).toBe("plain");
    expect(errorMessage({ a: 1 })).toBe('{"a":1}');
  });
});

describe("logger", () => {
  it("redacts secret fields and headers", () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), clock: { now: () => 0 }, format: "json" });
    log.info("request", {
      token: "abc",
      path: "/api",
      headers: { authorization: "Bearer abc", accept: "x" },
    });
    const entry = JSON.parse(lines[0] ?? "{}");
    expect(entry.token).toBe("<redacted>");
    expect(entry.path).toBe("/api");
    expect(entry.headers.authorization).toBe("<redacted>");
    expect(lines[0]).not.toContain("abc");
    expect(redactHeaders({ Authorization: "Bearer x", Accept: "y" })).toEqual({
      Authorization: "<redacted>",
      Accept: "y",
    });
  });

  it("filters by level and renders text", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "warn", write: (l) => lines.push(l), clock: { now: () => 0 } });
    log.info("hidden");
    log.child({ app: "x" }).warn("shown", { n: 1, s: "a b" });
    expect(lines).toEqual(['1970-01-01T00:00:00.000Z WARN shown app=x n=1 s="a b"']);
  });
});

describe("ManualClock", () => {
  it("fires timers in time order when advanced", () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b"), 20);
    const t = clock.setTimeout(() => fired.push("never"), 15);
    clock.setTimeout(() => fired.push("a"), 10);
    clock.clearTimeout(t);
    clock.advance(15);
    expect(fired).toEqual(["a"]);
    expect(clock.now()).toBe(1015);
    clock.advance(5);
    expect(fired).toEqual(["a", "b"]);
    expect(clock.pending).toBe(0);
  });
});

describe("redactQuery", () => {
  it("hides the values of secret query parameters, and only those", () => {
    expect(redactQuery("/api/v1/pods?watch=1&token=abc&Access_Token=x&%74oken=y&sig")).toBe(
      "/api/v1/pods?watch=1&token=<redacted>&Access_Token=<redacted>&%74oken=<redacted>&sig",
    );
    expect(redactQuery("/plain/path")).toBe("/plain/path");
    expect(redactQuery("/x?%zz=1&password=p")).toBe("/x?%zz=1&password=<redacted>");
  });
});
