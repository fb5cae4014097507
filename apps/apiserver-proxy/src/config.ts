import { balanceFlag, parseStrategyName, type StrategyName } from "@kproxy/balancer";
import type { FlagSpec, FlagValues } from "@kproxy/core";
import { KproxyError } from "@kproxy/core";
import { DEFAULT_PREFERRED_ADDRESS_TYPES } from "@kproxy/endpoints";
import { CONNECTION_FLAGS } from "@kproxy/kubeconfig";

export type AuthorizationMode = "Webhook" | "AlwaysAllow";

/** The flags of the proxy itself (the kubeconfig flags come from @kproxy/kubeconfig). */
export const PROXY_FLAGS: readonly FlagSpec[] = Object.freeze([
  {
    name: "bind-address",
    type: "string",
    default: "0.0.0.0",
    metavar: "ip",
    help: "The IP address on which to listen for the --secure-port port.",
  },
  {
    name: "secure-port",
    type: "int",
    default: 8443,
    help: "The port on which to serve HTTPS (0 picks a free one).",
  },
  {
    name: "tls-cert-file",
    type: "string",
    metavar: "path",
    help: "File containing the x509 certificate (and intermediates) for HTTPS. Required.",
  },
  {
    name: "tls-private-key-file",
    type: "string",
    metavar: "path",
    help: "File containing the x509 private key matching --tls-cert-file. Required.",
  },
  {
    name: "client-ca-file",
    type: "string",
    metavar: "path",
    help: "If set, any request presenting a client certificate signed by one of the authorities in this file is authenticated with the certificate's CommonName (user) and Organizations (groups).",
  },
  {
    name: "anonymous-auth",
    type: "bool",
    default: false,
    help: "Treat requests without credentials as system:anonymous (then authorized like any user) instead of answering 401.",
  },
  {
    name: "authorization-mode",
    type: "string",
    default: "Webhook",
    help: "Webhook: every request is checked with a SubjectAccessReview. AlwaysAllow: no authorization (development only; logs a warning).",
  },
  {
    name: "authentication-token-webhook-cache-ttl",
    type: "duration",
    default: 120_000,
    help: "How long to cache the TokenReview answer for a bearer token.",
  },
  {
    name: "authorization-webhook-cache-authorized-ttl",
    type: "duration",
    default: 300_000,
    help: "How long to cache an 'allowed' SubjectAccessReview answer.",
  },
  {
    name: "authorization-webhook-cache-unauthorized-ttl",
    type: "duration",
    default: 30_000,
    help: "How long to cache a 'denied' SubjectAccessReview answer.",
  },
  {
    name: "admin-bind-address",
    type: "string",
    default: "0.0.0.0",
    metavar: "ip",
    help: "The IP address of the health and metrics listener (/healthz, /readyz, /metrics).",
  },
  {
    name: "admin-port",
    type: "int",
    default: 8081,
    help: "The port of the health and metrics listener (plain HTTP, apart from the proxy port); 0 picks a free one, -1 disables it.",
  },
  balanceFlag("random"),
  {
    name: "kubelet-preferred-address-types",
    type: "stringSlice",
    default: [...DEFAULT_PREFERRED_ADDRESS_TYPES],
    help: "List of the preferred NodeAddressTypes to use for node proxy connections.",
  },
  {
    name: "kubelet-client-certificate",
    type: "string",
    metavar: "path",
    help: "Client certificate for connections to the kubelet port.",
  },
  {
    name: "kubelet-client-key",
    type: "string",
    metavar: "path",
    help: "Client key for connections to the kubelet port.",
  },
  {
    name: "kubelet-certificate-authority",
    type: "string",
    metavar: "path",
    help: "CA to verify kubelet serving certificates with (not verified when unset, as the API server).",
  },
  {
    name: "rewrite-html",
    type: "bool",
    default: true,
    help: "Rewrite the links of text/html responses to go through the proxy, as the API server does.",
  },
  {
    name: "outlier-ejection-time",
    type: "duration",
    default: 30_000,
    help: "How long an endpoint that refused or reset a connection is left out of a Service's balancing (grows with repeated ejections).",
  },
  {
    name: "outlier-consecutive-failures",
    type: "int",
    default: 1,
    help: "Consecutive connection failures that eject a Service endpoint.",
  },
  {
    name: "max-ejection-percent",
    type: "int",
    default: 50,
    help: "At most this percent of a Service's endpoints are ejected at once (one may always be).",
  },
  {
    name: "access-log",
    type: "string",
    default: "-",
    metavar: "path",
    help: 'Access log, one JSON line per request, secrets redacted: "-" for stderr, a file path, or "" for none.',
  },
  {
    name: "sync-timeout",
    type: "duration",
    default: 60_000,
    help: "How long to wait at start for the Services, EndpointSlices, Pods and Nodes to be listed (the proxy answers 503 and /readyz fails until then).",
  },
  {
    name: "shutdown-grace-period",
    type: "duration",
    default: 10_000,
    help: "On SIGTERM, how long in-flight requests may take to finish.",
  },
  {
    name: "dev-allow-loopback-endpoints",
    type: "bool",
    default: false,
    help: "DEVELOPMENT ONLY, INSECURE: allow pod, endpoint and node addresses on the loopback network (127.0.0.0/8, ::1). Logs a warning at start.",
  },
  {
    name: "workers",
    type: "int",
    default: 1,
    help: "Processes serving the --secure-port together (SO_REUSEPORT; needs a fixed port). The first one runs the admin listener for all.",
  },
  { name: "v", short: "v", type: "int", default: 0, help: "number for the log level verbosity" },
]);

export const ALL_FLAGS: readonly FlagSpec[] = Object.freeze([...PROXY_FLAGS, ...CONNECTION_FLAGS]);

export interface ApiserverProxyConfig {
  bindAddress: string;
  securePort: number;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  clientCaFile: string | undefined;
  anonymousAuth: boolean;
  authorizationMode: AuthorizationMode;
  tokenCacheTtlMs: number;
  authorizedTtlMs: number;
  unauthorizedTtlMs: number;
  adminBindAddress: string;
  /** -1 disables the admin listener. */
  adminPort: number;
  balance: StrategyName;
  preferredAddressTypes: string[];
  kubeletClientCertificate: string | undefined;
  kubeletClientKey: string | undefined;
  kubeletCertificateAuthority: string | undefined;
  rewriteHtml: boolean;
  ejectionTimeMs: number;
  consecutiveFailures: number;
  maxEjectionPercent: number;
  accessLog: string;
  syncTimeoutMs: number;
  shutdownGraceMs: number;
  devAllowLoopbackEndpoints: boolean;
  workers: number;
  verbosity: number;
}

function invalid(message: string): KproxyError {
  return new KproxyError("FLAG_INVALID", message);
}

function str(flags: FlagValues, name: string): string | undefined {
  const v = flags.values[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(flags: FlagValues, name: string): number {
  return flags.values[name] as number;
}

function port(flags: FlagValues, name: string, allowDisable: boolean): number {
  const p = num(flags, name);
  if (allowDisable && p === -1) return p;
  if (!Number.isInteger(p) || p < 0 || p > 65535)
    throw invalid(`--${name} must be a port number (0-65535), got ${p}`);
  return p;
}

/** Validates the parsed flags; throws FLAG_INVALID with a message naming the flag. */
export function configFromFlags(flags: FlagValues): ApiserverProxyConfig {
  const tlsCertFile = str(flags, "tls-cert-file");
  const tlsPrivateKeyFile = str(flags, "tls-private-key-file");
  if (tlsCertFile === undefined || tlsPrivateKeyFile === undefined)
    throw invalid("--tls-cert-file and --tls-private-key-file are required: the proxy only serves HTTPS");
  const mode = str(flags, "authorization-mode") ?? "Webhook";
  if (mode !== "Webhook" && mode !== "AlwaysAllow")
    throw invalid(`--authorization-mode must be Webhook or AlwaysAllow, got ${JSON.stringify(mode)}`);
  let balance: StrategyName;
  try {
    balance = parseStrategyName(str(flags, "balance") ?? "random");
  } catch (err) {
    throw invalid(`--balance: ${(err as Error).message}`);
  }
  const types = (flags.values["kubelet-preferred-address-types"] as string[]).filter((t) => t !== "");
  const known = new Set(DEFAULT_PREFERRED_ADDRESS_TYPES);
  for (const t of types)
    if (!known.has(t))
      throw invalid(
        `--kubelet-preferred-address-types: unknown address type ${JSON.stringify(t)} (want ${[...known].join(", ")})`,
      );
  if (types.length === 0) throw invalid("--kubelet-preferred-address-types must not be empty");
  const cert = str(flags, "kubelet-client-certificate");
  const key = str(flags, "kubelet-client-key");
  if ((cert === undefined) !== (key === undefined))
    throw invalid("--kubelet-client-certificate and --kubelet-client-key go together");
  const consecutiveFailures = num(flags, "outlier-consecutive-failures");
  if (!Number.isInteger(consecutiveFailures) || consecutiveFailures < 1)
    throw invalid("--outlier-consecutive-failures must be at least 1");
  const maxEjectionPercent = num(flags, "max-ejection-percent");
  if (!Number.isInteger(maxEjectionPercent) || maxEjectionPercent < 0 || maxEjectionPercent > 100)
    throw invalid("--max-ejection-percent must be between 0 and 100");
  for (const name of [
    "authentication-token-webhook-cache-ttl",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "outlier-ejection-time",
    "sync-timeout",
    "shutdown-grace-period",
  ])
    if (num(flags, name) < 0) throw invalid(`--${name} must not be negative`);
  const workers = num(flags, "workers");
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw invalid("--workers must be between 1 and 64");
  if (workers > 1 && num(flags, "secure-port") === 0) throw invalid("--workers needs a fixed --secure-port");
  return {
    bindAddress: str(flags, "bind-address") ?? "0.0.0.0",
    securePort: port(flags, "secure-port", false),
    tlsCertFile,
    tlsPrivateKeyFile,
    clientCaFile: str(flags, "client-ca-file"),
    anonymousAuth: flags.values["anonymous-auth"] === true,
    authorizationMode: mode,
    tokenCacheTtlMs: num(flags, "authentication-token-webhook-cache-ttl"),
    authorizedTtlMs: num(flags, "authorization-webhook-cache-authorized-ttl"),
    unauthorizedTtlMs: num(flags, "authorization-webhook-cache-unauthorized-ttl"),
    adminBindAddress: str(flags, "admin-bind-address") ?? "0.0.0.0",
    adminPort: port(flags, "admin-port", true),
    balance,
    preferredAddressTypes: types,
    kubeletClientCertificate: cert,
    kubeletClientKey: key,
    kubeletCertificateAuthority: str(flags, "kubelet-certificate-authority"),
    rewriteHtml: flags.values["rewrite-html"] !== false,
    ejectionTimeMs: num(flags, "outlier-ejection-time"),
    consecutiveFailures,
    maxEjectionPercent,
    accessLog: typeof flags.values["access-log"] === "string" ? (flags.values["access-log"] as string) : "-",
    syncTimeoutMs: num(flags, "sync-timeout"),
    shutdownGraceMs: num(flags, "shutdown-grace-period"),
    devAllowLoopbackEndpoints: flags.values["dev-allow-loopback-endpoints"] === true,
    workers,
    verbosity: num(flags, "v"),
  };
}
