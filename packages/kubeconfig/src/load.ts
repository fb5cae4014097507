import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import * as path from "node:path";
import type { Logger } from "@kproxy/core";
import { errorMessage, KproxyError } from "@kproxy/core";
import type { Cluster, Context, KubeConfig, User } from "@kubernetes/client-node";
import { load as parseYaml } from "js-yaml";
import type { ConnectionOptions } from "./flags.js";

export const DEFAULT_IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const DEFAULT_SERVER = "http://localhost:8080";

/** An exec credential plugin as configured in a kubeconfig user. */
export interface ExecConfig {
  apiVersion: string;
  command: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
  provideClusterInfo: boolean;
  interactiveMode: string | undefined;
  installHint: string | undefined;
}

export interface ResolvedCluster {
  server: string;
  caFile: string | undefined;
  caData: Buffer | undefined;
  insecure: boolean;
  tlsServerName: string | undefined;
  proxyUrl: string | undefined;
  disableCompression: boolean;
  /** The cluster's `extensions` entry named client.authentication.k8s.io/exec (spec.cluster.config). */
  execExtension: unknown;
}

export interface ResolvedUser {
  token: string | undefined;
  tokenFile: string | undefined;
  username: string | undefined;
  password: string | undefined;
  certFile: string | undefined;
  certData: Buffer | undefined;
  keyFile: string | undefined;
  keyData: Buffer | undefined;
  exec: ExecConfig | undefined;
  impersonateUser: string | undefined;
  impersonateGroups: string[];
  impersonateUid: string | undefined;
  impersonateExtra: Record<string, string[]>;
  /** Name of a legacy auth-provider (not implemented here; warned about). */
  authProvider: string | undefined;
}

export interface ResolvedConfig {
  source: "kubeconfig" | "in-cluster" | "flags" | "default";
  contextName: string | undefined;
  namespace: string;
  requestTimeoutMs: number | undefined;
  cluster: ResolvedCluster;
  user: ResolvedUser;
  /**
   * Builds the client-node KubeConfig. @kubernetes/client-node is loaded on the first call only:
   * importing it costs ~60 MiB of RSS, which a proxy that never lists or watches should not pay.
   */
  kubeConfig: () => KubeConfig;
}

export interface LoadInput extends ConnectionOptions {
  env: NodeJS.ProcessEnv;
  inClusterDir: string;
  logger: Logger;
}

/** Extras client-node's model drops, keyed by entry name (first file wins like the entries themselves). */
interface ClusterExtras {
  disableCompression: boolean;
  execExtension: unknown;
  hasServer: boolean;
}
interface UserExtras {
  tokenFile: string | undefined;
  asGroups: string[];
  asUid: string | undefined;
  asExtra: Record<string, string[]>;
  execDir: string;
}

interface Merged {
  files: string[];
  clusters: Map<string, Cluster>;
  users: Map<string, User>;
  contexts: Map<string, Context>;
  clusterExtras: Map<string, ClusterExtras>;
  userExtras: Map<string, UserExtras>;
  currentContext: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function fileError(file: string, err: unknown, explicit: boolean): KproxyError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new KproxyError(
      "KUBECONFIG_NOT_FOUND",
      `kubeconfig file ${JSON.stringify(file)} does not exist${explicit ? " (given with --kubeconfig)" : ""}`,
      { cause: err, details: { file } },
    );
  }
  return new KproxyError(
    "KUBECONFIG_UNREADABLE",
    `kubeconfig file ${JSON.stringify(file)} cannot be read: ${errorMessage(err)}`,
    { cause: err, details: { file } },
  );
}

/** The kubeconfig files kubectl would read, in precedence order (missing ones already dropped). */
export function kubeconfigFiles(opts: { kubeconfig?: string | undefined; env: NodeJS.ProcessEnv }): {
  files: string[];
  explicit: boolean;
} {
  if (opts.kubeconfig) return { files: [path.resolve(opts.kubeconfig)], explicit: true };
  const list = opts.env.KUBECONFIG;
  if (list !== undefined && list !== "") {
    const seen = new Set<string>();
    const files: string[] = [];
    for (const entry of list.split(path.delimiter)) {
      if (entry === "") continue;
      const abs = path.resolve(entry);
      if (seen.has(abs)) continue;
      seen.add(abs);
      try {
        statSync(abs);
      } catch {
        continue; // kubectl skips missing KUBECONFIG entries
      }
      files.push(abs);
    }
    return { files, explicit: false };
  }
  const home = opts.env.HOME || opts.env.USERPROFILE || homedir();
  const def = path.join(home, ".kube", "config");
  try {
    statSync(def);
    return { files: [def], explicit: false };
  } catch {
    return { files: [], explicit: false };
  }
}

function readKubeconfigFile(file: string, explicit: boolean): string {
  try {
    const st = statSync(file);
    if (st.isDirectory()) {
      throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    }
    return readFileSync(file, "utf8");
  } catch (err) {
    throw fileError(file, err, explicit);
  }
}

function invalid(file: string, message: string, cause?: unknown): KproxyError {
  return new KproxyError(
    "KUBECONFIG_INVALID",
    `kubeconfig file ${JSON.stringify(file)} is invalid: ${message}`,
    {
      cause,
      details: { file },
    },
  );
}

function resolveRelative(dir: string, p: string | undefined): string | undefined {
  if (!p) return undefined;
  return path.isAbsolute(p) ? p : path.resolve(dir, p);
}

function parseExtensions(list: unknown): unknown {
  if (!Array.isArray(list)) return undefined;
  for (const ext of list) {
    if (isRecord(ext) && ext.name === "client.authentication.k8s.io/exec") return ext.extension;
  }
  return undefined;
}

function parseExtra(v: unknown): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!isRecord(v)) return out;
  for (const [k, vals] of Object.entries(v)) {
    if (Array.isArray(vals)) out[k] = vals.filter((x): x is string => typeof x === "string");
    else if (typeof vals === "string") out[k] = [vals];
  }
  return out;
}

/** `v[key]` when v is a mapping. */
function field(v: unknown, key: string): unknown {
  return isRecord(v) ? v[key] : undefined;
}

function absoluteIn(dir: string, file: unknown): unknown {
  return typeof file === "string" && file !== "" && !path.isAbsolute(file) ? path.join(dir, file) : file;
}

/** client-node's clusterIterator (THROW on invalid entries) followed by makePathsAbsolute. */
function toCluster(elt: unknown, i: number, dir: string): Cluster {
  if (!field(elt, "name")) throw new Error(`clusters[${i}].name is missing`);
  const c = field(elt, "cluster");
  if (!c) throw new Error(`clusters[${i}].cluster is missing`);
  const server = field(c, "server");
  if (!server) throw new Error(`clusters[${i}].cluster.server is missing`);
  return {
    caData: field(c, "certificate-authority-data"),
    caFile: absoluteIn(dir, field(c, "certificate-authority")),
    name: field(elt, "name"),
    server: String(server).replace(/\/$/, ""),
    skipTLSVerify: field(c, "insecure-skip-tls-verify") === true,
    tlsServerName: field(c, "tls-server-name"),
    proxyUrl: field(c, "proxy-url"),
  } as Cluster;
}

/** client-node's userIterator (token-file was removed beforehand) followed by makePathsAbsolute. */
function toUser(elt: unknown, i: number, dir: string): User {
  if (!field(elt, "name")) throw new Error(`users[${i}].name is missing`);
  const u = field(elt, "user");
  const get = (key: string) => (u ? field(u, key) : null);
  const certFile = get("client-certificate");
  const keyFile = get("client-key");
  return {
    authProvider: get("auth-provider"),
    certData: get("client-certificate-data"),
    certFile: certFile ? absoluteIn(dir, certFile) : certFile,
    exec: get("exec"),
    keyData: get("client-key-data"),
    keyFile: keyFile ? absoluteIn(dir, keyFile) : keyFile,
    name: field(elt, "name"),
    token: u ? field(u, "token") || undefined : undefined,
    password: get("password"),
    username: get("username"),
    impersonateUser: get("as"),
  } as User;
}

/** client-node's contextIterator. */
function toContext(elt: unknown, i: number): Context {
  if (!field(elt, "name")) throw new Error(`contexts[${i}].name is missing`);
  const c = field(elt, "context");
  if (!c) throw new Error(`contexts[${i}].context is missing`);
  if (!field(c, "cluster")) throw new Error(`contexts[${i}].context.cluster is missing`);
  return {
    cluster: field(c, "cluster"),
    name: field(elt, "name"),
    user: field(c, "user") || undefined,
    namespace: field(c, "namespace") || undefined,
  } as Context;
}

/** Parses one file into client-node's model (after YAML decoding), collecting the fields that model drops. */
function loadOneFile(file: string, text: string, into: Merged): void {
  // kubectl accepts an empty (or comments-only) file; js-yaml 5 rejects it
  if (text.split(/\r?\n/).every((line) => /^\s*(#.*)?$/.test(line))) return;
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw invalid(file, `bad YAML: ${errorMessage(err).split("\n")[0]}`, err);
  }
  if (doc === undefined || doc === null) return; // an empty file contributes nothing
  if (!isRecord(doc)) throw invalid(file, "the document is not a mapping");
  for (const key of ["clusters", "users", "contexts"]) {
    if (doc[key] !== undefined && doc[key] !== null && !Array.isArray(doc[key])) {
      throw invalid(file, `"${key}" must be a list`);
    }
  }
  const dir = path.dirname(file);
  const rawClusters = (doc.clusters as unknown[] | undefined) ?? [];
  const rawUsers = (doc.users as unknown[] | undefined) ?? [];
  const clusterExtras = new Map<string, ClusterExtras>();
  const userExtras = new Map<string, UserExtras>();
  // Sanitised copy for client-node: it reads token-file eagerly and rejects clusters without a server,
  // both of which we handle ourselves with better errors.
  const clustersForClientNode = rawClusters.map((c, i) => {
    if (!isRecord(c) || !isRecord(c.cluster)) return c;
    const name = typeof c.name === "string" ? c.name : `#${i}`;
    const hasServer = typeof c.cluster.server === "string" && c.cluster.server !== "";
    clusterExtras.set(name, {
      disableCompression: c.cluster["disable-compression"] === true,
      execExtension: parseExtensions(c.cluster.extensions),
      hasServer,
    });
    return hasServer ? c : { ...c, cluster: { ...c.cluster, server: "about:no-server" } };
  });
  const usersForClientNode = rawUsers.map((u) => {
    if (!isRecord(u) || !isRecord(u.user)) return u;
    const name = typeof u.name === "string" ? u.name : "";
    const groups = u.user["as-groups"];
    userExtras.set(name, {
      tokenFile: resolveRelative(dir, optString(u.user["token-file"])),
      asGroups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === "string") : [],
      asUid: optString(u.user["as-uid"]),
      asExtra: parseExtra(u.user["as-user-extra"]),
      execDir: dir,
    });
    const { "token-file": _dropped, ...user } = u.user;
    return { ...u, user };
  });
  // The same model and validation as client-node's KubeConfig.loadFromString + makePathsAbsolute,
  // without loading client-node (see ResolvedConfig.kubeConfig).
  const kc = { clusters: [] as Cluster[], users: [] as User[], contexts: [] as Context[] };
  try {
    kc.clusters = clustersForClientNode.map((c, i) => toCluster(c, i, dir));
    kc.users = usersForClientNode.map((u, i) => toUser(u, i, dir));
    kc.contexts = ((doc.contexts as unknown[] | undefined) ?? []).map(toContext);
  } catch (err) {
    throw invalid(file, errorMessage(err), err);
  }
  for (const c of kc.clusters) {
    if (into.clusters.has(c.name)) continue;
    into.clusters.set(c.name, c);
    const extras = clusterExtras.get(c.name);
    if (extras) into.clusterExtras.set(c.name, extras);
  }
  for (const u of kc.users) {
    if (into.users.has(u.name)) continue;
    into.users.set(u.name, u);
    const extras = userExtras.get(u.name);
    if (extras) into.userExtras.set(u.name, extras);
  }
  for (const ctx of kc.contexts) {
    if (!into.contexts.has(ctx.name)) into.contexts.set(ctx.name, ctx);
  }
  const current = optString(doc["current-context"]);
  if (into.currentContext === undefined && current !== undefined) into.currentContext = current;
}

function loadMerged(input: LoadInput): Merged {
  const { files, explicit } = kubeconfigFiles({ kubeconfig: input.kubeconfig, env: input.env });
  const merged: Merged = {
    files,
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
    clusterExtras: new Map(),
    userExtras: new Map(),
    currentContext: undefined,
  };
  for (const file of files) loadOneFile(file, readKubeconfigFile(file, explicit), merged);
  return merged;
}

function decodeB64(v: string | undefined | null): Buffer | undefined {
  if (!v) return undefined;
  return Buffer.from(v, "base64");
}

function parseExec(raw: unknown, dir: string): ExecConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isRecord(raw)) throw new KproxyError("KUBECONFIG_INVALID", "user exec must be a mapping");
  const command = optString(raw.command);
  if (!command) throw new KproxyError("KUBECONFIG_INVALID", "exec plugin has no command");
  const apiVersion = optString(raw.apiVersion) ?? "";
  const args = Array.isArray(raw.args) ? raw.args.map((a) => String(a)) : [];
  const env: Array<{ name: string; value: string }> = [];
  if (Array.isArray(raw.env)) {
    for (const e of raw.env) {
      if (isRecord(e) && typeof e.name === "string") env.push({ name: e.name, value: String(e.value ?? "") });
    }
  }
  return {
    apiVersion,
    // client-go resolves a relative command containing a path separator against the kubeconfig's directory
    command: command.includes("/") && !path.isAbsolute(command) ? path.resolve(dir, command) : command,
    args,
    env,
    provideClusterInfo: raw.provideClusterInfo === true,
    interactiveMode: optString(raw.interactiveMode),
    installHint: optString(raw.installHint),
  };
}

function emptyUser(): ResolvedUser {
  return {
    token: undefined,
    tokenFile: undefined,
    username: undefined,
    password: undefined,
    certFile: undefined,
    certData: undefined,
    keyFile: undefined,
    keyData: undefined,
    exec: undefined,
    impersonateUser: undefined,
    impersonateGroups: [],
    impersonateUid: undefined,
    impersonateExtra: {},
    authProvider: undefined,
  };
}

function emptyCluster(server: string): ResolvedCluster {
  return {
    server,
    caFile: undefined,
    caData: undefined,
    insecure: false,
    tlsServerName: undefined,
    proxyUrl: undefined,
    disableCompression: false,
    execExtension: undefined,
  };
}

/** Command-line overrides on top of the kubeconfig's cluster and user (clientcmd's ConfigOverrides). */
function applyOverrides(cluster: ResolvedCluster, user: ResolvedUser, o: ConnectionOptions): void {
  if (o.server) cluster.server = o.server;
  if (o.certificateAuthority) {
    cluster.caFile = path.resolve(o.certificateAuthority);
    cluster.caData = undefined;
  }
  if (o.insecureSkipTlsVerify !== undefined) cluster.insecure = o.insecureSkipTlsVerify;
  if (o.tlsServerName) cluster.tlsServerName = o.tlsServerName;
  if (o.disableCompression !== undefined) cluster.disableCompression = o.disableCompression;
  if (o.token) {
    user.token = o.token;
    user.tokenFile = undefined;
  }
  if (o.username) user.username = o.username;
  if (o.password) user.password = o.password;
  if (o.clientCertificate) {
    user.certFile = path.resolve(o.clientCertificate);
    user.certData = undefined;
  }
  if (o.clientKey) {
    user.keyFile = path.resolve(o.clientKey);
    user.keyData = undefined;
  }
  if (o.as) user.impersonateUser = o.as;
  if (o.asGroups && o.asGroups.length > 0) user.impersonateGroups = [...o.asGroups];
  if (o.asUid) user.impersonateUid = o.asUid;
}

function clusterForClientNode(name: string, c: ResolvedCluster): Cluster {
  return {
    name,
    server: c.server,
    skipTLSVerify: c.insecure,
    ...(c.caData ? { caData: c.caData.toString("base64") } : {}),
    ...(c.caFile ? { caFile: c.caFile } : {}),
    ...(c.tlsServerName ? { tlsServerName: c.tlsServerName } : {}),
    ...(c.proxyUrl ? { proxyUrl: c.proxyUrl } : {}),
  };
}

function userForClientNode(name: string, u: ResolvedUser, base: User | undefined): User {
  let token = u.token;
  if (!token && u.tokenFile) {
    try {
      token = readFileSync(u.tokenFile, "utf8").trim();
    } catch {
      token = undefined;
    }
  }
  return {
    name,
    ...(base?.authProvider ? { authProvider: base.authProvider } : {}),
    ...(base?.exec ? { exec: base.exec } : {}),
    ...(u.certData ? { certData: u.certData.toString("base64") } : {}),
    ...(u.certFile ? { certFile: u.certFile } : {}),
    ...(u.keyData ? { keyData: u.keyData.toString("base64") } : {}),
    ...(u.keyFile ? { keyFile: u.keyFile } : {}),
    ...(token ? { token } : {}),
    ...(u.username ? { username: u.username } : {}),
    ...(u.password ? { password: u.password } : {}),
    ...(u.impersonateUser ? { impersonateUser: u.impersonateUser } : {}),
  };
}

function inClusterPossible(input: LoadInput): boolean {
  if (!input.env.KUBERNETES_SERVICE_HOST || !input.env.KUBERNETES_SERVICE_PORT) return false;
  try {
    return !statSync(path.join(input.inClusterDir, "token")).isDirectory();
  } catch {
    return false;
  }
}

const requireFromHere = createRequire(import.meta.url);

/**
 * A function that builds the client-node KubeConfig on its first call (and returns the same one
 * after). client-node is ESM; Node ≥ 22.12 loads it synchronously with require().
 */
function buildKubeConfig(
  contexts: Context[],
  clusters: Cluster[],
  users: User[],
  currentContext: string,
): () => KubeConfig {
  let kc: KubeConfig | undefined;
  return () => {
    if (kc === undefined) {
      const clientNode = requireFromHere(
        "@kubernetes/client-node",
      ) as typeof import("@kubernetes/client-node");
      kc = new clientNode.KubeConfig();
      kc.loadFromOptions({ clusters, users, contexts, currentContext });
    }
    return kc;
  };
}

/** Resolves where the API server is and the credentials to use, like kubectl (see README). */
export function resolveConfig(input: LoadInput): ResolvedConfig {
  const merged = loadMerged(input);
  const contextName = input.context ?? merged.currentContext;
  let context: Context | undefined;
  if (contextName !== undefined) {
    context = merged.contexts.get(contextName);
    if (!context) {
      throw new KproxyError(
        "CONTEXT_NOT_FOUND",
        `context ${JSON.stringify(contextName)} does not exist` +
          (input.context ? "" : " (it is the current-context of the kubeconfig)"),
        { details: { context: contextName, files: merged.files } },
      );
    }
  }
  const clusterName = input.cluster ?? context?.cluster;
  const userName = input.user ?? context?.user;
  const fromFiles = context !== undefined || input.cluster !== undefined;

  if (!fromFiles && !input.server) {
    if (inClusterPossible(input)) return resolveInCluster(input);
    const server = input.env.KUBERNETES_MASTER || DEFAULT_SERVER;
    const cluster = emptyCluster(server);
    const user = emptyUser();
    applyOverrides(cluster, user, input);
    if (input.user !== undefined) mergeUserFromFiles(merged, input.user, user, true);
    const kubeConfig = buildKubeConfig(
      [{ name: "default", cluster: "default", user: "default" }],
      [clusterForClientNode("default", cluster)],
      [userForClientNode("default", user, undefined)],
      "default",
    );
    return {
      source: "default",
      contextName: undefined,
      namespace: input.namespace ?? "default",
      requestTimeoutMs: input.requestTimeoutMs,
      cluster,
      user,
      kubeConfig,
    };
  }

  const cluster = emptyCluster("");
  if (clusterName !== undefined) {
    const base = merged.clusters.get(clusterName);
    if (!base) {
      const via = input.cluster ? "" : ` (referenced by context ${JSON.stringify(contextName)})`;
      throw new KproxyError(
        "CLUSTER_NOT_FOUND",
        `cluster ${JSON.stringify(clusterName)} does not exist${via}`,
        {
          details: { cluster: clusterName },
        },
      );
    }
    const extras = merged.clusterExtras.get(clusterName);
    cluster.server = extras?.hasServer === false ? "" : base.server;
    cluster.caFile = base.caFile || undefined;
    cluster.caData = decodeB64(base.caData);
    cluster.insecure = base.skipTLSVerify === true;
    cluster.tlsServerName = base.tlsServerName || undefined;
    cluster.proxyUrl = base.proxyUrl || undefined;
    cluster.disableCompression = extras?.disableCompression ?? false;
    cluster.execExtension = extras?.execExtension;
  }
  const user = emptyUser();
  if (userName !== undefined) {
    mergeUserFromFiles(merged, userName, user, input.user !== undefined, input.logger, contextName);
  }
  applyOverrides(cluster, user, input);
  if (!cluster.server) {
    throw new KproxyError(
      "NO_SERVER",
      clusterName
        ? `no server found for cluster ${JSON.stringify(clusterName)}`
        : "no API server: set --server or a kubeconfig context",
      { details: { cluster: clusterName } },
    );
  }

  const kcClusterName = clusterName ?? "flags";
  const kcUserName = userName ?? "flags";
  const kcContextName = contextName ?? "flags";
  const clusters = [...merged.clusters.values()].filter((c) => c.name !== kcClusterName);
  clusters.unshift(clusterForClientNode(kcClusterName, cluster));
  const users = [...merged.users.values()].filter((u) => u.name !== kcUserName);
  users.unshift(userForClientNode(kcUserName, user, merged.users.get(kcUserName)));
  const contexts = [...merged.contexts.values()].filter((c) => c.name !== kcContextName);
  const namespace = input.namespace ?? context?.namespace ?? "default";
  contexts.unshift({ name: kcContextName, cluster: kcClusterName, user: kcUserName, namespace });
  return {
    source: fromFiles ? "kubeconfig" : "flags",
    contextName,
    namespace,
    requestTimeoutMs: input.requestTimeoutMs,
    cluster,
    user,
    kubeConfig: buildKubeConfig(contexts, clusters, users, kcContextName),
  };
}

function mergeUserFromFiles(
  merged: Merged,
  userName: string,
  user: ResolvedUser,
  required: boolean,
  logger?: Logger,
  contextName?: string,
): void {
  const base = merged.users.get(userName);
  if (!base) {
    if (required) {
      throw new KproxyError("USER_NOT_FOUND", `user ${JSON.stringify(userName)} does not exist`, {
        details: { user: userName },
      });
    }
    // kubectl treats a context's unknown user as "no credentials"
    logger?.warn("kubeconfig context references an unknown user; using no credentials", {
      context: contextName,
      user: userName,
    });
    return;
  }
  const extras = merged.userExtras.get(userName);
  user.token = base.token || undefined;
  user.tokenFile = user.token ? undefined : extras?.tokenFile;
  user.username = base.username || undefined;
  user.password = base.password || undefined;
  user.certFile = base.certFile || undefined;
  user.certData = decodeB64(base.certData);
  user.keyFile = base.keyFile || undefined;
  user.keyData = decodeB64(base.keyData);
  user.exec = parseExec(base.exec, extras?.execDir ?? process.cwd());
  user.impersonateUser = base.impersonateUser || undefined;
  user.impersonateGroups = extras?.asGroups ?? [];
  user.impersonateUid = extras?.asUid;
  user.impersonateExtra = extras?.asExtra ?? {};
  const provider: unknown = base.authProvider;
  user.authProvider =
    typeof provider === "object" && provider !== null
      ? String((provider as { name?: unknown }).name ?? "unknown")
      : undefined;
}

function resolveInCluster(input: LoadInput): ResolvedConfig {
  const host = input.env.KUBERNETES_SERVICE_HOST ?? "";
  const port = input.env.KUBERNETES_SERVICE_PORT ?? "";
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const cluster = emptyCluster(server);
  const caFile = path.join(input.inClusterDir, "ca.crt");
  try {
    statSync(caFile);
    cluster.caFile = caFile;
  } catch {
    input.logger.warn("in-cluster CA file is missing; using the system trust store", { file: caFile });
  }
  const user = emptyUser();
  user.tokenFile = path.join(input.inClusterDir, "token");
  applyOverrides(cluster, user, input);
  let namespace = input.namespace ?? optString(input.env.POD_NAMESPACE);
  if (namespace === undefined) {
    try {
      namespace = optString(readFileSync(path.join(input.inClusterDir, "namespace"), "utf8").trim());
    } catch {
      namespace = undefined;
    }
  }
  const kubeConfig = buildKubeConfig(
    [{ name: "inClusterContext", cluster: "inCluster", user: "inClusterUser" }],
    [clusterForClientNode("inCluster", cluster)],
    [userForClientNode("inClusterUser", user, undefined)],
    "inClusterContext",
  );
  return {
    source: "in-cluster",
    contextName: undefined,
    namespace: namespace ?? "default",
    requestTimeoutMs: input.requestTimeoutMs,
    cluster,
    user,
    kubeConfig,
  };
}
