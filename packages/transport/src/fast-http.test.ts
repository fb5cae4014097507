import { createHash } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import * as tls from "node:tls";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type FastForwardResult, FastHttpServer, UpstreamConnection, UpstreamPool } from "./fast-http.js";
import { buildUpstreamHeaders } from "./headers.js";
import { serverCert, type TestCert } from "./l4.test-helpers.js";

const PATTERN_BYTES = 8 * 1024 * 1024;
function patternPiece(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32LE((offset + i) >>> 0, i);
  return b;
}

const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

/** Tracks the sockets a server accepted. */
function tracked(server: net.Server) {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  server.on("connection", (s: net.Socket) => {
    accepted++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { sockets, accepted: () => accepted };
}

let upstreamPort: number;
let upstream: ReturnType<typeof tracked>;
let foreverClosed = 0;

beforeAll(async () => {
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    if (url === "/chunked") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.write("one,");
      setTimeout(() => {
        res.write("two,");
        res.end("three");
      }, 20);
      return;
    }
    if (url === "/pattern") {
      // 8 MiB of bytes that differ everywhere, in 4 KiB pieces sent one per event-loop turn (so
      // that the proxy reads many small pieces), for integrity checks.
      res.writeHead(200, { "Content-Length": String(PATTERN_BYTES) });
      let offset = 0;
      const pump = () => {
        if (offset >= PATTERN_BYTES) {
          res.end();
          return;
        }
        const piece = patternPiece(offset, 4096);
        offset += piece.length;
        if (res.write(piece)) setImmediate(pump);
        else res.once("drain", pump);
      };
      pump();
      return;
    }
    if (url === "/gzip") {
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Encoding": "gzip" });
      res.end(gzipSync("unzipped text"));
      return;
    }
    if (url === "/forever") {
      res.writeHead(200);
      res.write("{}\n");
      const t = setInterval(() => res.write("{}\n"), 20);
      req.socket.once("close", () => {
        clearInterval(t);
        foreverClosed++;
      });
      return;
    }
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    req.on("end", () => {
      res.writeHead(200, {
        "Content-Type": "application/json",
        Connection: "keep-alive, X-Hop",
        "X-Hop": "x",
      });
      res.end(
        JSON.stringify({
          method: req.method,
          url,
          bytes,
          host: req.headers.host,
          te: req.headers["transfer-encoding"] ?? null,
          ae: req.headers["accept-encoding"] ?? null,
        }),
      );
    });
  });
  upstream = tracked(server);
  upstreamPort = await listen(server);
});

interface Proxy {
  port: number;
  pool: UpstreamPool;
  results: FastForwardResult[];
  server: FastHttpServer;
}

async function startProxy(port: number, tls?: { cert: string; key: string }): Promise<Proxy> {
  const pool = new UpstreamPool({ host: "127.0.0.1", port, target: `127.0.0.1:${port}` });
  const results: FastForwardResult[] = [];
  const server = new FastHttpServer({
    ...(tls !== undefined ? { tls } : {}),
    maxHeaderBytes: 16 * 1024,
    onRequest: (conn, head) => {
      if (head.target === "/local") {
        conn.respond(200, "Content-Type: text/plain\r\n", "local\n");
        return;
      }
      if (head.target === "/handover") {
        const { socket, head: rest } = conn.detach();
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${rest.length}\r\nConnection: close\r\n\r\n${rest}`);
        return;
      }
      const up = buildUpstreamHeaders(head.headers, head.method, {
        host: `127.0.0.1:${port}`,
        clientIp: conn.clientIp,
        requestGzip: true,
      });
      conn.forward({
        pool,
        method: head.method,
        path: head.target,
        headers: up.headers,
        requestedGzip: up.requestedGzip,
        onError: (c, error) =>
          c.respond(500, "Content-Type: text/plain; charset=utf-8\r\n", `${error.message}\n`),
        onDone: (_c, result) => results.push(result),
      });
    },
  });
  const listenPort = await listen(server.server);
  closers.push(() => {
    server.closeAll();
    pool.destroy();
    return new Promise<void>((r) => server.server.close(() => r()));
  });
  return { port: listenPort, pool, results, server };
}

/** Writes `payload` and reads until `done(bytes)` or the server closes. */
function exchange(
  port: number,
  payload: string | Buffer,
  done: (all: string) => boolean = () => false,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; got ${JSON.stringify(text.slice(0, 300))}`));
    }, 10_000);
    socket.on("data", (c: Buffer) => {
      text += c.toString("latin1");
      if (done(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ text, closed: false });
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on("error", () => {});
    socket.write(payload);
  });
}

const count = (s: string, sub: string) => s.split(sub).length - 1;

/** sha256 of the /pattern body. */
const PATTERN_DIGEST = (() => {
  const expected = createHash("sha256");
  for (let offset = 0; offset < PATTERN_BYTES; offset += 65536) expected.update(patternPiece(offset, 65536));
  return expected.digest("hex");
})();

/**
 * GET /pattern on a new connection, reading slowly (not at first, then pausing now and then, so
 * that the proxy's writes back up); resolves with the body's sha256.
 */
function patternDigestThrough(connect: () => net.Socket): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect();
    const hash = createHash("sha256");
    let head = "";
    let inBody = false;
    let remaining = 0;
    let reads = 0;
    socket.on("data", (c: Buffer) => {
      let chunk = c;
      if (!inBody) {
        head += c.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        remaining = Number(/content-length: (\d+)/i.exec(head)?.[1]);
        chunk = c.subarray(c.length - (head.length - end - 4));
        inBody = true;
      }
      hash.update(chunk);
      remaining -= chunk.length;
      if (remaining <= 0) {
        socket.destroy();
        resolve(hash.digest("hex"));
      } else if (++reads % 8 === 0) {
        socket.pause();
        setTimeout(() => socket.resume(), 30);
      }
    });
    socket.on("error", reject);
    socket.write("GET /pattern HTTP/1.1\r\nHost: x\r\n\r\n");
    socket.pause();
    setTimeout(() => socket.resume(), 400);
  });
}

describe("fast HTTP path", () => {
  let proxy: Proxy;
  beforeAll(async () => {
    proxy = await startProxy(upstreamPort);
  });

  it("answers pipelined requests in order over one kept-alive upstream connection", async () => {
    const before = upstream.accepted();
    const req = (n: number) => `GET /echo?n=${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
    const { text } = await exchange(proxy.port, req(1) + req(2) + req(3), (t) => count(t, '"bytes"') === 3);
    const urls = [...text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(["/echo?n=1", "/echo?n=2", "/echo?n=3"]);
    expect(text).toContain('"host":"127.0.0.1:');
    // hop-by-hop response headers (and those named in Connection) are not relayed
    expect(text.toLowerCase()).not.toContain("x-hop");
    expect(text.toLowerCase()).not.toContain("connection: keep-alive");
    expect(upstream.accepted() - before).toBeLessThanOrEqual(1);
    expect(proxy.pool.idleCount).toBeGreaterThanOrEqual(1);
  });

  it("streams a chunked request body and relays a chunked response as it comes", async () => {
    const body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const { text } = await exchange(
      proxy.port,
      `POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
      (t) => t.includes("}"),
    );
    expect(text).toContain('"bytes":11');
    expect(text).toContain('"te":"chunked"');
    const chunked = await exchange(
      proxy.port,
      "GET /chunked HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n",
      (t) => t.endsWith("0\r\n\r\n"),
    );
    expect(chunked.text).toMatch(/transfer-encoding: chunked/i);
    expect(chunked.text).toContain("one,");
    expect(chunked.text).toContain("three");
  });

  it("relays a large body intact to a slow reader (the reused read buffer is never overwritten)", async () => {
    expect(await patternDigestThrough(() => net.connect(proxy.port, "127.0.0.1"))).toBe(PATTERN_DIGEST);
  });

  it("de-chunks for an HTTP/1.0 client and closes its connection", async () => {
    const { text, closed } = await exchange(
      proxy.port,
      "GET /chunked HTTP/1.0\r\nAccept-Encoding: x\r\n\r\n",
    );
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain("Connection: close");
    expect(text.endsWith("\r\n\r\none,two,three")).toBe(true);
  });

  it("decompresses gzip it asked for, and passes gzip through when the client asked", async () => {
    const ours = await exchange(proxy.port, "GET /gzip HTTP/1.1\r\nHost: localhost\r\n\r\n", (t) =>
      t.endsWith("0\r\n\r\n"),
    );
    expect(ours.text.toLowerCase()).not.toContain("content-encoding");
    expect(ours.text).toContain("unzipped text");
    const theirs = await exchange(
      proxy.port,
      "GET /gzip HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    expect(theirs.text).toMatch(/Content-Encoding: gzip/);
    expect(theirs.text).not.toContain("unzipped text");
  });

  it("answers locally, hands a connection over, and rejects bad heads", async () => {
    const local = await exchange(proxy.port, "HEAD /local HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(local.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(local.text).toContain("Content-Length: 6\r\n");
    expect(local.text.endsWith("\r\n\r\n")).toBe(true); // no body for HEAD
    const handed = await exchange(proxy.port, "GET /handover HTTP/1.1\r\nHost: x\r\n\r\nEXTRA");
    expect(handed.text.endsWith("EXTRA")).toBe(true);
    const big = await exchange(proxy.port, `GET / HTTP/1.1\r\nX: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(big.text).toMatch(/^HTTP\/1\.1 431 /);
    const garbage = await exchange(proxy.port, "GARBAGE\r\n\r\n");
    expect(garbage.text).toMatch(/^HTTP\/1\.1 400 /);
    const te = await exchange(proxy.port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n");
    expect(te.text).toMatch(/^HTTP\/1\.1 501 /);
  });

  it("answers 100 Continue when forwarding, and closes instead of waiting for a refused body", async () => {
    const socket = net.connect(proxy.port, "127.0.0.1");
    let text = "";
    socket.on("data", (c: Buffer) => {
      text += c.toString("latin1");
      if (text === "HTTP/1.1 100 Continue\r\n\r\n") socket.write("hello");
    });
    socket.write("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    const deadline = Date.now() + 10_000;
    while (!text.includes("}") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    expect(text.startsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")).toBe(true);
    expect(text).toContain('"bytes":5');
    const refused = await exchange(
      proxy.port,
      "PUT /local HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    expect(refused.closed).toBe(true);
    expect(refused.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n\r\nlocal\n$/);
  });

  it("closes the upstream connection when the client goes away mid-response", async () => {
    const before = foreverClosed;
    const socket = net.connect(proxy.port, "127.0.0.1");
    await new Promise<void>((resolve) => {
      socket.once("data", () => resolve());
      socket.write("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    socket.destroy();
    const deadline = Date.now() + 10_000;
    while (foreverClosed === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(foreverClosed).toBe(before + 1);
    const last = proxy.results.at(-1);
    expect(last?.clientAborted).toBe(true);
  });

  it("answers 500 with Go's text when the upstream is down", async () => {
    const gone = net.createServer();
    const port = await listen(gone);
    await new Promise<void>((r) => gone.close(() => r()));
    const down = await startProxy(port);
    const { text } = await exchange(down.port, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", (t) =>
      t.includes("refused\n"),
    );
    expect(text).toMatch(/^HTTP\/1\.1 500 /);
    expect(text).toContain(`dial tcp 127.0.0.1:${port}: connect: connection refused\n`);
  });
});

describe("upstream pool", () => {
  it("retries an idempotent request on a fresh connection when a kept-alive one was closed, not a POST", async () => {
    // An upstream that answers the first request of each connection and drops the connection on the second.
    const raw = net.createServer((socket) => {
      let served = 0;
      let buf = "";
      socket.on("data", (c: Buffer) => {
        buf += c.toString("latin1");
        while (buf.includes("\r\n\r\n")) {
          const end = buf.indexOf("\r\n\r\n") + 4;
          const head = buf.slice(0, end);
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + length) return;
          buf = buf.slice(end + length);
          if (served++ > 0) {
            socket.destroy();
            return;
          }
          socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
      });
      socket.on("error", () => {});
    });
    const t = tracked(raw);
    const port = await listen(raw);
    const proxy = await startProxy(port);
    const get = () =>
      exchange(proxy.port, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").then((r) => r.text);
    expect(await get()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok$/);
    expect(await get()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok$/); // reused → dropped → retried
    expect(t.accepted()).toBe(2);
    const post = await exchange(
      proxy.port,
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    expect(post.text).toMatch(/^HTTP\/1\.1 500 /); // not replayed
    expect(post.text).toContain("EOF\n");
  });

  it("skips informational answers and parses a response head split across reads", async () => {
    const raw = net.createServer((socket) => {
      socket.once("data", () => {
        socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Part: one\r\nContent-");
        // long enough to overwrite the first read's bytes if they were kept in the read buffer
        setTimeout(() => socket.write(`Length: 2\r\nX-Pad: ${"p".repeat(200)}\r\n\r\nok`), 50);
      });
      socket.on("error", () => {});
    });
    tracked(raw);
    const proxy = await startProxy(await listen(raw));
    const { text } = await exchange(proxy.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(text).toMatch(
      /^HTTP\/1\.1 200 OK\r\nX-Part: one\r\nContent-Length: 2\r\nX-Pad: p{200}\r\nConnection: close\r\n\r\nok$/,
    );
  });

  it("keeps the number of upstream connections bounded by the concurrency (no leak)", async () => {
    const proxy = await startProxy(upstreamPort);
    const before = upstream.accepted();
    const one = () =>
      exchange(proxy.port, "GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").then((r) => {
        expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
      });
    for (let round = 0; round < 25; round++) await Promise.all([one(), one(), one(), one()]);
    expect(upstream.accepted() - before).toBeLessThanOrEqual(4);
    expect(proxy.pool.size).toBeLessThanOrEqual(4);
    expect(proxy.server.connectionCount).toBeLessThanOrEqual(4);
  });
});

describe("fast HTTP path: answers decided later, response rewrites, retries elsewhere", () => {
  let port: number;
  let deadPort: number;
  beforeAll(async () => {
    const backend = http.createServer((req, res) => {
      let bytes = 0;
      req.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      req.on("end", () => {
        if (req.url === "/page") {
          res.writeHead(200, {
            "Content-Type": "text/html",
            Location: "/elsewhere",
            "Access-Control-Allow-Origin": "*",
          });
          res.end("<a href='/x'>x</a>");
          return;
        }
        if (req.url === "/html") {
          res.writeHead(200, { "Content-Type": "text/html", "Content-Encoding": "gzip" });
          // chunked: no Content-Length
          res.write(gzipSync("<p>hello</p>"));
          res.end();
          return;
        }
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ method: req.method, url: req.url, bytes }));
      });
    });
    tracked(backend);
    const upstreamPort = await listen(backend);
    // A port with nothing listening: connections are refused.
    const probe = net.createServer();
    deadPort = await listen(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    const good = new UpstreamPool({ host: "127.0.0.1", port: upstreamPort, target: "good" });
    const dead = new UpstreamPool({ host: "127.0.0.1", port: deadPort, target: `127.0.0.1:${deadPort}` });
    const server = new FastHttpServer({
      idleTimeoutMs: 300,
      onRequest: (conn, head) => {
        // Decided after the request body has arrived (as after an asynchronous authorization).
        setTimeout(() => {
          let tries = 0;
          conn.forward({
            pool: head.target === "/retry" ? dead : good,
            method: head.method,
            path: head.target,
            headers: ["Host", "backend"],
            requestedGzip: true,
            onResponseHead: (_status, headers) => {
              for (let i = 0; i < headers.length; i += 2) {
                const lower = (headers[i] as string).toLowerCase();
                if (lower === "location") headers[i + 1] = `/prefix${headers[i + 1]}`;
                if (lower === "access-control-allow-origin") {
                  headers.splice(i, 2);
                  i -= 2;
                }
              }
              if (head.target === "/html" || head.target === "/page") {
                return {
                  maxBytes: head.target === "/page" ? 4 : 1 << 20,
                  rewrite: (body, hs) => {
                    const i = hs.findIndex((h) => h.toLowerCase() === "content-encoding");
                    if (i >= 0) hs.splice(i, 2);
                    return Buffer.from(gunzipText(body).toUpperCase());
                  },
                };
              }
              return undefined;
            },
            onError: (c, error) => {
              if (tries++ === 0) {
                c.forward({
                  pool: good,
                  method: head.method,
                  path: "/retried",
                  headers: ["Host", "backend"],
                  requestedGzip: false,
                  onError: (c2, e2) => c2.respond(502, "", e2.message),
                });
                return;
              }
              c.respond(502, "", error.message);
            },
          });
        }, 30);
      },
    });
    port = await listen(server.server);
    closers.push(() => {
      server.closeAll();
      good.destroy();
      dead.destroy();
      return new Promise<void>((r) => server.server.close(() => r()));
    });
  });

  function gunzipText(b: Buffer): string {
    return b[0] === 0x1f ? gunzipSync(b).toString() : b.toString();
  }

  it("forwards a body that was read before the answer was decided, with its Content-Length", async () => {
    const r = await exchange(
      port,
      "POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.text).toContain('"bytes":5');
  });

  it("edits response headers, rewrites a whole body with an exact length, streams one too large", async () => {
    const html = await exchange(port, "GET /html HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    expect(html.text).toContain("Content-Length: 12\r\n");
    expect(html.text).not.toMatch(/content-encoding|transfer-encoding/i);
    expect(html.text.endsWith("\r\n\r\n<P>HELLO</P>")).toBe(true);
    // Larger than maxBytes: relayed as it is, headers still edited.
    const page = await exchange(port, "GET /page HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    expect(page.text).toContain("Location: /prefix/elsewhere\r\n");
    expect(page.text).not.toMatch(/access-control-allow-origin/i);
    expect(page.text).toContain("<a href='/x'>x</a>");
  });

  it("lets onError forward the request again (a retry on another upstream)", async () => {
    const r = await exchange(port, "GET /retry HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.text).toContain('"url":"/retried"');
  });

  it("closes a connection that stays idle longer than idleTimeoutMs", async () => {
    const r = await exchange(port, "GET /echo HTTP/1.1\r\nHost: p\r\n\r\n");
    expect(r.closed).toBe(true);
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("fast HTTP path over TLS", () => {
  let cert: TestCert;
  let server: FastHttpServer;
  let port: number;
  beforeAll(async () => {
    cert = await serverCert();
    server = new FastHttpServer({
      tls: cert,
      // Answers later than the request's end of stream arrives.
      onRequest: (conn) =>
        setTimeout(() => conn.respond(200, "Content-Type: text/plain\r\n", "hello over tls\n"), 50),
    });
    port = await listen(server.server);
    closers.push(() => {
      server.closeAll();
      return new Promise<void>((r) => server.server.close(() => r()));
    });
  });
  const connections = () =>
    new Promise<number>((resolve, reject) =>
      server.server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
    );
  async function until(what: () => Promise<boolean>, ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await what()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return what();
  }

  it("closes a connection that ends before its TLS handshake (a TCP probe) at once", async () => {
    const probe = net.connect(port, "127.0.0.1");
    await new Promise((r) => probe.once("connect", r));
    expect(await until(async () => (await connections()) === 1)).toBe(true);
    probe.end();
    // Node would otherwise keep it until its 120 s handshake timeout, and close() would wait for it.
    expect(await until(async () => (await connections()) === 0)).toBe(true);
  });

  it("answers a client that shuts down its sending side after the request", async () => {
    // A half-open TCP connection underneath: TLS takes allowHalfOpen from the socket it wraps.
    const tcp = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const socket = tls.connect({ socket: tcp, servername: "localhost", ca: cert.ca });
    let text = "";
    socket.on("data", (c: Buffer) => {
      text += c.toString();
    });
    await new Promise((r) => socket.once("secureConnect", r));
    socket.end("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((r) => socket.once("close", r));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain("hello over tls");
  });

  it("relays a large body intact to a slow TLS reader", async () => {
    const tlsProxy = await startProxy(upstreamPort, cert);
    const digest = await patternDigestThrough(() =>
      tls.connect({ port: tlsProxy.port, host: "127.0.0.1", servername: "localhost", ca: cert.ca }),
    );
    expect(digest).toBe(PATTERN_DIGEST);
  });

  it("copies small answers for a TLS client instead of giving up the upstream read buffer", async () => {
    // A TLS write completes on a later turn: writing straight from the read buffer would cost the
    // upstream connection a fresh 64 KiB buffer per response.
    const tlsProxy = await startProxy(upstreamPort, cert);
    const retain = vi.spyOn(UpstreamConnection.prototype, "retain");
    try {
      const socket = tls.connect({
        port: tlsProxy.port,
        host: "127.0.0.1",
        servername: "localhost",
        ca: cert.ca,
      });
      let text = "";
      const answers = new Promise<void>((resolve, reject) => {
        socket.on("data", (c: Buffer) => {
          text += c.toString("latin1");
          if (count(text, '"bytes"') === 20) resolve();
        });
        socket.on("error", reject);
      });
      for (let n = 0; n < 20; n++) socket.write(`GET /echo?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await answers;
      socket.destroy();
      expect([...text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual(
        Array.from({ length: 20 }, (_, n) => `/echo?n=${n}`),
      );
      expect(retain).not.toHaveBeenCalled();
    } finally {
      retain.mockRestore();
    }
  });

  it("drops connections still in their handshake when closing, so close() completes", async () => {
    const other = new FastHttpServer({ tls: cert, onRequest: () => {} });
    const otherPort = await listen(other.server);
    const stalled = net.connect(otherPort, "127.0.0.1"); // connects, never says hello
    const stalledClosed = new Promise((r) => stalled.once("close", r));
    stalled.on("error", () => {});
    await new Promise((r) => stalled.once("connect", r));
    await new Promise((r) => setTimeout(r, 50));
    const closed = new Promise<void>((r) => other.server.close(() => r()));
    other.startClosing();
    other.closeAll();
    await closed;
    await stalledClosed;
  });
});
