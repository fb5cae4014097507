/**
 * The proxy's main behaviours through both engines: the lean HTTP/1.1 path (FastHttpServer, the
 * default) and the node:https + undici fallback (`engine: "node"`). Every case runs against each.
 */
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { connect as tlsConnect } from "node:tls";
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
const ENGINES = ["fast", "node"] as const;

/** The Status object the API server answers failures with. */
function kubeStatus(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details !== undefined ? { details } : {}),
    code,
  };
}

/** A backend that answers `Upgrade: tcp-echo` with 101 and then echoes bytes (no WebSocket framing). */
async function startRawUpgradeBackend(): Promise<{
  port: number;
  heads: string[];
  close(): Promise<void>;
}> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      heads.push(buffered.subarray(0, end).toString("latin1"));
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp-echo\r\nConnection: Upgrade\r\n\r\n");
      const rest = buffered.subarray(end + 4);
      if (rest.length > 0) socket.write(rest);
      socket.pipe(socket);
    };
    socket.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    heads,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends `head` over TLS to the proxy; resolves with the response head and then echoes `payload`. */
function rawUpgrade(
  url: string,
  ca: string,
  head: string,
  payload: string,
): Promise<{ head: string; echoed: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), ca }, () => socket.write(head));
    let data = Buffer.alloc(0);
    let responseHead: string | undefined;
    const timer = setTimeout(() => socket.destroy(new Error("no answer in time")), 20_000);
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (responseHead === undefined) {
        const end = data.indexOf("\r\n\r\n");
        if (end < 0) return;
        responseHead = data.subarray(0, end).toString("latin1");
        data = data.subarray(end + 4);
        if (!responseHead.startsWith("HTTP/1.1 101")) {
          clearTimeout(timer);
          socket.destroy();
          resolve({ head: responseHead, echoed: "" });
          return;
        }
        socket.write(payload);
      }
      if (data.length >= payload.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ head: responseHead, echoed: data.toString("latin1") });
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe("apiserver-proxy engines", () => {
  let cluster: Cluster;
  let web: Backend;
  let html: Backend;
  let slow: Backend;
  let wss: WebSocketServer;
  let raw: Awaited<ReturnType<typeof startRawUpgradeBackend>>;
  const wsUrls: string[] = [];
  const wsAuthorization: (string | undefined)[] = [];

  beforeAll(async () => {
    cluster = await startCluster();
    cluster.users.set(TOKEN, { username: "alice", groups: ["devs"] });
    cluster.users.set("bob-token", { username: "bob", groups: [] });
    cluster.allow.set("alice", new Set(["services", "pods", "nodes"]));
    web = await startBackend("web");
    html = await startHtmlBackend();
    slow = await startBackend("slow", (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { "Content-Type": "text/plain" });
        res.end("done");
      }, 500);
    });
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    wss.on("connection", (ws, req) => {
      wsUrls.push(req.url ?? "");
      wsAuthorization.push(req.headers.authorization);
      ws.on("message", (m) => ws.send(`echo:${m.toString()}`));
    });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    raw = await startRawUpgradeBackend();

    const api = cluster.api;
    api.create(pod("web-0", "127.0.0.1", web.port, { app: "web" }));
    api.create(service("web", { app: "web" }));
    api.create(pod("html-0", "127.0.0.1", html.port, { app: "html" }));
    api.create(service("html", { app: "html" }));
    api.create(pod("slow", "127.0.0.1", slow.port, { app: "slow" }));
    api.create(pod("ws-0", "127.0.0.1", (wss.address() as { port: number }).port, { app: "ws" }));
    api.create(pod("raw-0", "127.0.0.1", raw.port, { app: "raw" }));
    // A service whose selector matches no pod, and one whose only endpoint refuses connections.
    api.create(service("idle", { app: "nothing" }));
    api.create(service("dead", undefined));
    api.create(slice("dead", ["127.0.0.1"], 1));
  });

  afterAll(async () => {
    await cluster?.close();
    await Promise.allSettled([
      web?.close(),
      html?.close(),
      slow?.close(),
      raw?.close(),
      new Promise<void>((r) => (wss ? wss.close(() => r()) : r())),
    ]);
  });

  describe.each(ENGINES)("engine %s", (engine) => {
    let proxy: RunningApiserverProxy;
    let client: Agent;
    const svc = (rest: string) => `${proxy.url}/api/v1/namespaces/default/services/${rest}`;

    beforeAll(async () => {
      proxy = await cluster.startProxy({ engine, devAllowLoopbackEndpoints: true });
      client = cluster.client();
    });

    it("is the engine asked for (node:https announces its keep-alive timeout, the lean path does not)", async () => {
      const r = await call(client, svc("web:http/proxy/which"), { token: TOKEN });
      expect(r.status).toBe(200);
      expect(r.headers["keep-alive"]).toBe(engine === "node" ? "timeout=60" : undefined);
    });

    it("proxies a GET with a bearer token to the service's endpoint: 200 and the body", async () => {
      const r = await call(client, svc("web:http/proxy/a/b?q=1"), { token: TOKEN });
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.json).toEqual({ backend: "web", method: "GET", url: "/a/b?q=1", body: "" });
      const p = await call(client, svc("web:http/proxy/post"), { token: TOKEN, method: "POST", body: "x=1" });
      expect(p.json).toEqual({ backend: "web", method: "POST", url: "/post", body: "x=1" });
    });

    it("redirects GET and HEAD of an empty sub-path with 301 to the path with a slash", async () => {
      for (const method of ["GET", "HEAD"]) {
        const r = await call(client, svc("web:http/proxy?a=1"), { token: TOKEN, method });
        expect({ method, status: r.status, location: r.headers.location, text: r.text }).toEqual({
          method,
          status: 301,
          location: "/api/v1/namespaces/default/services/web:http/proxy/?a=1",
          text: "",
        });
      }
    });

    it("answers 401 Status JSON without credentials and with an unknown token", async () => {
      for (const token of [undefined, "wrong"]) {
        const r = await call(client, svc("web:http/proxy/"), token !== undefined ? { token } : {});
        expect(r.status).toBe(401);
        expect(r.headers["content-type"]).toBe("application/json");
        expect(r.json).toEqual(kubeStatus(401, "Unauthorized", "Unauthorized"));
      }
    });

    it("answers 403 Status JSON when the SubjectAccessReview denies", async () => {
      const r = await call(client, svc("web:http/proxy/"), { token: "bob-token" });
      expect(r.status).toBe(403);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.json).toEqual(
        kubeStatus(
          403,
          "Forbidden",
          'services "web:http" is forbidden: User "bob" cannot get resource "services/proxy" in API group "" in the namespace "default": no RBAC rule matched',
          { name: "web:http", kind: "services" },
        ),
      );
    });

    it("authenticates a client certificate by CN and O (the TLS socket of either server)", async () => {
      const cert = await cluster.ca.issueClientCert({ commonName: "alice", organizations: ["ops"] });
      cluster.reviews.length = 0;
      const r = await call(cluster.client({ cert }), svc("web:http/proxy/cert"));
      expect(r.status).toBe(200);
      expect(cluster.reviews[0]).toMatchObject({ user: "alice", groups: ["ops", "system:authenticated"] });
    });

    it("answers 503 Status JSON for a service without endpoints and for an unreachable endpoint", async () => {
      const none = await call(client, svc("idle/proxy/"), { token: TOKEN });
      expect(none.status).toBe(503);
      expect(none.json).toEqual(
        kubeStatus(503, "ServiceUnavailable", 'no endpoints available for service "idle"'),
      );
      const dead = await call(client, svc("dead:http/proxy/"), { token: TOKEN, method: "POST", body: "x" });
      expect(dead.status).toBe(503);
      expect(dead.json).toEqual(
        kubeStatus(
          503,
          "ServiceUnavailable",
          "error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused",
        ),
      );
    });

    it("rewrites the Location header and HTML links (plain and gzip) to the proxy prefix", async () => {
      const prefix = "/api/v1/namespaces/default/services/html:http/proxy";
      const page = await call(client, svc("html:http/proxy/"), { token: TOKEN });
      expect(page.status).toBe(200);
      expect(page.text).toBe(
        `<html><head><link href="${prefix}/style.css" rel="stylesheet"></head><body><a href="${prefix}/docs/">docs</a><a href="https://example.com/x">ext</a></body></html>`,
      );
      expect(Number(page.headers["content-length"])).toBe(Buffer.byteLength(page.text));
      expect(page.headers["access-control-allow-origin"]).toBeUndefined();
      const gz = await call(client, svc("html:http/proxy/page.gz"), { token: TOKEN });
      expect(gz.text).toBe(
        `<html><body><a href="${prefix}/docs/">docs</a><img src="logo.png"></body></html>`,
      );
      const redirect = await call(client, svc("html:http/proxy/redirect"), { token: TOKEN });
      expect(redirect.status).toBe(302);
      expect(redirect.headers.location).toBe(`http://${new URL(proxy.url).host}${prefix}/moved/here?x=1`);
    });

    it("does not forward Authorization or Impersonate-* to the backend, and keeps other headers", async () => {
      web.seen.length = 0;
      const r = await call(client, svc("web:http/proxy/headers"), {
        token: TOKEN,
        headers: { "Impersonate-User": "admin", Cookie: "a=b" },
      });
      expect(r.status).toBe(200);
      expect(web.seen).toHaveLength(1);
      const seen = web.seen[0]!;
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers["impersonate-user"]).toBeUndefined();
      expect(seen.headers.cookie).toBe("a=b");
      expect(seen.headers["x-forwarded-uri"]).toBe(
        "/api/v1/namespaces/default/services/web:http/proxy/headers",
      );
      expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
    });

    it("tunnels a WebSocket (query kept, Authorization not forwarded) and refuses one without credentials", async () => {
      const url = `${proxy.url.replace("https", "wss")}/api/v1/namespaces/default/pods/ws-0/proxy/stream?follow=true`;
      const before = wsUrls.length;
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
      expect(wsUrls.slice(before)).toEqual(["/stream?follow=true"]);
      expect(wsAuthorization.slice(before)).toEqual([undefined]);
      const denied = new WebSocket(url, { ca: cluster.ca.certPem });
      const status = await new Promise<number>((resolve) => {
        denied.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        denied.once("error", () => resolve(-1));
      });
      expect(status).toBe(401);
    });

    it("tunnels a plain (non-WebSocket) Upgrade byte for byte", async () => {
      const before = raw.heads.length;
      const path = "/api/v1/namespaces/default/pods/raw-0/proxy/echo?x=1";
      const r = await rawUpgrade(
        proxy.url,
        cluster.ca.certPem,
        `GET ${path} HTTP/1.1\r\nHost: ${new URL(proxy.url).host}\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: Upgrade\r\nUpgrade: tcp-echo\r\n\r\n`,
        "ping-pong",
      );
      expect(r.head.split("\r\n")[0]).toBe("HTTP/1.1 101 Switching Protocols");
      expect(r.echoed).toBe("ping-pong");
      const seen = raw.heads.slice(before);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.split("\r\n")[0]).toBe("GET /echo?x=1 HTTP/1.1");
      expect(seen[0]).toMatch(/\r\nupgrade: tcp-echo(\r\n|$)/i);
      expect(seen[0]).not.toMatch(/authorization/i);
      const denied = await rawUpgrade(
        proxy.url,
        cluster.ca.certPem,
        `GET ${path} HTTP/1.1\r\nHost: ${new URL(proxy.url).host}\r\nConnection: Upgrade\r\nUpgrade: tcp-echo\r\n\r\n`,
        "",
      );
      expect(denied.head.split("\r\n")[0]).toMatch(/^HTTP\/1\.1 401 /);
      expect(raw.heads).toHaveLength(before + 1);
    });

    it("closes gracefully: readiness off, the in-flight request finishes, new connections are refused", async () => {
      const p = await cluster.startProxy({ engine, devAllowLoopbackEndpoints: true });
      const url = `${p.url}/api/v1/namespaces/default/pods/slow/proxy/`;
      const seenBefore = slow.seen.length;
      const inflight = call(cluster.client(), url, { token: TOKEN });
      await eventually(() => slow.seen.length > seenBefore);
      const closed = p.close(10_000);
      expect(p.ready()).toBe(false);
      const r = await inflight;
      expect(r.status).toBe(200);
      expect(r.text).toBe("done");
      await closed;
      await expect(call(cluster.client(), url, { token: TOKEN })).rejects.toThrow();
    });
  });
});
