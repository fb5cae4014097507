import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  type KeyPair,
  TestApiServer,
} from "@kproxy/testkit";
import { Agent, request } from "undici";
import { type ApiserverProxyOptions, type RunningApiserverProxy, startApiserverProxy } from "../src/index.js";

export interface Backend {
  server: Server;
  port: number;
  /** Requests seen: method, url, headers. */
  seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[];
  close(): Promise<void>;
}

/** An HTTP backend on 127.0.0.1 that records requests and answers with `handler` (default: echo JSON). */
export async function startBackend(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<Backend> {
  const seen: Backend["seen"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (handler) return handler(req, res, body);
      const text = JSON.stringify({ backend: name, method: req.method, url: req.url, body });
      res.writeHead(200, { "Content-Type": "application/json", "Access-Control-Allow-Origin": "*" });
      res.end(req.method === "HEAD" ? undefined : text);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A backend serving HTML for the rewriting tests: "/" a page with links (and a CORS header), "/page.gz"
 * a gzip-encoded page, "/redirect" a 302 to an absolute URL on the Host it was asked for.
 */
export function startHtmlBackend(): Promise<Backend> {
  return startBackend("html", (req, res) => {
    if (req.url === "/redirect") {
      res.writeHead(302, { Location: `http://${req.headers.host}/moved/here?x=1` });
      res.end();
    } else if (req.url === "/page.gz") {
      const body = gzipSync('<html><body><a href="/docs/">docs</a><img src="logo.png"></body></html>');
      res.writeHead(200, {
        "Content-Type": "text/html",
        "Content-Encoding": "gzip",
        "Content-Length": body.length,
      });
      res.end(body);
    } else {
      res.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Access-Control-Allow-Origin": "*",
      });
      res.end(
        '<html><head><link href="/style.css" rel="stylesheet"></head><body><a href="/docs/">docs</a><a href="https://example.com/x">ext</a></body></html>',
      );
    }
  });
}

export function pod(
  name: string,
  ip: string,
  port: number,
  labels: Record<string, string>,
  namespace = "default",
) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels },
    spec: { containers: [{ name: "c", image: "x", ports: [{ name: "http", containerPort: port }] }] },
    status: {
      phase: "Running",
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

export function service(name: string, selector: Record<string, string> | undefined, namespace = "default") {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: {
      ...(selector ? { selector } : {}),
      ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
    },
  };
}

/** A hand-written EndpointSlice (for selectorless services and hostile addresses). */
export function slice(serviceName: string, addresses: string[], port: number, namespace = "default") {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${serviceName}-manual`,
      namespace,
      labels: { "kubernetes.io/service-name": serviceName },
    },
    addressType: "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: "http", port, protocol: "TCP" }],
  };
}

export interface Cluster {
  api: TestApiServer;
  ca: CertificateAuthority;
  serverCert: KeyPair;
  dir: string;
  kubeconfigPath: string;
  /** Tokens the TokenReview accepts: token → user. */
  users: Map<string, { username: string; groups: string[] }>;
  /** SubjectAccessReview specs seen. */
  reviews: Record<string, unknown>[];
  /** Users allowed by the authorizer (username → allowed resources "services", "pods", "nodes"). */
  allow: Map<string, Set<string>>;
  startProxy(opts?: Partial<ApiserverProxyOptions>): Promise<RunningApiserverProxy>;
  client(opts?: { cert?: KeyPair }): Agent;
  close(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const ca = await createCertificateAuthority();
  const api = await TestApiServer.start({ ca });
  const serverCert = await ca.issueServerCert({ dnsNames: ["localhost"], ips: ["127.0.0.1"] });
  const dir = await mkdtemp(join(tmpdir(), "apiserver-proxy-test-"));
  const kubeconfigPath = join(dir, "kubeconfig");
  await api.writeKubeconfig(kubeconfigPath);
  const users = new Map<string, { username: string; groups: string[] }>();
  const reviews: Record<string, unknown>[] = [];
  const allow = new Map<string, Set<string>>();
  api.setTokenReview((token) => {
    const u = users.get(token);
    return u
      ? { authenticated: true, user: { username: u.username, groups: u.groups } }
      : { authenticated: false };
  });
  api.setAuthorizer((spec) => {
    reviews.push(spec as Record<string, unknown>);
    const resource = spec.resourceAttributes?.resource ?? "";
    const ok = spec.user !== undefined && allow.get(spec.user)?.has(resource) === true;
    return ok ? { allowed: true } : { allowed: false, reason: "no RBAC rule matched" };
  });
  const proxies: RunningApiserverProxy[] = [];
  const agents: Agent[] = [];
  return {
    api,
    ca,
    serverCert,
    dir,
    kubeconfigPath,
    users,
    reviews,
    allow,
    async startProxy(opts = {}) {
      const p = await startApiserverProxy({
        kubeconfig: kubeconfigPath,
        tls: { cert: serverCert.certPem, key: serverCert.keyPem },
        clientCa: ca.certPem,
        syncTimeoutMs: 30_000,
        ...opts,
      });
      proxies.push(p);
      return p;
    },
    client(opts = {}) {
      const a = new Agent({
        connect: {
          ca: ca.certPem,
          ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}),
        },
      });
      agents.push(a);
      return a;
    },
    async close() {
      await Promise.allSettled(agents.map((a) => a.close()));
      await Promise.allSettled(proxies.map((p) => p.close(0)));
      await api.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON of tests
  json: any;
}

export async function call(
  agent: Agent,
  url: string,
  opts: { method?: string; token?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await request(url, {
    method: (opts.method ?? "GET") as "GET",
    dispatcher: agent,
    headers,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers as Reply["headers"], text, json };
}

export async function writeText(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
}

/** Polls `fn` until it returns true (bounded). */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("condition not met in time");
}
