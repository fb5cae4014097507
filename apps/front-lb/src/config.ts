/**
 * front-lb's configuration: a YAML file (validated, errors carry file:line:column) and/or flags,
 * turned into one typed FrontLbConfig with every default filled in.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isStrategyName, STRATEGY_NAMES, type StrategyName } from "@kproxy/balancer";
import { type FlagSpec, type FlagValues, KproxyError } from "@kproxy/core";
import { parseDuration } from "@kproxy/runtime";
import { type Document, isMap, isSeq, LineCounter, parseDocument } from "yaml";

export type HealthCheckType = "https" | "http" | "tcp" | "none";
export type AcceptProxyProtocol = "none" | "v1" | "v2" | "any";
export type SendProxyProtocol = "none" | "v1" | "v2";

export interface HealthCheckConfig {
  readonly type: HealthCheckType;
  readonly path: string;
  readonly expectStatus: readonly number[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  /** Each interval is randomised by ± this fraction (0..0.5). */
  readonly jitter: number;
  /** PEM of the CA to verify the endpoints with (read from `ca`). */
  readonly caPem?: string;
  readonly caFile?: string;
  readonly insecure: boolean;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  readonly clientCertFile?: string;
  readonly serverName?: string;
}

export interface EndpointConfig {
  /** "host:port", IPv6 in brackets: the endpoint's identity in metrics and status. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

export interface DiscoveryConfig {
  /** Kubeconfig file; default the usual kubeconfig rules (KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace: string;
  readonly service: string;
  /** EndpointSlice port name (the kubernetes Service's is "https"). */
  readonly portName: string;
  /** Where the last discovered list is saved and read at start. */
  readonly cacheFile?: string;
  /** Coalesce endpoint changes for this long (k3s: 3 s). */
  readonly debounceMs: number;
}

export interface OutlierConfig {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
}

export interface ListenerConfig {
  readonly name: string;
  /** Listen host; undefined listens on every address (dual stack). */
  readonly host: string | undefined;
  readonly port: number;
  readonly balance: StrategyName;
  readonly acceptProxyProtocol: AcceptProxyProtocol;
  readonly sendProxyProtocol: SendProxyProtocol;
  readonly proxyProtocolTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** 0: no idle timeout. */
  readonly idleTimeoutMs: number;
  /** Other endpoints tried after a failed connect. */
  readonly retries: number;
  /** How long connections of a failed or removed endpoint are kept; null: never closed. */
  readonly drainTimeoutMs: number | null;
  readonly maxConnections: number;
  /** Static endpoints; with discovery, the bootstrap list used until the cluster answers. */
  readonly endpoints: readonly EndpointConfig[];
  readonly discovery: DiscoveryConfig | undefined;
  readonly healthCheck: HealthCheckConfig;
  readonly outlier: OutlierConfig | false;
  readonly panic: boolean;
}

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
}

export interface FrontLbConfig {
  readonly listeners: readonly ListenerConfig[];
  /** undefined: no admin listener. */
  readonly admin: AdminConfig | undefined;
  /** On SIGTERM, how long open connections may finish before they are closed. */
  readonly shutdownTimeoutMs: number;
  readonly logLevel: "debug" | "info" | "warn" | "error";
}

export const DEFAULT_ADMIN_ADDRESS = "127.0.0.1:8404";

export const LISTENER_DEFAULTS = Object.freeze({
  balance: "round-robin" as StrategyName,
  connectTimeout: "5s",
  idleTimeout: "10m",
  retries: 2,
  drainTimeout: "30s",
  proxyProtocolTimeout: "5s",
  maxConnections: 65_536,
});

export const HEALTH_DEFAULTS = Object.freeze({
  type: "https" as HealthCheckType,
  path: "/readyz",
  interval: "2s",
  timeout: "1s",
  rise: 2,
  fall: 3,
  jitter: 0.1,
});

/** One problem in a config, located when it comes from a file. */
export interface ConfigIssue {
  /** e.g. "listeners[0].healthCheck.interval" */
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

type Path = (string | number)[];

function pathText(path: Path): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? p : `.${p}`;
  return s;
}

/** Where a value came from, to point errors at a line. */
interface Source {
  readonly name: string;
  locate(path: Path): { line: number; column: number } | undefined;
  /** Directory that relative file names in the config are relative to. */
  readonly dir: string;
}

function configError(source: Source | undefined, issues: ConfigIssue[]): KproxyError {
  const lines = issues.map((i) => {
    const where =
      source && i.line !== undefined
        ? `${source.name}:${i.line}:${i.column}: `
        : source
          ? `${source.name}: `
          : "";
    return `${where}${i.path === "" ? "" : `${i.path}: `}${i.message}`;
  });
  return new KproxyError("CONFIG_INVALID", `invalid configuration:\n  ${lines.join("\n  ")}`, {
    details: { issues, exitCode: 1 },
  });
}

class Validator {
  readonly issues: ConfigIssue[] = [];
  constructor(readonly source: Source | undefined) {}

  fail(path: Path, message: string, keyPosition = false): void {
    const at = this.source?.locate(keyPosition ? [...path, "__key__"] : path) ?? this.source?.locate(path);
    this.issues.push({ path: pathText(path), message, ...(at ? { line: at.line, column: at.column } : {}) });
  }

  object(v: unknown, path: Path, keys: readonly string[]): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) {
      this.fail(path, `must be a mapping, got ${describe(v)}`);
      return undefined;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!keys.includes(k))
        this.fail([...path, k], `unknown field ${JSON.stringify(k)} (known: ${keys.join(", ")})`, true);
    return o;
  }

  string(v: unknown, path: Path, def?: string): string | undefined {
    if (v === undefined || v === null) return def;
    if (typeof v !== "string") {
      this.fail(path, `must be a string, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: Path, allowed: readonly T[], def: T): T {
    const s = this.string(v, path);
    if (s === undefined) return def;
    if (!(allowed as readonly string[]).includes(s)) {
      this.fail(path, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(s)}`);
      return def;
    }
    return s as T;
  }

  bool(v: unknown, path: Path, def: boolean): boolean {
    if (v === undefined || v === null) return def;
    if (typeof v !== "boolean") {
      this.fail(path, `must be true or false, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  int(v: unknown, path: Path, def: number, min: number, max: number): number {
    if (v === undefined || v === null) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer from ${min} to ${max}, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  number(v: unknown, path: Path, def: number, min: number, max: number): number {
    if (v === undefined || v === null) return def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
      this.fail(path, `must be a number from ${min} to ${max}, got ${describe(v)}`);
      return def;
    }
    return v;
  }

  duration(v: unknown, path: Path, def: string, opts: { min?: number; allowNever?: boolean } = {}): number {
    const never = opts.allowNever === true;
    const fallback = parseDuration(def);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") {
      this.fail(
        path,
        `must be a duration with a unit like "5s" or "1m30s"${never ? ' (or "never")' : ""}, got ${describe(v)}`,
      );
      return fallback;
    }
    if (never && v === "never") return -1;
    try {
      const ms = parseDuration(v);
      if (ms < (opts.min ?? 0)) {
        this.fail(path, `must be at least ${opts.min ?? 0} ms, got ${JSON.stringify(v)}`);
        return fallback;
      }
      return ms;
    } catch {
      this.fail(path, `invalid duration ${JSON.stringify(v)} (use a unit: "500ms", "5s", "1m")`);
      return fallback;
    }
  }

  file(v: unknown, path: Path): { file: string; text: string } | undefined {
    const s = this.string(v, path);
    if (s === undefined || s === "") return undefined;
    const file = resolve(this.source?.dir ?? process.cwd(), s);
    try {
      return { file, text: readFileSync(file, "utf8") };
    } catch (err) {
      this.fail(path, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
      return undefined;
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return JSON.stringify(v);
}

/** Parses "host:port", "[v6]:port" or ":port" (every address). */
export function parseHostPort(text: string): { host: string | undefined; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? m[2];
  return { host: host === "" || host === undefined ? undefined : host, port };
}

export function endpointKeyOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const LISTENER_KEYS = [
  "name",
  "address",
  "balance",
  "proxyProtocol",
  "connectTimeout",
  "idleTimeout",
  "retries",
  "drainTimeout",
  "maxConnections",
  "endpoints",
  "discovery",
  "healthCheck",
  "outlier",
  "panic",
] as const;

function validateHealth(v: Validator, raw: unknown, path: Path): HealthCheckConfig {
  const o =
    v.object(raw, path, [
      "type",
      "path",
      "expectStatus",
      "interval",
      "timeout",
      "rise",
      "fall",
      "jitter",
      "ca",
      "insecure",
      "clientCert",
      "clientKey",
      "serverName",
    ]) ?? {};
  const type = v.oneOf(o.type, [...path, "type"], ["https", "http", "tcp", "none"], HEALTH_DEFAULTS.type);
  const checkPath = v.string(o.path, [...path, "path"], HEALTH_DEFAULTS.path)!;
  if (!checkPath.startsWith("/"))
    v.fail([...path, "path"], `must start with "/", got ${JSON.stringify(checkPath)}`);
  let expectStatus: number[] = [200];
  if (o.expectStatus !== undefined) {
    const list = Array.isArray(o.expectStatus) ? o.expectStatus : [o.expectStatus];
    expectStatus = list.map((s, i) =>
      v.int(
        s,
        Array.isArray(o.expectStatus) ? [...path, "expectStatus", i] : [...path, "expectStatus"],
        200,
        100,
        599,
      ),
    );
    if (expectStatus.length === 0) v.fail([...path, "expectStatus"], "must list at least one status");
  }
  const intervalMs = v.duration(o.interval, [...path, "interval"], HEALTH_DEFAULTS.interval, { min: 10 });
  const timeoutMs = v.duration(o.timeout, [...path, "timeout"], HEALTH_DEFAULTS.timeout, { min: 1 });
  const ca = v.file(o.ca, [...path, "ca"]);
  const cert = v.file(o.clientCert, [...path, "clientCert"]);
  const key = v.file(o.clientKey, [...path, "clientKey"]);
  if ((cert === undefined) !== (key === undefined) && v.issues.length === 0)
    v.fail([...path, cert ? "clientKey" : "clientCert"], "clientCert and clientKey go together");
  const insecure = v.bool(o.insecure, [...path, "insecure"], ca === undefined);
  if (o.insecure === true && ca !== undefined)
    v.fail([...path, "insecure"], "insecure and ca exclude each other");
  const serverName = v.string(o.serverName, [...path, "serverName"]);
  return {
    type,
    path: checkPath,
    expectStatus,
    intervalMs,
    timeoutMs,
    rise: v.int(o.rise, [...path, "rise"], HEALTH_DEFAULTS.rise, 1, 100),
    fall: v.int(o.fall, [...path, "fall"], HEALTH_DEFAULTS.fall, 1, 100),
    jitter: v.number(o.jitter, [...path, "jitter"], HEALTH_DEFAULTS.jitter, 0, 0.5),
    insecure,
    ...(ca ? { caPem: ca.text, caFile: ca.file } : {}),
    ...(cert && key ? { clientCertPem: cert.text, clientKeyPem: key.text, clientCertFile: cert.file } : {}),
    ...(serverName !== undefined ? { serverName } : {}),
  };
}

function validateEndpoints(v: Validator, raw: unknown, path: Path): EndpointConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    v.fail(path, `must be a list of "host:port" or {address, weight}, got ${describe(raw)}`);
    return [];
  }
  const out: EndpointConfig[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const p = [...path, i];
    let address: string | undefined;
    let weight = 1;
    if (typeof item === "string") address = item;
    else {
      const o = v.object(item, p, ["address", "weight"]);
      if (!o) return;
      address = v.string(o.address, [...p, "address"]);
      if (address === undefined) v.fail(p, "address is required");
      weight = v.int(o.weight, [...p, "weight"], 1, 0, 1_000_000);
    }
    if (address === undefined) return;
    const hp = parseHostPort(address);
    if (!hp || hp.host === undefined || hp.port === 0) {
      v.fail(
        typeof item === "string" ? p : [...p, "address"],
        `invalid endpoint address ${JSON.stringify(address)} (want host:port)`,
      );
      return;
    }
    const key = endpointKeyOf(hp.host, hp.port);
    if (seen.has(key)) v.fail(p, `duplicate endpoint ${key}`);
    seen.add(key);
    out.push({ key, host: hp.host, port: hp.port, weight });
  });
  return out;
}

function validateDiscovery(v: Validator, raw: unknown, path: Path): DiscoveryConfig | undefined {
  if (raw === undefined || raw === null || raw === false) return undefined;
  const o =
    raw === true
      ? {}
      : v.object(raw, path, [
          "kubeconfig",
          "context",
          "namespace",
          "service",
          "port",
          "cacheFile",
          "debounce",
        ]);
  if (!o) return undefined;
  const kubeconfig = v.string(o.kubeconfig, [...path, "kubeconfig"]);
  const context = v.string(o.context, [...path, "context"]);
  const cacheFile = v.string(o.cacheFile, [...path, "cacheFile"]);
  const base = v.source?.dir ?? process.cwd();
  return {
    ...(kubeconfig ? { kubeconfig: resolve(base, kubeconfig) } : {}),
    ...(context ? { context } : {}),
    namespace: v.string(o.namespace, [...path, "namespace"], "default")!,
    service: v.string(o.service, [...path, "service"], "kubernetes")!,
    portName: v.string(o.port, [...path, "port"], "https")!,
    ...(cacheFile ? { cacheFile: resolve(base, cacheFile) } : {}),
    debounceMs: v.duration(o.debounce, [...path, "debounce"], "3s"),
  };
}

function validateListener(v: Validator, raw: unknown, path: Path, index: number): ListenerConfig | undefined {
  const o = v.object(raw, path, LISTENER_KEYS);
  if (!o) {
    if (raw === undefined || raw === null) v.fail(path, "listener must be a mapping");
    return undefined;
  }
  const name = v.string(o.name, [...path, "name"], `listener-${index}`)!;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(name))
    v.fail([...path, "name"], `invalid name ${JSON.stringify(name)} (letters, digits, "-", "_", ".")`);
  const addressText = v.string(o.address, [...path, "address"]);
  let host: string | undefined;
  let port = 0;
  if (addressText === undefined) v.fail(path, "address is required (e.g. 127.0.0.1:6443)");
  else {
    const hp = parseHostPort(addressText);
    if (!hp)
      v.fail([...path, "address"], `invalid listen address ${JSON.stringify(addressText)} (want host:port)`);
    else ({ host, port } = hp);
  }
  const balanceText = v.string(o.balance, [...path, "balance"], LISTENER_DEFAULTS.balance)!;
  let balance: StrategyName = LISTENER_DEFAULTS.balance;
  if (isStrategyName(balanceText)) balance = balanceText;
  else
    v.fail(
      [...path, "balance"],
      `unknown strategy ${JSON.stringify(balanceText)}: valid strategies are ${STRATEGY_NAMES.join(", ")}`,
    );
  const pp = v.object(o.proxyProtocol, [...path, "proxyProtocol"], ["accept", "send", "timeout"]) ?? {};
  const endpoints = validateEndpoints(v, o.endpoints, [...path, "endpoints"]);
  const discovery = validateDiscovery(v, o.discovery, [...path, "discovery"]);
  if (endpoints.length === 0 && discovery === undefined) v.fail(path, "needs endpoints, discovery, or both");
  let outlier: OutlierConfig | false = false;
  if (o.outlier !== false) {
    const oo =
      v.object(
        o.outlier,
        [...path, "outlier"],
        ["consecutiveFailures", "baseEjectionTime", "maxEjectionPercent"],
      ) ?? {};
    outlier = {
      consecutiveFailures: v.int(
        oo.consecutiveFailures,
        [...path, "outlier", "consecutiveFailures"],
        3,
        1,
        1000,
      ),
      baseEjectionMs: v.duration(oo.baseEjectionTime, [...path, "outlier", "baseEjectionTime"], "10s"),
      maxEjectionPercent: v.number(
        oo.maxEjectionPercent,
        [...path, "outlier", "maxEjectionPercent"],
        100,
        0,
        100,
      ),
    };
  }
  const drain = v.duration(o.drainTimeout, [...path, "drainTimeout"], LISTENER_DEFAULTS.drainTimeout, {
    allowNever: true,
  });
  return {
    name,
    host,
    port,
    balance,
    acceptProxyProtocol: v.oneOf(
      pp.accept,
      [...path, "proxyProtocol", "accept"],
      ["none", "v1", "v2", "any"],
      "none",
    ),
    sendProxyProtocol: v.oneOf(pp.send, [...path, "proxyProtocol", "send"], ["none", "v1", "v2"], "none"),
    proxyProtocolTimeoutMs: v.duration(
      pp.timeout,
      [...path, "proxyProtocol", "timeout"],
      LISTENER_DEFAULTS.proxyProtocolTimeout,
      { min: 1 },
    ),
    connectTimeoutMs: v.duration(
      o.connectTimeout,
      [...path, "connectTimeout"],
      LISTENER_DEFAULTS.connectTimeout,
      { min: 1 },
    ),
    idleTimeoutMs: v.duration(o.idleTimeout, [...path, "idleTimeout"], LISTENER_DEFAULTS.idleTimeout),
    retries: v.int(o.retries, [...path, "retries"], LISTENER_DEFAULTS.retries, 0, 100),
    drainTimeoutMs: drain < 0 ? null : drain,
    maxConnections: v.int(
      o.maxConnections,
      [...path, "maxConnections"],
      LISTENER_DEFAULTS.maxConnections,
      1,
      10_000_000,
    ),
    endpoints,
    discovery,
    healthCheck: validateHealth(v, o.healthCheck, [...path, "healthCheck"]),
    outlier,
    panic: v.bool(o.panic, [...path, "panic"], true),
  };
}

function validateRoot(raw: unknown, source: Source | undefined): FrontLbConfig {
  const v = new Validator(source);
  const root = v.object(raw ?? {}, [], ["listeners", "admin", "shutdownTimeout", "logLevel"]) ?? {};
  const listeners: ListenerConfig[] = [];
  if (!Array.isArray(root.listeners) || root.listeners.length === 0)
    v.fail(root.listeners === undefined ? [] : ["listeners"], "listeners: at least one listener is required");
  else
    root.listeners.forEach((l, i) => {
      const c = validateListener(v, l, ["listeners", i], i);
      if (c) listeners.push(c);
    });
  const names = new Set<string>();
  const binds = new Set<string>();
  listeners.forEach((l, i) => {
    if (names.has(l.name))
      v.fail(["listeners", i, "name"], `duplicate listener name ${JSON.stringify(l.name)}`);
    names.add(l.name);
    const bind = `${l.host ?? "*"}:${l.port}`;
    if (l.port !== 0 && binds.has(bind)) v.fail(["listeners", i, "address"], `address ${bind} is used twice`);
    binds.add(bind);
  });
  let admin: AdminConfig | undefined;
  const adminRaw = root.admin;
  if (adminRaw !== false && adminRaw !== "") {
    const a = v.object(adminRaw, ["admin"], ["address"]) ?? {};
    const text = v.string(a.address, ["admin", "address"], DEFAULT_ADMIN_ADDRESS)!;
    if (text !== "") {
      const hp = parseHostPort(text);
      if (!hp) v.fail(["admin", "address"], `invalid address ${JSON.stringify(text)} (want host:port)`);
      else admin = { host: hp.host ?? "0.0.0.0", port: hp.port };
    }
  }
  const config: FrontLbConfig = {
    listeners,
    admin,
    shutdownTimeoutMs: v.duration(root.shutdownTimeout, ["shutdownTimeout"], "30s"),
    logLevel: v.oneOf(root.logLevel, ["logLevel"], ["debug", "info", "warn", "error"], "info"),
  };
  if (v.issues.length > 0) throw configError(source, v.issues);
  return config;
}

/** Validates a config given as an object of the YAML file's shape (e.g. by `startFrontLb`). */
export function validateConfig(raw: unknown, baseDir = process.cwd()): FrontLbConfig {
  return validateRoot(raw, { name: "config", dir: baseDir, locate: () => undefined });
}

function locator(doc: Document, lc: LineCounter): Source["locate"] {
  return (path) => {
    const wantKey = path.at(-1) === "__key__";
    const p = wantKey ? path.slice(0, -1) : path;
    let node: unknown = doc.contents;
    let keyNode: unknown;
    for (const part of p) {
      if (isMap(node)) {
        const pair = node.items.find((it) => {
          const k = it.key as { value?: unknown } | null;
          return k !== null && typeof k === "object" && String(k.value) === String(part);
        });
        if (!pair) return undefined;
        keyNode = pair.key;
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof part === "number") {
        keyNode = undefined;
        node = node.items[part];
      } else return undefined;
    }
    const target = (wantKey ? (keyNode ?? node) : node) as { range?: [number, number, number] } | null;
    if (!target?.range) return undefined;
    const { line, col } = lc.linePos(target.range[0]);
    return { line, column: col };
  };
}

/** Parses and validates YAML text; `name` (the file name) prefixes error locations. */
export function parseConfigYaml(text: string, name = "config.yaml", baseDir = process.cwd()): FrontLbConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0)
    throw configError(
      { name, dir: baseDir, locate: () => undefined },
      doc.errors.map((e) => ({
        path: "",
        message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
        ...(e.linePos ? { line: e.linePos[0].line, column: e.linePos[0].col } : {}),
      })),
    );
  return validateRoot(doc.toJS({ maxAliasCount: 100 }), {
    name,
    dir: baseDir,
    locate: locator(doc, lineCounter),
  });
}

/** Reads and validates a config file; CONFIG_UNREADABLE when it cannot be read. */
export function loadConfigFile(file: string): FrontLbConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new KproxyError(
      "CONFIG_UNREADABLE",
      `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
      {
        cause: err,
        details: { exitCode: 1 },
      },
    );
  }
  return parseConfigYaml(text, file, dirname(resolve(file)));
}

// ------------------------------------------------------------------ flags

export const FRONT_LB_FLAGS: readonly FlagSpec[] = [
  {
    name: "config",
    short: "c",
    type: "string",
    default: "",
    metavar: "file",
    help: "YAML config file (reloaded on SIGHUP and when it changes).",
  },
  {
    name: "listen",
    type: "string",
    default: "",
    metavar: "host:port",
    help: "Listen address of a single listener configured by flags.",
  },
  {
    name: "endpoint",
    type: "stringArray",
    default: [],
    metavar: "host:port",
    help: "An API server to balance to (repeat the flag).",
  },
  {
    name: "balance",
    type: "string",
    default: LISTENER_DEFAULTS.balance,
    metavar: "strategy",
    help: `How to pick an endpoint: ${STRATEGY_NAMES.join(", ")}.`,
  },
  {
    name: "health-check",
    type: "string",
    default: HEALTH_DEFAULTS.type,
    metavar: "type",
    help: "Active health check: https, http, tcp or none.",
  },
  {
    name: "health-path",
    type: "string",
    default: HEALTH_DEFAULTS.path,
    help: "Path of the HTTP(S) health check.",
  },
  {
    name: "health-interval",
    type: "duration",
    default: parseDuration(HEALTH_DEFAULTS.interval),
    help: "Time between health checks of an endpoint.",
  },
  {
    name: "health-timeout",
    type: "duration",
    default: parseDuration(HEALTH_DEFAULTS.timeout),
    help: "Timeout of one health check.",
  },
  {
    name: "health-rise",
    type: "int",
    default: HEALTH_DEFAULTS.rise,
    help: "Consecutive passed checks to mark an endpoint up.",
  },
  {
    name: "health-fall",
    type: "int",
    default: HEALTH_DEFAULTS.fall,
    help: "Consecutive failed checks to mark an endpoint down.",
  },
  {
    name: "health-ca",
    type: "string",
    default: "",
    metavar: "file",
    help: "CA bundle to verify endpoints in HTTPS checks (default: no verification).",
  },
  {
    name: "connect-timeout",
    type: "duration",
    default: parseDuration(LISTENER_DEFAULTS.connectTimeout),
    help: "Timeout of a connect to an endpoint.",
  },
  {
    name: "idle-timeout",
    type: "duration",
    default: parseDuration(LISTENER_DEFAULTS.idleTimeout),
    help: "Close a connection idle this long (0: never).",
  },
  {
    name: "retries",
    type: "int",
    default: LISTENER_DEFAULTS.retries,
    help: "Other endpoints tried after a failed connect.",
  },
  {
    name: "drain-timeout",
    type: "string",
    default: LISTENER_DEFAULTS.drainTimeout,
    help: 'Keep connections of a failed or removed endpoint this long, then close them ("never" to keep them).',
  },
  {
    name: "accept-proxy-protocol",
    type: "string",
    default: "none",
    help: "Read a PROXY header from clients: none, v1, v2 or any.",
  },
  {
    name: "send-proxy-protocol",
    type: "string",
    default: "none",
    help: "Send a PROXY header to endpoints: none, v1 or v2.",
  },
  {
    name: "discover",
    type: "bool",
    default: false,
    help: "Discover endpoints from the default/kubernetes EndpointSlices.",
  },
  {
    name: "kubeconfig",
    type: "string",
    default: "",
    metavar: "file",
    help: "Kubeconfig for discovery (default: KUBECONFIG, ~/.kube/config or in-cluster).",
  },
  {
    name: "discovery-cache",
    type: "string",
    default: "",
    metavar: "file",
    help: "File where discovered endpoints are saved, and read when the cluster is unreachable.",
  },
  {
    name: "admin-address",
    type: "string",
    default: DEFAULT_ADMIN_ADDRESS,
    metavar: "host:port",
    help: 'Admin listener (/metrics, /status, /stats, /healthz, /readyz); "" disables it.',
  },
  {
    name: "shutdown-timeout",
    type: "duration",
    default: 30_000,
    help: "On SIGTERM, time open connections get to finish.",
  },
  { name: "log-level", type: "string", default: "info", help: "debug, info, warn or error." },
  {
    name: "validate",
    type: "bool",
    default: false,
    help: "Validate the configuration, print it as JSON and exit.",
  },
];

const LISTENER_FLAGS = [
  "listen",
  "endpoint",
  "balance",
  "health-check",
  "health-path",
  "health-interval",
  "health-timeout",
  "health-rise",
  "health-fall",
  "health-ca",
  "connect-timeout",
  "idle-timeout",
  "retries",
  "drain-timeout",
  "accept-proxy-protocol",
  "send-proxy-protocol",
  "discover",
  "kubeconfig",
  "discovery-cache",
];

const ms = (n: unknown) => `${Number(n)}ms`;

/**
 * The config from parsed flags: the file from --config (listener flags are then refused), or one
 * listener named "default" from --listen and the other flags. --admin-address, --shutdown-timeout
 * and --log-level override the file when given.
 */
export function configFromFlags(flags: FlagValues): FrontLbConfig {
  const val = flags.values;
  const file = String(val.config ?? "");
  let config: FrontLbConfig;
  if (file !== "") {
    const conflicting = LISTENER_FLAGS.filter((f) => flags.changed.has(f));
    if (conflicting.length > 0)
      throw new KproxyError(
        "CONFIG_CONFLICT",
        `--config cannot be combined with listener flags (${conflicting.map((f) => `--${f}`).join(", ")}): put them in the file`,
        { details: { exitCode: 1 } },
      );
    config = loadConfigFile(file);
  } else {
    if (String(val.listen ?? "") === "")
      throw new KproxyError(
        "CONFIG_INVALID",
        "nothing to do: give --config FILE, or --listen and --endpoint (or --discover)",
        {
          details: { exitCode: 1 },
        },
      );
    const drain = String(val["drain-timeout"]);
    const listener: Record<string, unknown> = {
      name: "default",
      address: val.listen,
      balance: val.balance,
      connectTimeout: ms(val["connect-timeout"]),
      idleTimeout: ms(val["idle-timeout"]),
      retries: val.retries,
      drainTimeout: drain,
      endpoints: val.endpoint,
      proxyProtocol: { accept: val["accept-proxy-protocol"], send: val["send-proxy-protocol"] },
      healthCheck: {
        type: val["health-check"],
        path: val["health-path"],
        interval: ms(val["health-interval"]),
        timeout: ms(val["health-timeout"]),
        rise: val["health-rise"],
        fall: val["health-fall"],
        ...(String(val["health-ca"] ?? "") !== "" ? { ca: val["health-ca"] } : {}),
      },
    };
    if (
      val.discover === true ||
      String(val.kubeconfig ?? "") !== "" ||
      String(val["discovery-cache"] ?? "") !== ""
    )
      listener.discovery = {
        ...(String(val.kubeconfig ?? "") !== "" ? { kubeconfig: val.kubeconfig } : {}),
        ...(String(val["discovery-cache"] ?? "") !== "" ? { cacheFile: val["discovery-cache"] } : {}),
      };
    config = validateRoot(
      { listeners: [listener] },
      { name: "flags", dir: process.cwd(), locate: () => undefined },
    );
  }
  return applyGlobalFlags(config, flags);
}

function applyGlobalFlags(config: FrontLbConfig, flags: FlagValues): FrontLbConfig {
  const val = flags.values;
  let out = config;
  if (flags.changed.has("admin-address") || String(val.config ?? "") === "") {
    const text = String(val["admin-address"] ?? "");
    if (text === "") out = { ...out, admin: undefined };
    else {
      const hp = parseHostPort(text);
      if (!hp)
        throw new KproxyError(
          "CONFIG_INVALID",
          `invalid --admin-address ${JSON.stringify(text)} (want host:port)`,
          {
            details: { exitCode: 1 },
          },
        );
      out = { ...out, admin: { host: hp.host ?? "0.0.0.0", port: hp.port } };
    }
  }
  if (flags.changed.has("shutdown-timeout"))
    out = { ...out, shutdownTimeoutMs: Number(val["shutdown-timeout"]) };
  if (flags.changed.has("log-level") || String(val.config ?? "") === "") {
    const level = String(val["log-level"]);
    if (!["debug", "info", "warn", "error"].includes(level))
      throw new KproxyError(
        "CONFIG_INVALID",
        `invalid --log-level ${JSON.stringify(level)}: debug, info, warn or error`,
        {
          details: { exitCode: 1 },
        },
      );
    out = { ...out, logLevel: level as FrontLbConfig["logLevel"] };
  }
  return out;
}
