import { type FlagSpec, type FlagValue, type FlagValues, KproxyError } from "@kproxy/core";
import { formatDuration, parseDuration } from "./duration.js";

const HELP: FlagSpec = {
  name: "help",
  short: "h",
  type: "bool",
  default: false,
  help: "help for this command",
};

function describe(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
}

function flagError(message: string): KproxyError {
  return new KproxyError("FLAG_INVALID", message, { details: { exitCode: 1 } });
}

function parseBool(text: string): boolean | undefined {
  // strconv.ParseBool
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  return undefined;
}

function convert(spec: FlagSpec, raw: string, previous: FlagValue | undefined, changed: boolean): FlagValue {
  const bad = (why: string) =>
    flagError(`invalid argument ${JSON.stringify(raw)} for "${describe(spec)}" flag: ${why}`);
  switch (spec.type) {
    case "string":
      return raw;
    case "bool": {
      const b = parseBool(raw);
      if (b === undefined) throw bad(`strconv.ParseBool: parsing ${JSON.stringify(raw)}: invalid syntax`);
      return b;
    }
    case "int": {
      const t = raw.replaceAll("_", "");
      const n = /^[+-]?0x[0-9a-f]+$/i.test(t)
        ? Number.parseInt(t, 16)
        : /^[+-]?\d+$/.test(t)
          ? Number(t)
          : Number.NaN;
      if (!Number.isSafeInteger(n))
        throw bad(`strconv.ParseInt: parsing ${JSON.stringify(raw)}: invalid syntax`);
      return n;
    }
    case "float": {
      const n = raw.trim() === "" ? Number.NaN : Number(raw);
      if (Number.isNaN(n)) throw bad(`strconv.ParseFloat: parsing ${JSON.stringify(raw)}: invalid syntax`);
      return n;
    }
    case "duration":
      try {
        return parseDuration(raw);
      } catch (err) {
        throw bad((err as Error).message);
      }
    case "stringArray": {
      const before = changed && Array.isArray(previous) ? previous : [];
      return [...before, raw];
    }
    case "stringSlice": {
      const before = changed && Array.isArray(previous) ? previous : [];
      return [...before, ...(raw === "" ? [] : raw.split(",").map((s) => s.trim()))];
    }
  }
}

/**
 * Parses argv with pflag's (kubectl's) rules: `--name=v`, `--name v`, `-p v`, `-p=v`, `-pv`, bool
 * `--flag` or `--flag=false`, grouped short bools (`-ab`), `--` ends the flags, positional arguments
 * may appear anywhere. A `-h/--help` flag is always known. Throws KproxyError FLAG_INVALID with
 * pflag's messages.
 */
export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
): FlagValues & { help: boolean } {
  const all = specs.some((s) => s.name === "help") ? [...specs] : [...specs, HELP];
  const byName = new Map<string, FlagSpec>();
  const byShort = new Map<string, FlagSpec>();
  for (const spec of all) {
    byName.set(spec.name, spec);
    if (spec.short) byShort.set(spec.short, spec);
  }
  const values: Record<string, FlagValue | undefined> = {};
  for (const spec of all) values[spec.name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  const changed = new Set<string>();
  const args: string[] = [];

  const set = (spec: FlagSpec, raw: string) => {
    values[spec.name] = convert(spec, raw, values[spec.name], changed.has(spec.name));
    changed.add(spec.name);
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const body = arg.slice(2);
      const eq = body.indexOf("=");
      const name = eq >= 0 ? body.slice(0, eq) : body;
      if (name === "" || name.startsWith("-") || name.startsWith("=")) {
        throw flagError(`bad flag syntax: ${arg}`);
      }
      const spec = byName.get(name);
      if (!spec) throw flagError(`unknown flag: --${name}`);
      if (eq >= 0) set(spec, body.slice(eq + 1));
      else if (spec.type === "bool") set(spec, "true");
      else if (i + 1 < argv.length) set(spec, argv[++i] as string);
      else throw flagError(`flag needs an argument: --${name}`);
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      let shorts = arg.slice(1);
      while (shorts.length > 0) {
        const c = shorts[0] as string;
        const spec = byShort.get(c);
        if (!spec) throw flagError(`unknown shorthand flag: '${c}' in ${arg}`);
        const rest = shorts.slice(1);
        if (rest.startsWith("=")) {
          set(spec, rest.slice(1));
          break;
        }
        if (spec.type === "bool") {
          set(spec, "true");
          shorts = rest;
          continue;
        }
        if (rest.length > 0) set(spec, rest);
        else if (i + 1 < argv.length) set(spec, argv[++i] as string);
        else throw flagError(`flag needs an argument: '${c}' in -${c}`);
        break;
      }
      continue;
    }
    args.push(arg);
  }
  return { values, changed, args, help: values.help === true };
}

function defaultText(spec: FlagSpec): string {
  const d = spec.default;
  if (d === undefined) return "";
  if (spec.type === "duration" && typeof d === "number") return formatDuration(d);
  if (spec.type === "string") return d === "" ? "" : `'${d}'`;
  if (Array.isArray(d)) return d.length === 0 ? "" : `[${d.join(",")}]`;
  if (spec.type === "bool" && d === false) return "false";
  return String(d);
}

/** A kubectl-style "Options:" block for `--help`. */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const lines: string[] = ["Options:"];
  for (const spec of specs) {
    if (spec.hidden) continue;
    const d = defaultText(spec);
    const left = spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
    lines.push(`    ${left}=${d}:`);
    for (const helpLine of spec.help.split("\n")) lines.push(`\t${helpLine}`);
    lines.push("");
  }
  return lines.join("\n");
}
