import { describe, expect, it } from "vitest";
import { compileGoRegexp, makeRegexpArray, matchesAny } from "../src/regex.js";

describe("Go RE2 patterns", () => {
  it("splits on every comma and treats the empty string as an empty list", () => {
    expect(makeRegexpArray("")).toEqual([]);
    expect(makeRegexpArray("^a$,^b$")).toHaveLength(2);
    expect(matchesAny("anything", [])).toBe(false);
  });

  it("matches unanchored and case-sensitively", () => {
    const list = makeRegexpArray("^localhost$,pods");
    expect(matchesAny("localhost", list)).toBe(true);
    expect(matchesAny("LOCALHOST", list)).toBe(false);
    expect(matchesAny("/api/v1/pods/x", list)).toBe(true);
  });

  it("translates RE2-only syntax", () => {
    expect(compileGoRegexp("(?i)^LOCALhost$").test("localhost")).toBe(true);
    expect(compileGoRegexp("(?P<ns>[a-z]+)/x").test("abc/x")).toBe(true);
    expect(compileGoRegexp("^a\\z").test("a")).toBe(true);
    expect(compileGoRegexp("^a\\z").test("a\n")).toBe(false);
    expect(compileGoRegexp("^[[:digit:]]+$").test("123")).toBe(true);
    expect(compileGoRegexp("\\Q.*\\E").test(".*")).toBe(true);
    expect(compileGoRegexp("\\Q.*\\E").test("ab")).toBe(false);
    expect(compileGoRegexp("a{1").test("a{1")).toBe(true);
    expect(compileGoRegexp("^.$").test("\n")).toBe(false);
    expect(compileGoRegexp("(?s)^.$").test("\n")).toBe(true);
    expect(compileGoRegexp("^\\pL+$").test("héllo")).toBe(true);
    expect(compileGoRegexp("\\-\\#").test("-#")).toBe(true);
  });

  it.each([
    ["[a", "missing closing ]: `[a`"],
    ["(a", "missing closing ): `(a`"],
    ["a)", "unexpected ): `a)`"],
    ["*", "missing argument to repetition operator: `*`"],
    ["a**", "invalid nested repetition operator: `**`"],
    ["(?=a)", "invalid or unsupported Perl syntax: `(?=`"],
    ["(?<!a)", "invalid or unsupported Perl syntax: `(?<!`"],
    ["\\1", "invalid escape sequence: `\\1`"],
    ["\\y", "invalid escape sequence: `\\y`"],
  ])("rejects %s as Go does", (pattern, message) => {
    expect(() => compileGoRegexp(pattern)).toThrow(`Error compiling re: error parsing regexp: ${message}`);
    try {
      compileGoRegexp(pattern);
    } catch (err) {
      expect((err as { details: { exitCode: number } }).details.exitCode).toBe(255);
    }
  });
});
