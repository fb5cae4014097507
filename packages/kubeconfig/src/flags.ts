import type { FlagSpec, FlagValue, FlagValues } from "@kproxy/core";
import { KproxyError } from "@kproxy/core";

/** kubectl's global connection flags as one options type. */
export interface ConnectionOptions {
  kubeconfig?: string;
  context?: string;
  cluster?: string;
  user?: string;
  server?: string;
  token?: string;
  username?: string;
  password?: string;
  certificateAuthority?: string;
  clientCertificate?: string;
  clientKey?: string;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  as?: string;
  asGroups?: string[];
  asUid?: string;
  namespace?: string;
  requestTimeoutMs?: number;
  disableCompression?: boolean;
}

/** kubectl's global connection flags, named and documented as `kubectl options` prints them. */
export const CONNECTION_FLAGS: readonly FlagSpec[] = Object.freeze([
  {
    name: "kubeconfig",
    type: "string",
    metavar: "path",
    help: "Path to the kubeconfig file to use for CLI requests.",
  },
  { name: "context", type: "string", metavar: "name", help: "The name of the kubeconfig context to use" },
  { name: "cluster", type: "string", metavar: "name", help: "The name of the kubeconfig cluster to use" },
  { name: "user", type: "string", metavar: "name", help: "The name of the kubeconfig user to use" },
  {
    name: "server",
    short: "s",
    type: "string",
    metavar: "url",
    help: "The address and port of the Kubernetes API server",
  },
  { name: "token", type: "string", help: "Bearer token for authentication to the API server" },
  { name: "username", type: "string", help: "Username for basic authentication to the API server" },
  { name: "password", type: "string", help: "Password for basic authentication to the API server" },
  {
    name: "certificate-authority",
    type: "string",
    metavar: "path",
    help: "Path to a cert file for the certificate authority",
  },
  {
    name: "client-certificate",
    type: "string",
    metavar: "path",
    help: "Path to a client certificate file for TLS",
  },
  { name: "client-key", type: "string", metavar: "path", help: "Path to a client key file for TLS" },
  {
    name: "insecure-skip-tls-verify",
    type: "bool",
    default: false,
    help: "If true, the server's certificate will not be checked for validity. This will make your HTTPS connections insecure",
  },
  {
    name: "tls-server-name",
    type: "string",
    help: "Server name to use for server certificate validation. If it is not provided, the hostname used to contact the server is used",
  },
  {
    name: "as",
    type: "string",
    help: "Username to impersonate for the operation. User could be a regular user or a service account in a namespace.",
  },
  {
    name: "as-group",
    type: "stringArray",
    help: "Group to impersonate for the operation, this flag can be repeated to specify multiple groups.",
  },
  { name: "as-uid", type: "string", help: "UID to impersonate for the operation." },
  {
    name: "namespace",
    short: "n",
    type: "string",
    help: "If present, the namespace scope for this CLI request",
  },
  {
    name: "request-timeout",
    type: "duration",
    default: 0,
    help: "The length of time to wait before giving up on a single server request. Non-zero values should contain a corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.",
  },
  {
    name: "disable-compression",
    type: "bool",
    default: false,
    help: "If true, opt-out of response compression for all requests to the server",
  },
] satisfies FlagSpec[]);

function str(v: FlagValue | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new KproxyError("INVALID_FLAG", `flag --${name} must be a string`);
  return v === "" ? undefined : v;
}

function bool(v: FlagValue | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new KproxyError("INVALID_FLAG", `flag --${name} must be a boolean`);
  return v;
}

/**
 * Turns parsed CONNECTION_FLAGS into ConnectionOptions. Empty strings mean "not set", like kubectl.
 * Booleans are only carried when given on the command line (so a kubeconfig's
 * insecure-skip-tls-verify is not overridden by the flag's default).
 */
export function connectionOptionsFromFlags(flags: FlagValues): ConnectionOptions {
  const v = flags.values;
  const out: ConnectionOptions = {};
  const strings: Array<[keyof ConnectionOptions, string]> = [
    ["kubeconfig", "kubeconfig"],
    ["context", "context"],
    ["cluster", "cluster"],
    ["user", "user"],
    ["server", "server"],
    ["token", "token"],
    ["username", "username"],
    ["password", "password"],
    ["certificateAuthority", "certificate-authority"],
    ["clientCertificate", "client-certificate"],
    ["clientKey", "client-key"],
    ["tlsServerName", "tls-server-name"],
    ["as", "as"],
    ["asUid", "as-uid"],
    ["namespace", "namespace"],
  ];
  const target = out as Record<string, unknown>;
  for (const [key, flag] of strings) {
    const s = str(v[flag], flag);
    if (s !== undefined) target[key] = s;
  }
  const groups = v["as-group"];
  if (groups !== undefined) {
    if (!Array.isArray(groups)) throw new KproxyError("INVALID_FLAG", "flag --as-group must be a list");
    if (groups.length > 0) out.asGroups = [...groups];
  }
  const insecure = bool(v["insecure-skip-tls-verify"], "insecure-skip-tls-verify");
  if (insecure !== undefined && (insecure || flags.changed.has("insecure-skip-tls-verify"))) {
    out.insecureSkipTlsVerify = insecure;
  }
  const disable = bool(v["disable-compression"], "disable-compression");
  if (disable !== undefined && (disable || flags.changed.has("disable-compression"))) {
    out.disableCompression = disable;
  }
  const timeout = v["request-timeout"];
  if (timeout !== undefined) {
    if (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0) {
      throw new KproxyError("INVALID_FLAG", "flag --request-timeout must be a non-negative duration");
    }
    if (timeout > 0) out.requestTimeoutMs = timeout;
  }
  return out;
}
