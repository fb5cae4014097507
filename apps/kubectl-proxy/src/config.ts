import { readFileSync } from "node:fs";
import { type FlagSpec, type FlagValues, KproxyError } from "@kproxy/core";
import { CONNECTION_FLAGS } from "@kproxy/kubeconfig";
import { makeRegexpArray } from "./regex.js";
import type { FilterRules } from "./routing.js";

export const DEFAULT_PORT = 8001;
export const DEFAULT_ACCEPT_PATHS = "^.*";
export const DEFAULT_REJECT_PATHS = "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach";
export const DEFAULT_ACCEPT_HOSTS = "^localhost$,^127\\.0\\.0\\.1$,^\\[::1\\]$";
export const DEFAULT_REJECT_METHODS = "^$";

/** kubectl proxy's own flags, with kubectl's names, shorthands, defaults and help. */
export const PROXY_FLAGS: readonly FlagSpec[] = Object.freeze([
  {
    name: "accept-hosts",
    type: "string",
    default: DEFAULT_ACCEPT_HOSTS,
    help: "Regular expression for hosts that the proxy should accept.",
  },
  {
    name: "accept-paths",
    type: "string",
    default: DEFAULT_ACCEPT_PATHS,
    help: "Regular expression for paths that the proxy should accept.",
  },
  { name: "address", type: "string", default: "127.0.0.1", help: "The IP address on which to serve on." },
  { name: "api-prefix", type: "string", default: "/", help: "Prefix to serve the proxied API under." },
  {
    name: "append-server-path",
    type: "bool",
    default: false,
    help: "If true, enables automatic path appending of the kube context server path to each request.",
  },
  {
    name: "disable-filter",
    type: "bool",
    default: false,
    help: "If true, disable request filtering in the proxy. This is dangerous, and can leave you vulnerable to XSRF attacks, when used with an accessible port.",
  },
  {
    name: "keepalive",
    type: "duration",
    default: 0,
    help: "keepalive specifies the keep-alive period for an active network connection (exec, attach, port-forward). 0 uses the 15s default; a negative value disables keepalive.",
  },
  {
    name: "port",
    short: "p",
    type: "int",
    default: DEFAULT_PORT,
    help: "The port on which to run the proxy. Set to 0 to pick a random port.",
  },
  {
    name: "reject-methods",
    type: "string",
    default: DEFAULT_REJECT_METHODS,
    help: "Regular expression for HTTP methods that the proxy should reject (example --reject-methods='POST,PUT,PATCH'). ",
  },
  {
    name: "reject-paths",
    type: "string",
    default: DEFAULT_REJECT_PATHS,
    help: "Regular expression for paths that the proxy should reject. Paths specified here will be rejected even accepted by --accept-paths.",
  },
  {
    name: "unix-socket",
    short: "u",
    type: "string",
    default: "",
    help: "Unix socket on which to run the proxy.",
  },
  {
    name: "www",
    short: "w",
    type: "string",
    default: "",
    help: "Also serve static files from the given directory under the specified prefix.",
  },
  {
    name: "www-prefix",
    short: "P",
    type: "string",
    default: "/static/",
    help: "Prefix to serve static files under, if static file directory is specified.",
  },
  // Beyond kubectl.
  {
    name: "ipv6-host-brackets",
    type: "bool",
    default: false,
    help: "kproxy: match a bracketed IPv6 Host with a port as [addr] (so [::1]:8001 passes the default --accept-hosts). kubectl strips the brackets and rejects it.",
  },
  {
    name: "tls-cert-file",
    type: "string",
    default: "",
    help: "kproxy: serve HTTPS with this PEM certificate (needs --tls-private-key-file).",
  },
  {
    name: "tls-private-key-file",
    type: "string",
    default: "",
    help: "kproxy: PEM private key for --tls-cert-file.",
  },
  {
    name: "access-log",
    type: "string",
    default: "",
    help: "kproxy: write one JSON line per request to this file ('-' for stderr). Credentials are never logged.",
  },
  {
    name: "shutdown-timeout",
    type: "duration",
    default: 10_000,
    help: "kproxy: on SIGTERM/SIGINT, how long in-flight requests may take to finish.",
  },
  {
    name: "workers",
    type: "int",
    default: 0,
    help: "kproxy: threads serving the port (SO_REUSEPORT, the kernel balances connections); 0 picks min(2, available CPUs), 1 serves from the main thread. A Unix socket is always served by one thread.",
  },
  { name: "v", short: "v", type: "int", default: 0, help: "number for the log level verbosity" },
] satisfies FlagSpec[]);

/** Every flag kubectl-proxy accepts: its own plus kubectl's global connection flags. */
export const ALL_FLAGS: readonly FlagSpec[] = Object.freeze([...PROXY_FLAGS, ...CONNECTION_FLAGS]);

/** The proxy settings from parsed flags (connection flags are handled by @kproxy/kubeconfig). */
export interface ProxyConfig {
  port: number;
  address: string;
  unixSocket: string | undefined;
  apiPrefix: string;
  www: string | undefined;
  wwwPrefix: string;
  filter: FilterRules | undefined;
  keepaliveMs: number;
  appendServerPath: boolean;
  tls: { cert: Buffer; key: Buffer } | undefined;
  accessLog: string | undefined;
  shutdownTimeoutMs: number;
  /** --workers: 0 = automatic. */
  workers: number;
  verbosity: number;
  /** Warnings kubectl prints on stderr at startup. */
  warnings: string[];
}

function s(flags: FlagValues, name: string): string {
  const v = flags.values[name];
  return typeof v === "string" ? v : "";
}
function n(flags: FlagValues, name: string): number {
  const v = flags.values[name];
  return typeof v === "number" ? v : 0;
}
function b(flags: FlagValues, name: string): boolean {
  return flags.values[name] === true;
}

/**
 * Validates the proxy flags as kubectl does. Throws KproxyError: FLAG_INVALID (exit 1) or
 * REGEX_INVALID (exit 255).
 */
export function proxyConfigFromFlags(flags: FlagValues): ProxyConfig {
  if (flags.args.length > 0) {
    throw new KproxyError("FLAG_INVALID", `unknown command "${flags.args[0]}" for "kubectl-proxy"`);
  }
  const port = n(flags, "port");
  const unixSocket = s(flags, "unix-socket");
  if (unixSocket !== "" && port !== DEFAULT_PORT) {
    throw new KproxyError("FLAG_INVALID", "cannot set --unix-socket and --port at the same time");
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new KproxyError("FLAG_INVALID", `invalid port ${port}: must be between 0 and 65535`);
  }
  const workers = n(flags, "workers");
  if (!Number.isInteger(workers) || workers < 0 || workers > 256) {
    throw new KproxyError("FLAG_INVALID", `invalid --workers ${workers}: must be between 0 and 256`);
  }
  const warnings: string[] = [];
  const disableFilter = b(flags, "disable-filter");
  let filter: FilterRules | undefined;
  if (disableFilter) {
    if (unixSocket === "") {
      warnings.push("Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious");
    }
  } else {
    filter = {
      acceptPaths: makeRegexpArray(s(flags, "accept-paths")),
      rejectPaths: makeRegexpArray(s(flags, "reject-paths")),
      acceptHosts: makeRegexpArray(s(flags, "accept-hosts")),
      rejectMethods: makeRegexpArray(s(flags, "reject-methods")),
      keepIPv6Brackets: b(flags, "ipv6-host-brackets"),
    };
  }
  const certFile = s(flags, "tls-cert-file");
  const keyFile = s(flags, "tls-private-key-file");
  let tls: ProxyConfig["tls"];
  if ((certFile === "") !== (keyFile === "")) {
    throw new KproxyError(
      "FLAG_INVALID",
      "--tls-cert-file and --tls-private-key-file must be given together",
    );
  }
  if (certFile !== "") {
    try {
      tls = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    } catch (err) {
      throw new KproxyError("FLAG_INVALID", `cannot read TLS certificate or key: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const www = s(flags, "www");
  return {
    port,
    address: s(flags, "address"),
    unixSocket: unixSocket === "" ? undefined : unixSocket,
    apiPrefix: s(flags, "api-prefix"),
    www: www === "" ? undefined : www,
    wwwPrefix: s(flags, "www-prefix"),
    filter,
    keepaliveMs: n(flags, "keepalive"),
    appendServerPath: b(flags, "append-server-path"),
    tls,
    accessLog: s(flags, "access-log") || undefined,
    shutdownTimeoutMs: n(flags, "shutdown-timeout"),
    workers,
    verbosity: n(flags, "v"),
    warnings,
  };
}
