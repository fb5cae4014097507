import { errorMessage } from "./errors.js";
import { redactFields } from "./redact.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

/** The logger every library takes as an option. Fields whose keys look secret are redacted. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface ConsoleLoggerOptions {
  level?: LogLevel;
  /** "text" (default): `LEVEL msg key=value`; "json": one JSON object per line. */
  format?: "text" | "json";
  /** Where lines go; default process.stderr. */
  write?: (line: string) => void;
  clock?: { now(): number };
  fields?: LogFields;
}

function renderValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(errorMessage(v));
  if (typeof v === "string") return /[\s="]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

/** A logger writing one line per entry, text or JSON, to stderr by default. */
export function createLogger(options: ConsoleLoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? "info"];
  const format = options.format ?? "text";
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const clock = options.clock ?? Date;
  const base = options.fields ?? {};

  const log = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (ORDER[level] < min) return;
    const all = redactFields({ ...base, ...fields });
    if (format === "json") {
      const obj: Record<string, unknown> = { time: new Date(clock.now()).toISOString(), level, msg };
      for (const [k, v] of Object.entries(all)) obj[k] = v instanceof Error ? errorMessage(v) : v;
      write(JSON.stringify(obj));
      return;
    }
    const parts = [new Date(clock.now()).toISOString(), level.toUpperCase(), msg];
    for (const [k, v] of Object.entries(all)) if (v !== undefined) parts.push(`${k}=${renderValue(v)}`);
    write(parts.join(" "));
  };

  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
