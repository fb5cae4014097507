import type { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import type { RunningApiserverProxy } from "../src/index.js";
import {
  type Backend,
  type Cluster,
  call,
  eventually,
  pod,
  service,
  slice,
  startBackend,
  startCluster,
  startHtmlBackend,
} from "./helpers.js";

const TOKEN = "alice-token";

describe("apiserver-proxy", () => {
  let cluster: Cluster;
  let proxy: RunningApiserverProxy;
  let client: Agent;
  let web0: Backend;
  let web1: Backend;
  let html: Backend;
  const log: Record<string, unknown>[] = [];
  let base: string;

  beforeAll(async () => {
    cluster = await startCluster();
    cluster.users.set(TOKEN, { username: "alice", groups: ["devs"] });
    cluster.users.set("bob-token", { username: "bob", groups: [] });
    cluster.allow.set("alice", new Set(["services", "pods", "nodes"]));
    cluster.allow.set("carol", new Set(["services"]));
    web0 = await startBackend("web-0");
    web1 = await startBackend("web-1");
    html = await startHtmlBackend();
    const api = cluster.api;
    api.create(pod("web-0", "127.0.0.1", web0.port, { app: "web" }));
    api.create(pod("web-1", "127.0.0.1", web1.port, { app: "web" }));
    api.create(service("web", { app: "web" }));
    api.create(pod("html-0", "127.0.0.1", html.port, { app: "html" }));
    api.create(service("html", { app: "html" }));
    api.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-a" },
      status: {
        addresses: [
          { type: "Hostname", address: "node-a.invalid" },
          { type: "InternalIP", address: "127.0.0.1" },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      },
    });
    proxy = await cluster.startProxy({
      devAllowLoopbackEndpoints: true,
      preferredAddressTypes: ["InternalIP", "Hostname"],
      accessLog: (e) => log.push(e as unknown as Record<string, unknown>),
    });
    base = proxy.url;
    client = cluster.client();
  });

  afterAll(async () => {
    await cluster?.close();
    await Promise.allSettled([web0?.close(), web1?.close(), html?.close()]);
  });

  const svc = (rest: string) => `${base}/api/v1/namespaces/default/services/${rest}`;

  describe("authentication and authorization", () => {
    it("answers 401 Status without credentials or with an unknown token", async () => {
      for (const token of [undefined, "wrong"]) {
        const r = await call(client, svc("web:http/proxy/"), token !== undefined ? { token } : {});
        expect(r.status).toBe(401);
        expect(r.headers["content-type"]).toBe("application/json");
        expect(r.json).toEqual({
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: "Unauthorized",
          reason: "Unauthorized",
          code: 401,
        });
      }
    });

    it("authorizes with a SubjectAccessReview naming verb, resource, subresource, name and namespace", async () => {
      cluster.reviews.length = 0;
      const r = await call(client, svc("web:http/proxy/x"), { token: TOKEN, method: "PATCH", body: "{}" });
      expect(r.status).toBe(200);
      expect(cluster.reviews).toHaveLength(1);
      expect(cluster.reviews[0]).toMatchObject({
        user: "alice",
        groups: ["devs", "system:authenticated"],
        resourceAttributes: {
          namespace: "default",
          verb: "patch",
          group: "",
          version: "v1",
          resource: "services",
          subresource: "proxy",
          name: "web:http",
        },
      });
    });

    it("answers 403 Status with the API server's message when the review denies", async () => {
      const r = await call(client, `${base}/api/v1/nodes/node-a/proxy/`, { token: "bob-token" });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({
        reason: "Forbidden",
        code: 403,
        details: { name: "node-a", kind: "nodes" },
        message:
          'nodes "node-a" is forbidden: User "bob" cannot get resource "nodes/proxy" in API group "" at the cluster scope: no RBAC rule matched',
      });
      const p = await call(client, svc("web/proxy/"), { token: "bob-token", method: "DELETE" });
      expect(p.json.message).toBe(
        'services "web" is forbidden: User "bob" cannot delete resource "services/proxy" in API group "" in the namespace "default": no RBAC rule matched',
      );
    });

    it("caches TokenReview and SubjectAccessReview answers", async () => {
      await call(client, svc("web:http/proxy/warm"), { token: TOKEN });
      const before = cluster.api.reviewCounts;
      for (let i = 0; i < 5; i++)
        expect((await call(client, svc("web:http/proxy/warm"), { token: TOKEN })).status).toBe(200);
      expect(cluster.api.reviewCounts).toEqual(before);
    });

    it("authenticates client certificates by CN and O", async () => {
      const cert = await cluster.ca.issueClientCert({ commonName: "carol", organizations: ["ops"] });
      const agent = cluster.client({ cert });
      cluster.reviews.length = 0;
      const r = await call(agent, svc("web:http/proxy/cert"));
      expect(r.status).toBe(200);
      expect(cluster.reviews[0]).toMatchObject({ user: "carol", groups: ["ops", "system:authenticated"] });
      expect((await call(agent, `${base}/api/v1/namespaces/default/pods/web-0/proxy/`)).status).toBe(403);
    });

    it("removes Authorization and Impersonate-* before forwarding", async () => {
      web0.seen.length = 0;
      web1.seen.length = 0;
      await call(client, svc("web:http/proxy/headers"), {
        token: TOKEN,
        headers: { "Impersonate-User": "admin", "Impersonate-Extra-Scopes": "x", Cookie: "a=b" },
      });
      const seen = [...web0.seen, ...web1.seen][0]!;
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers["impersonate-user"]).toBeUndefined();
      expect(seen.headers["impersonate-extra-scopes"]).toBeUndefined();
      expect(seen.headers.cookie).toBe("a=b");
    });
  });

  describe("URL space and resolution", () => {
    it("proxies to a service endpoint with the sub-path, query, X-Forwarded-* and the client's Host", async () => {
      web0.seen.length = 0;
      web1.seen.length = 0;
      const r = await call(client, svc("web:http/proxy/a/b/../c?q=1&token=secret"), { token: TOKEN });
      expect(r.status).toBe(200);
      expect(r.json.url).toBe("/a/c?q=1&token=secret");
      const seen = [...web0.seen, ...web1.seen][0]!;
      expect(seen.headers["x-forwarded-uri"]).toBe("/api/v1/namespaces/default/services/web:http/proxy/a/c");
      expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
      expect(seen.headers.host).toBe(new URL(base).host);
      expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    });

    it("accepts a port number (the service port, mapped to its name) and the https: scheme prefix", async () => {
      expect((await call(client, svc("web:80/proxy/n"), { token: TOKEN })).json.url).toBe("/n");
      expect((await call(client, svc("http:web:http/proxy/n"), { token: TOKEN })).json.url).toBe("/n");
    });

    it("balances a service over its ready endpoints (random by default)", async () => {
      const backends = new Set<string>();
      for (let i = 0; i < 30 && backends.size < 2; i++)
        backends.add((await call(client, svc("web:http/proxy/lb"), { token: TOKEN })).json.backend);
      expect(backends).toEqual(new Set(["web-0", "web-1"]));
    });

    it("answers with upstream's error statuses and messages", async () => {
      const cases: [string, number, string, string][] = [
        [svc("web:81/proxy/"), 503, "ServiceUnavailable", 'no service port 81 found for service "web"'],
        [svc("nope:80/proxy/"), 404, "NotFound", 'services "nope" not found'],
        [svc("nope/proxy/"), 503, "ServiceUnavailable", 'no endpoints available for service "nope"'],
        [svc("web/proxy/"), 503, "ServiceUnavailable", 'no endpoints available for service "web"'],
        [
          svc("https:web:metrics/proxy/"),
          503,
          "ServiceUnavailable",
          'no endpoints available for service "https:web:metrics"',
        ],
        [svc("ftp:web:http/proxy/"), 400, "BadRequest", 'invalid service request "ftp:web:http"'],
        [`${base}/api/v1/namespaces/default/pods/ghost/proxy/`, 404, "NotFound", 'pods "ghost" not found'],
        [`${base}/api/v1/nodes/ghost/proxy/`, 404, "NotFound", 'nodes "ghost" not found'],
        [svc("web:http/proxy/?dryRun=All"), 400, "BadRequest", "dryRun is not supported"],
        [
          `${base}/api/v1/namespaces/default/services/web`,
          404,
          "NotFound",
          "the server could not find the requested resource",
        ],
      ];
      for (const [url, code, reason, message] of cases) {
        const r = await call(client, url, { token: TOKEN });
        expect({ url, code: r.status, reason: r.json?.reason, message: r.json?.message }).toEqual({
          url,
          code,
          reason,
          message,
        });
      }
    });

    it("redirects GET and HEAD of an empty sub-path with 301, other methods go to /", async () => {
      const r = await call(client, svc("web:http/proxy?a=1"), { token: TOKEN });
      expect(r.status).toBe(301);
      expect(r.headers.location).toBe("/api/v1/namespaces/default/services/web:http/proxy/?a=1");
      const p = await call(client, svc("web:http/proxy"), { token: TOKEN, method: "POST", body: "x" });
      expect(p.json).toMatchObject({ method: "POST", url: "/", body: "x" });
    });

    it("serves GET, POST, PUT, PATCH, DELETE, HEAD and OPTIONS; refuses others with 405", async () => {
      cluster.reviews.length = 0;
      for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
        const r = await call(client, svc("web:http/proxy/m"), {
          token: TOKEN,
          method,
          ...(method === "GET" ? {} : { body: "b" }),
        });
        expect(r.json.method).toBe(method);
      }
      // OPTIONS has no RBAC verb, as upstream ("": only a "*" rule allows it).
      expect(cluster.reviews.map((r) => (r.resourceAttributes as { verb: string }).verb)).toContain("");
      expect((await call(client, svc("web:http/proxy/m"), { token: TOKEN, method: "HEAD" })).status).toBe(
        200,
      );
      const t = await call(client, svc("web:http/proxy/m"), { token: TOKEN, method: "TRACE" });
      expect(t.status).toBe(405);
      expect(t.json.reason).toBe("MethodNotAllowed");
    });

    it("proxies to pods by first pod IP (given port, named port, default port) and to nodes", async () => {
      const pods = `${base}/api/v1/namespaces/default/pods`;
      expect((await call(client, `${pods}/web-0:${web0.port}/proxy/p`, { token: TOKEN })).json).toMatchObject(
        { backend: "web-0", url: "/p" },
      );
      expect((await call(client, `${pods}/web-1:http/proxy/p`, { token: TOKEN })).json).toMatchObject({
        backend: "web-1",
      });
      expect((await call(client, `${pods}/web-1/proxy/p`, { token: TOKEN })).json).toMatchObject({
        backend: "web-1",
      });
      const n = await call(client, `${base}/api/v1/nodes/node-a:${web0.port}/proxy/stats`, { token: TOKEN });
      expect(n.json).toMatchObject({ backend: "web-0", url: "/stats" });
    });

    it("answers 503 with the Go error when the endpoint is unreachable", async () => {
      cluster.api.create(service("dead", undefined));
      cluster.api.create(slice("dead", ["127.0.0.1"], 1));
      await eventually(
        async () =>
          (await call(client, svc("dead:http/proxy/"), { token: TOKEN, method: "POST", body: "x" }))
            .status === 503,
      );
      const r = await call(client, svc("dead:http/proxy/"), { token: TOKEN, method: "POST", body: "x" });
      expect(r.json).toMatchObject({
        code: 503,
        reason: "ServiceUnavailable",
        message: "error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused",
      });
    });
  });

  describe("rewriting", () => {
    it("rewrites HTML links and the Location header to the proxy prefix", async () => {
      const prefix = "/api/v1/namespaces/default/services/html:http/proxy";
      const page = await call(client, svc("html:http/proxy/"), { token: TOKEN });
      expect(page.text).toBe(
        `<html><head><link href="${prefix}/style.css" rel="stylesheet"></head><body><a href="${prefix}/docs/">docs</a><a href="https://example.com/x">ext</a></body></html>`,
      );
      expect(page.headers["access-control-allow-origin"]).toBeUndefined();
      expect(Number(page.headers["content-length"])).toBe(Buffer.byteLength(page.text));
      const gz = await call(client, svc("html:http/proxy/page.gz"), { token: TOKEN });
      expect(gz.text).toBe(
        `<html><body><a href="${prefix}/docs/">docs</a><img src="logo.png"></body></html>`,
      );
      const redirect = await call(client, svc("html:http/proxy/redirect"), { token: TOKEN });
      expect(redirect.status).toBe(302);
      expect(redirect.headers.location).toBe(`http://${new URL(base).host}${prefix}/moved/here?x=1`);
    });
  });

  describe("upgrades", () => {
    it("tunnels a WebSocket and keeps the query string (kubernetes#77142)", async () => {
      const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
      const urls: string[] = [];
      wss.on("connection", (ws, req) => {
        urls.push(req.url ?? "");
        ws.on("message", (m) => ws.send(`echo:${m.toString()}`));
      });
      await new Promise<void>((r) => wss.once("listening", () => r()));
      const port = (wss.address() as { port: number }).port;
      cluster.api.create(pod("ws-0", "127.0.0.1", port, { app: "ws" }));
      try {
        const url = `${base.replace("https", "wss")}/api/v1/namespaces/default/pods/ws-0/proxy/stream?follow=true&tail=10`;
        await eventually(
          async () => (await call(client, url.replace("wss", "https"), { token: TOKEN })).status !== 404,
        );
        const ws = new WebSocket(url, {
          ca: cluster.ca.certPem,
          headers: { Authorization: `Bearer ${TOKEN}` },
        });
        const reply = await new Promise<string>((resolve, reject) => {
          ws.once("open", () => ws.send("hi"));
          ws.once("message", (m) => resolve(m.toString()));
          ws.once("error", reject);
        });
        ws.close();
        expect(reply).toBe("echo:hi");
        expect(urls).toEqual(["/stream?follow=true&tail=10"]);
        const denied = new WebSocket(url, { ca: cluster.ca.certPem });
        const status = await new Promise<number>((resolve) => {
          denied.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
          denied.once("error", () => resolve(-1));
        });
        expect(status).toBe(401);
      } finally {
        await new Promise<void>((r) => wss.close(() => r()));
      }
    });
  });

  describe("passive health", () => {
    it("retries an idempotent request on another endpoint when one refuses, and ejects it", async () => {
      const live = await startBackend("live");
      try {
        cluster.api.create(service("flaky", undefined));
        cluster.api.create({
          ...slice("flaky", ["127.0.0.1"], live.port),
          metadata: {
            name: "flaky-a",
            namespace: "default",
            labels: { "kubernetes.io/service-name": "flaky" },
          },
        });
        cluster.api.create({
          ...slice("flaky", ["127.0.0.2"], live.port),
          metadata: {
            name: "flaky-b",
            namespace: "default",
            labels: { "kubernetes.io/service-name": "flaky" },
          },
        });
        // 127.0.0.2:<port> refuses (the backend listens on 127.0.0.1 only).
        await eventually(
          () => proxy.watcher.snapshot().endpointSet("default", "flaky", "http")?.endpoints.length === 2,
        );
        for (let i = 0; i < 10; i++) {
          const r = await call(client, svc("flaky:http/proxy/r"), { token: TOKEN });
          expect(r.status).toBe(200);
        }
        const status = (await (await fetch(`${proxy.adminUrl}/status`)).json()) as { pools: unknown[] };
        expect(status.pools).toContainEqual({ servicePort: "default/flaky:http", endpoints: 2, refused: 0 });
        const metrics = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
        expect(metrics).toMatch(
          /kproxy_apiserver_proxy_endpoint_ejections_total\{target="service\/default\/flaky:http",endpoint="127\.0\.0\.2:\d+"\} 1/,
        );
        expect(metrics).toMatch(
          /kproxy_apiserver_proxy_upstream_errors_total\{target="service\/default\/flaky:http",endpoint="127\.0\.0\.2:\d+",error="UPSTREAM_UNREACHABLE"\} 1/,
        );
      } finally {
        await live.close();
      }
    });
  });

  describe("operations", () => {
    it("serves /healthz, /readyz and /metrics apart from the proxy port", async () => {
      expect(proxy.adminUrl).toBeDefined();
      expect(new URL(proxy.adminUrl!).port).not.toBe(new URL(base).port);
      expect((await fetch(`${proxy.adminUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(200);
      const m = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
      expect(m).toContain('kproxy_apiserver_proxy_requests_total{kind="service",method="GET",code="200"}');
      expect(m).toMatch(
        /kproxy_apiserver_proxy_upstream_requests_total\{target="service\/default\/web:http",endpoint="127\.0\.0\.1:\d+",code="200"\}/,
      );
      expect(m).toContain('kproxy_apiserver_proxy_auth_cache_lookups_total{cache="token",result="hit"}');
    });

    it("writes an access log without secrets", async () => {
      const text = JSON.stringify(log);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain("secret");
      const entry = log.find((e) => String(e.path).includes("token=<redacted>"));
      expect(entry).toMatchObject({
        user: "alice",
        method: "GET",
        status: 200,
        kind: "service",
        target: "service/default/web:http",
      });
    });
  });
});
