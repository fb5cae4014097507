/** Kubeconfig text for a test API server (JSON, which is valid YAML). */
import type { KeyPair } from "./pki.js";

export interface KubeconfigOptions {
  /** Name of the user entry; default "admin" (or the client cert's user when given). */
  user?: string;
  /** Bearer token; default the server's admin token (unless a client certificate is given). */
  token?: string;
  /** Authenticate with this client certificate instead of a token. */
  clientCert?: KeyPair;
  /** Default namespace of the context. */
  namespace?: string;
  /** Cluster and context name; default "kproxy-testkit". */
  clusterName?: string;
}

export function renderKubeconfig(
  server: { url: string; caPem: string | undefined; adminToken: string },
  opts: KubeconfigOptions = {},
): string {
  const name = opts.clusterName ?? "kproxy-testkit";
  const userName = opts.user ?? "admin";
  const cluster: Record<string, unknown> = { server: server.url };
  if (server.caPem) cluster["certificate-authority-data"] = Buffer.from(server.caPem).toString("base64");
  const user: Record<string, unknown> = {};
  if (opts.clientCert) {
    user["client-certificate-data"] = Buffer.from(opts.clientCert.certPem).toString("base64");
    user["client-key-data"] = Buffer.from(opts.clientCert.keyPem).toString("base64");
    if (opts.token) user.token = opts.token;
  } else user.token = opts.token ?? server.adminToken;
  const context: Record<string, unknown> = { cluster: name, user: userName };
  if (opts.namespace) context.namespace = opts.namespace;
  return `${JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name, cluster }],
      users: [{ name: userName, user }],
      contexts: [{ name, context }],
      "current-context": name,
      preferences: {},
    },
    null,
    2,
  )}\n`;
}
