import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildUpstreamHeaders, forwardHttp, requestBody } from "../src/index.js";

let upstream: http.Server;
let proxy: http.Server;
let proxyUrl: string;
const agent = new Agent();
const client = new Agent();

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url === "/gzip") {
      res.writeHead(200, { "Content-Encoding": "gzip", "Content-Type": "text/plain" });
      res.end(gzipSync("hello gzip"));
      return;
    }
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () =>
      res.end(JSON.stringify({ method: req.method, url: req.url, body, host: req.headers.host })),
    );
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const port = (upstream.address() as AddressInfo).port;
  proxy = http.createServer((req, res) => {
    const up = buildUpstreamHeaders(req.rawHeaders, req.method ?? "GET", {
      host: `127.0.0.1:${port}`,
      clientIp: "127.0.0.1",
      requestGzip: true,
    });
    void forwardHttp(
      {
        dispatcher: agent,
        origin: `http://127.0.0.1:${port}`,
        target: `127.0.0.1:${port}`,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers: up.headers,
        body: requestBody(req),
        requestedGzip: up.requestedGzip,
        onError: (err, r) => {
          r.writeHead(502);
          r.end(err.message);
        },
      },
      res,
    );
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  proxy.closeAllConnections();
  upstream.closeAllConnections();
  await new Promise((r) => proxy.close(r));
  await new Promise((r) => upstream.close(r));
  await agent.close();
  await client.close();
});

describe("forwardHttp", () => {
  it("forwards method, path, query and body", async () => {
    const res = await request(`${proxyUrl}/a/b?x=1`, { method: "POST", body: "payload", dispatcher: client });
    const seen = (await res.body.json()) as Record<string, string>;
    expect(seen).toMatchObject({ method: "POST", url: "/a/b?x=1", body: "payload" });
  });

  it("decompresses gzip it asked for, and passes it through when the client asked", async () => {
    const plain = await request(`${proxyUrl}/gzip`, { dispatcher: client });
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(await plain.body.text()).toBe("hello gzip");
    const raw = await request(`${proxyUrl}/gzip`, {
      dispatcher: client,
      headers: { "accept-encoding": "gzip" },
    });
    expect(raw.headers["content-encoding"]).toBe("gzip");
    expect((await raw.body.arrayBuffer()).byteLength).toBeGreaterThan(0);
  });

  it("calls onError with a Go-style message when the upstream is unreachable", async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const server = http.createServer((req, res) => {
      void forwardHttp(
        {
          dispatcher: agent,
          origin: `http://127.0.0.1:${port}`,
          target: `127.0.0.1:${port}`,
          method: "GET",
          path: req.url ?? "/",
          headers: [],
          body: null,
          requestedGzip: false,
          onError: (err, r) => {
            r.writeHead(500);
            r.end(`${err.code}: ${err.message}`);
          },
        },
        res,
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
      dispatcher: client,
    });
    expect(res.statusCode).toBe(500);
    expect(await res.body.text()).toBe(
      `UPSTREAM_UNREACHABLE: dial tcp 127.0.0.1:${port}: connect: connection refused`,
    );
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
});
