/** kubectl-proxy in-process against loopback upstreams: streaming, robustness, upgrades, shutdown. */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { loadConnection } from "@kproxy/kubeconfig";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import {
  DEFAULT_ACCEPT_HOSTS,
  DEFAULT_ACCEPT_PATHS,
  DEFAULT_REJECT_METHODS,
  DEFAULT_REJECT_PATHS,
} from "../src/config.js";
import { makeRegexpArray } from "../src/regex.js";
import type { FilterRules } from "../src/routing.js";
import { type AccessLogEntry, KubectlProxy, type KubectlProxyOptions } from "../src/server.js";
import { CLI, startServing } from "./helpers/proc.js";
import { rawExchange } from "./helpers/raw.js";

const defaultFilter = (): FilterRules => ({
  acceptPaths: makeRegexpArray(DEFAULT_ACCEPT_PATHS),
  rejectPaths: makeRegexpArray(DEFAULT_REJECT_PATHS),
  acceptHosts: makeRegexpArray(DEFAULT_ACCEPT_HOSTS),
  rejectMethods: makeRegexpArray(DEFAULT_REJECT_METHODS),
  keepIPv6Brackets: false,
});

interface Upstream {
  server: http.Server;
  port: number;
  url: string;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function startUpstream(handler: http.RequestListener): Promise<Upstream> {
  const server = http.createServer(handler);
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const started: KubectlProxy[] = [];
const upstreams: Upstream[] = [];
const agent = new Agent({ keepAliveTimeout: 1_000 });

async function startProxy(server: string, extra: Partial<KubectlProxyOptions> = {}): Promise<KubectlProxy> {
  const connection = await loadConnection({ server, env: {} });
  const proxy = new KubectlProxy({ connection, port: 0, filter: defaultFilter(), ...extra });
  await proxy.listen();
  started.push(proxy);
  return proxy;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(20);
  }
}

let upstream: Upstream;
let proxy: KubectlProxy;
let base: string;
let aborted = 0;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/watch") {
      // Three chunks 300 ms apart, as a watch stream sends events.
      res.writeHead(200, { "Content-Type": "application/json" });
      let n = 0;
      const tick = () => {
        res.write(`${JSON.stringify({ type: "ADDED", n, at: Date.now() })}\n`);
        if (++n < 3) setTimeout(tick, 300);
        else res.end();
      };
      tick();
      return;
    }
    if (url.pathname === "/forever") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write("{}\n");
      const timer = setInterval(() => res.write("{}\n"), 50);
      req.socket.once("close", () => {
        clearInterval(timer);
        aborted++;
      });
      return;
    }
    if (url.pathname === "/upload") {
      const hash = createHash("sha256");
      let bytes = 0;
      req.on("data", (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on("end", () => res.end(JSON.stringify({ bytes, sha: hash.digest("hex") })));
      return;
    }
    if (url.pathname === "/download") {
      const total = Number(url.searchParams.get("bytes"));
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (url.pathname === "/reset") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 50);
      return;
    }
    if (url.pathname === "/slow") {
      setTimeout(() => res.end("slow done"), 700);
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ path: req.url, xff: req.headers["x-forwarded-for"] ?? null }));
  });
  upstreams.push(upstream);
  proxy = await startProxy(upstream.url);
  base = `http://127.0.0.1:${proxy.port}`;
});

afterAll(async () => {
  for (const p of started) await p.close(1_000);
  for (const u of upstreams) await u.close();
  await agent.close();
});

describe("streaming", () => {
  it("delivers watch chunks as they arrive (300 ms apart upstream → apart at the client)", async () => {
    const res = await request(`${base}/watch`, { dispatcher: agent, headers: { host: "localhost" } });
    expect(res.statusCode).toBe(200);
    const arrivals: number[] = [];
    let text = "";
    for await (const chunk of res.body) {
      arrivals.push(Date.now());
      text += chunk.toString();
    }
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(arrivals.length).toBeGreaterThanOrEqual(3);
    // Each event reaches the client well before the next one is even produced.
    for (let i = 1; i < arrivals.length; i++)
      expect((arrivals[i] as number) - (arrivals[i - 1] as number)).toBeGreaterThan(150);
    const sentAt = lines.map((l) => JSON.parse(l).at as number);
    expect((arrivals[0] as number) - (sentAt[0] as number)).toBeLessThan(250);
  });

  it("streams a 200 MiB upload and a 200 MiB download with bounded memory", async () => {
    // The proxy runs as its own process so that its peak RSS (VmHWM) measures only the proxy.
    const child = await startServing(process.execPath, [CLI, "-p", "0", `--server=${upstream.url}`]);
    try {
      const url = `http://127.0.0.1:${child.port}`;
      const peakKiB = () =>
        Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.proc.pid}/status`, "utf8"))?.[1]);
      const startKiB = peakKiB();
      const total = 200 * 1024 * 1024;
      const chunk = Buffer.alloc(256 * 1024, 3);
      const expected = createHash("sha256");
      let produced = 0;
      const body = new Readable({
        read() {
          if (produced >= total) {
            this.push(null);
            return;
          }
          produced += chunk.length;
          expected.update(chunk);
          this.push(chunk);
        },
      });
      const up = await request(`${url}/upload`, {
        method: "PUT",
        body,
        dispatcher: agent,
        headers: { host: "localhost" },
      });
      const result = (await up.body.json()) as { bytes: number; sha: string };
      expect(result.bytes).toBe(total);
      expect(result.sha).toBe(expected.digest("hex"));
      const down = await request(`${url}/download?bytes=${total}`, {
        dispatcher: agent,
        headers: { host: "localhost" },
      });
      let received = 0;
      for await (const c of down.body) received += (c as Buffer).length;
      expect(received).toBe(total);
      // Buffering either body would need 200 MiB on its own; streaming stays far below.
      expect(startKiB).toBeGreaterThan(0);
      expect((peakKiB() - startKiB) * 1024).toBeLessThan(120 * 1024 * 1024);
    } finally {
      await child.stop();
    }
  }, 120_000);
});

describe("robustness", () => {
  it("answers 500 text when the API server is down, and keeps serving", async () => {
    const gone = await startUpstream((_req, res) => res.end("back"));
    const port = gone.port;
    await gone.close();
    const p = await startProxy(`http://127.0.0.1:${port}`);
    const res = await rawExchange(
      p.port,
      "GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    expect(res.status).toBe(500);
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.body.toString()).toBe(`dial tcp 127.0.0.1:${port}: connect: connection refused\n`);
    // The proxy is still up and serves the next request.
    const again = await rawExchange(
      p.port,
      "GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    expect(again.status).toBe(500);
  });

  it("cuts the client connection when the API server resets mid-response, and stays up", async () => {
    const res = await rawExchange(
      proxy.port,
      "GET /reset HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    expect(res.status).toBe(200);
    // The chunked body never got its terminating chunk.
    expect(res.raw.toString("latin1").endsWith("0\r\n\r\n")).toBe(false);
    const ok = await request(`${base}/ok`, { dispatcher: agent, headers: { host: "localhost" } });
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
  });

  it("aborts the upstream request when the client disconnects (no leaked sockets)", async () => {
    const before = aborted;
    const client = http.get({
      host: "127.0.0.1",
      port: proxy.port,
      path: "/forever",
      headers: { host: "localhost" },
    });
    await new Promise<void>((resolve, reject) => {
      client.on("response", (res) => {
        res.once("data", () => {
          client.destroy();
          resolve();
        });
      });
      client.on("error", reject);
    });
    await waitFor(() => aborted === before + 1);
    // The upstream connection used by that request is gone too, not parked in a pool.
    await waitFor(() => upstream.sockets.size <= 1);
  });

  it("answers 431 to oversized headers and 400 to malformed requests", async () => {
    const big = `GET /api HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(1_100_000)}\r\n\r\n`;
    const res = await rawExchange(proxy.port, big);
    expect(res.status).toBe(431);
    const bad = await rawExchange(proxy.port, "GARBAGE\r\n\r\n");
    expect(bad.status).toBe(400);
    const badHost = await rawExchange(proxy.port, "GET /api HTTP/1.1\r\nHost: a b\r\n\r\n");
    expect(badHost.status).toBe(400);
    expect(badHost.body.toString()).toBe("400 Bad Request: malformed Host header");
  });

  it("keeps memory and sockets flat over 10,000 requests", async () => {
    const pool = new Agent({ connections: 8 });
    const once = async () => {
      const res = await request(`${base}/api/v1/pods`, { dispatcher: pool, headers: { host: "localhost" } });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    };
    const batch = async (n: number) => {
      for (let i = 0; i < n; i += 8) await Promise.all(Array.from({ length: 8 }, once));
    };
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    await batch(2_000);
    gc();
    const heapAfterWarmup = process.memoryUsage().heapUsed;
    const socketsAfterWarmup = upstream.sockets.size;
    await batch(8_000);
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    expect(upstream.sockets.size).toBeLessThanOrEqual(Math.max(socketsAfterWarmup, 8) + 2);
    expect(heapAfter - heapAfterWarmup).toBeLessThan(8 * 1024 * 1024);
    await pool.close();
  }, 120_000);
});

describe("upgrades", () => {
  it("tunnels a WebSocket both ways (with --reject-paths relaxed)", async () => {
    const http1 = http.createServer();
    const wss = new WebSocketServer({ server: http1 });
    let seenPath = "";
    wss.on("connection", (ws, req) => {
      seenPath = req.url ?? "";
      ws.on("message", (m) => ws.send(`echo:${m.toString()}`));
    });
    await new Promise<void>((r) => http1.listen(0, "127.0.0.1", r));
    const wsPort = (http1.address() as AddressInfo).port;
    const filter = { ...defaultFilter(), rejectPaths: [] };
    const p = await startProxy(`http://127.0.0.1:${wsPort}`, { filter });
    try {
      const ws = new WebSocket(
        `ws://localhost:${p.port}/api/v1/namespaces/d/pods/x/exec?command=sh&stdin=true`,
      );
      const reply = await new Promise<string>((resolve, reject) => {
        ws.on("open", () => ws.send("ping"));
        ws.on("message", (m) => resolve(m.toString()));
        ws.on("error", reject);
      });
      expect(reply).toBe("echo:ping");
      expect(seenPath).toBe("/api/v1/namespaces/d/pods/x/exec?command=sh&stdin=true");
      ws.close();
    } finally {
      wss.close();
      for (const c of wss.clients) c.terminate();
      http1.closeAllConnections();
      await new Promise((r) => http1.close(r));
    }
  });

  it("rejects exec upgrades by default with 403 Forbidden", async () => {
    const res = await rawExchange(
      proxy.port,
      "GET /api/v1/namespaces/d/pods/x/exec HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    expect(res.status).toBe(403);
    expect(res.body.toString()).toBe("Forbidden\n");
  });
});

describe("beyond kubectl", () => {
  it("finishes in-flight requests on close, then stops accepting", async () => {
    const p = await startProxy(upstream.url);
    const inflight = request(`http://127.0.0.1:${p.port}/slow`, {
      headers: { host: "localhost" },
      dispatcher: new Agent(),
    });
    await sleep(200);
    const closing = p.close(5_000);
    const res = await inflight;
    expect(await res.body.text()).toBe("slow done");
    await closing;
    await expect(rawExchange(p.port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 2_000)).rejects.toThrow();
  });

  it("serves on a Unix socket without X-Forwarded-For and removes the socket on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kproxy-sock-"));
    const path = join(dir, "proxy.sock");
    try {
      const p = await startProxy(upstream.url, { unixSocket: path });
      expect(p.address).toBe(path);
      const res = await rawExchange(path, "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString()).xff).toBeNull();
      await p.close(1_000);
      expect(existsSync(path)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes an access log without secrets", async () => {
    const entries: AccessLogEntry[] = [];
    const p = await startProxy(upstream.url, { accessLog: (e) => entries.push(e) });
    await rawExchange(
      p.port,
      "GET /api/v1/pods?access_token=s3cr3t&limit=5 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cr3t\r\nConnection: close\r\n\r\n",
    );
    await waitFor(() => entries.length === 1);
    const line = JSON.stringify(entries[0]);
    expect(line).not.toContain("s3cr3t");
    expect(entries[0]).toMatchObject({
      method: "GET",
      status: 200,
      path: "/api/v1/pods?access_token=<redacted>&limit=5",
    });
  });

  it("serves with the lean engine, and with Node's http + undici behind an HTTP proxy or on request", async () => {
    expect(proxy.engine).toBe("fast");
    const viaProxy = await loadConnection({
      // A loopback API server is never proxied (the lean engine serves it): name another host.
      server: "http://kubernetes.example:8080",
      env: { HTTP_PROXY: "http://127.0.0.1:9" },
    });
    const p = new KubectlProxy({ connection: viaProxy, port: 0, filter: defaultFilter() });
    started.push(p);
    await p.listen();
    expect(p.engine).toBe("node");
    const node = await startProxy(upstream.url, { engine: "node" });
    expect(node.engine).toBe("node");
    const res = await rawExchange(
      node.port,
      "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString()).path).toBe("/x");
  });

  it("accepts [::1]:port only with the bracket fix", async () => {
    const quirk = await rawExchange(
      proxy.port,
      "GET /x HTTP/1.1\r\nHost: [::1]:8001\r\nConnection: close\r\n\r\n",
    );
    expect(quirk.status).toBe(403);
    const p = await startProxy(upstream.url, { filter: { ...defaultFilter(), keepIPv6Brackets: true } });
    const fixed = await rawExchange(
      p.port,
      "GET /x HTTP/1.1\r\nHost: [::1]:8001\r\nConnection: close\r\n\r\n",
    );
    expect(fixed.status).toBe(200);
  });
});
