import type { FlagSpec } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { formatDuration, formatFlagHelp, parseDuration, parseFlags } from "./index.js";

const specs: FlagSpec[] = [
  { name: "port", short: "p", type: "int", default: 8001, help: "port" },
  { name: "address", type: "string", default: "127.0.0.1", help: "addr" },
  { name: "disable-filter", type: "bool", default: false, help: "df" },
  { name: "verbose", short: "v", type: "int", default: 0, help: "level" },
  { name: "x", short: "x", type: "bool", default: false, help: "x" },
  { name: "keepalive", type: "duration", default: 0, help: "ka" },
  { name: "as-group", type: "stringArray", default: [], help: "groups" },
  { name: "names", type: "stringSlice", default: ["a"], help: "names" },
];

describe("parseFlags (pflag rules)", () => {
  it("accepts every spelling kubectl accepts", () => {
    for (const argv of [["--port=9"], ["--port", "9"], ["-p", "9"], ["-p=9"], ["-p9"]]) {
      const r = parseFlags(specs, argv);
      expect(r.values.port).toBe(9);
      expect(r.changed.has("port")).toBe(true);
    }
  });

  it("keeps defaults and tracks what changed", () => {
    const r = parseFlags(specs, []);
    expect(r.values).toMatchObject({
      port: 8001,
      address: "127.0.0.1",
      "disable-filter": false,
      names: ["a"],
    });
    expect(r.changed.size).toBe(0);
    expect(r.help).toBe(false);
  });

  it("parses bools, grouped shorthands, durations, arrays and slices", () => {
    const r = parseFlags(specs, [
      "--disable-filter",
      "-xv3",
      "--keepalive=1m30s",
      "--as-group",
      "a,b",
      "--as-group=c",
      "--names=x,y",
      "pos",
      "--",
      "--port=1",
    ]);
    expect(r.values["disable-filter"]).toBe(true);
    expect(r.values.x).toBe(true);
    expect(r.values.verbose).toBe(3);
    expect(r.values.keepalive).toBe(90_000);
    expect(r.values["as-group"]).toEqual(["a,b", "c"]);
    expect(r.values.names).toEqual(["x", "y"]);
    expect(r.args).toEqual(["pos", "--port=1"]);
    expect(parseFlags(specs, ["--disable-filter=false"]).values["disable-filter"]).toBe(false);
    expect(parseFlags(specs, ["--address="]).values.address).toBe("");
  });

  it("reports errors with pflag's messages", () => {
    const msg = (argv: string[]) => {
      try {
        parseFlags(specs, argv);
      } catch (err) {
        expect((err as { code: string }).code).toBe("FLAG_INVALID");
        return (err as Error).message;
      }
      return "no error";
    };
    expect(msg(["--nope"])).toBe("unknown flag: --nope");
    expect(msg(["-q"])).toBe("unknown shorthand flag: 'q' in -q");
    expect(msg(["--port"])).toBe("flag needs an argument: --port");
    expect(msg(["-p"])).toBe("flag needs an argument: 'p' in -p");
    expect(msg(["--port=abc"])).toBe(
      'invalid argument "abc" for "-p, --port" flag: strconv.ParseInt: parsing "abc": invalid syntax',
    );
    expect(msg(["--disable-filter=maybe"])).toContain('invalid argument "maybe" for "--disable-filter" flag');
    expect(msg(["--keepalive=5"])).toContain('time: missing unit in duration "5"');
    expect(msg(["---x"])).toBe("bad flag syntax: ---x");
  });

  it("always knows -h/--help", () => {
    expect(parseFlags(specs, ["-h"]).help).toBe(true);
    expect(parseFlags(specs, ["--help"]).help).toBe(true);
  });

  it("formats help like kubectl", () => {
    const text = formatFlagHelp(specs);
    expect(text).toContain("    -p, --port=8001:\n\tport");
    expect(text).toContain("    --address='127.0.0.1':");
    expect(text).toContain("    --keepalive=0s:");
  });
});

describe("Go durations", () => {
  it.each([
    ["0", 0],
    ["300ms", 300],
    ["1.5s", 1500],
    ["2h45m", 9_900_000],
    ["-1s", -1000],
    ["1us", 0.001],
  ])("%s", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it("rejects bad input", () => {
    expect(() => parseDuration("")).toThrow('time: invalid duration ""');
    expect(() => parseDuration("1x")).toThrow('time: invalid duration "1x"');
    expect(() => parseDuration("10")).toThrow("missing unit");
  });

  it("formats as Go", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(90_000)).toBe("1m30s");
    expect(formatDuration(500)).toBe("500ms");
    expect(formatDuration(3_600_000)).toBe("1h0m0s");
  });
});
