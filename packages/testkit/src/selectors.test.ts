import { describe, expect, it } from "vitest";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from "./selectors.js";

describe("label selectors", () => {
  const labels = { app: "web", tier: "front", "example.com/role": "x" };
  it.each([
    ["app=web", true],
    ["app==web", true],
    ["app!=web", false],
    ["app in (web, api)", true],
    ["app notin (web)", false],
    ["tier,app=web", true],
    ["!missing", true],
    ["!app", false],
    ["example.com/role=x", true],
    ["app=web,tier=back", false],
    ["", true],
  ])("%s → %s", (sel, want) => {
    expect(matchesLabels(parseLabelSelector(sel), labels)).toBe(want);
  });
  it.each(["a in (b", "=x", "a=b c", "bad key!=x", "a,,b"])("rejects %s with a 400", (sel) => {
    expect(() => parseLabelSelector(sel)).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe("field selectors", () => {
  const pod = {
    metadata: { name: "p", namespace: "ns" },
    spec: { nodeName: "n1" },
    status: { phase: "Running" },
  };
  it("matches = and != on supported fields", () => {
    const allowed = ["spec.nodeName", "status.phase"];
    expect(matchesFields(parseFieldSelector("metadata.name=p,spec.nodeName=n1", allowed, "Pod"), pod)).toBe(
      true,
    );
    expect(matchesFields(parseFieldSelector("status.phase!=Running", allowed, "Pod"), pod)).toBe(false);
    expect(matchesFields(parseFieldSelector("spec.nodeName=", allowed, "Pod"), pod)).toBe(false);
    expect(() => parseFieldSelector("spec.other=x", allowed, "Pod")).toThrow(/field label not supported/);
  });
});
