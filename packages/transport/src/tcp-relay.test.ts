import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialTcp, encodeProxyV1, proxyAddressesOf, type RelayStats, relayTcp } from "./index.js";
import { blackholePort } from "./l4.test-helpers.js";

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
}
const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

describe("dialTcp", () => {
  it("fails fast with UPSTREAM_CONNECT_FAILED on a refused port", async () => {
    const s = createServer();
    const port = await listen(s);
    await close(s);
    await expect(dialTcp({ host: "127.0.0.1", port, connectTimeoutMs: 5000 })).rejects.toMatchObject({
      code: "UPSTREAM_CONNECT_FAILED",
      details: { code: "ECONNREFUSED" },
    });
  });

  it("gives up after connectTimeoutMs with UPSTREAM_CONNECT_TIMEOUT", async () => {
    const hole = await blackholePort();
    try {
      const start = Date.now();
      await expect(
        dialTcp({ host: "127.0.0.1", port: hole.port, connectTimeoutMs: 300 }),
      ).rejects.toMatchObject({
        code: "UPSTREAM_CONNECT_TIMEOUT",
      });
      expect(Date.now() - start).toBeLessThan(5000);
    } finally {
      hole.close();
    }
  });
});

describe("relayTcp", () => {
  // front: accepts downstream connections and relays them to the echo-ish upstream.
  let upstream: Server;
  let front: Server;
  let upstreamPort = 0;
  let frontPort = 0;
  const upstreamSockets: Socket[] = [];
  let lastStats: Promise<RelayStats> | undefined;
  let mode: "echo-after-end" | "silent" = "echo-after-end";
  let idleTimeoutMs = 0;
  let sendProxy = false;
  const received: Buffer[] = [];

  beforeAll(async () => {
    upstream = createServer({ allowHalfOpen: true }, (s) => {
      upstreamSockets.push(s);
      const chunks: Buffer[] = [];
      s.on("data", (d: Buffer) => chunks.push(d));
      s.on("end", () => {
        received.push(Buffer.concat(chunks));
        if (mode === "echo-after-end") {
          // The client has half-closed: answer after its FIN, then close our side.
          s.end(Buffer.concat([Buffer.from("got:"), Buffer.from(String(Buffer.concat(chunks).length))]));
        }
      });
      s.on("error", () => {});
    });
    upstreamPort = await listen(upstream);
    front = createServer({ allowHalfOpen: true }, async (down) => {
      const prelude = sendProxy ? encodeProxyV1(proxyAddressesOf(down)) : undefined;
      const up = await dialTcp({ host: "127.0.0.1", port: upstreamPort, ...(prelude ? { prelude } : {}) });
      lastStats = relayTcp(down, up, {
        idleTimeoutMs,
        ...(prelude ? { upstreamPreludeBytes: prelude.length } : {}),
      }).done;
    });
    frontPort = await listen(front);
  });
  afterAll(async () => {
    for (const s of upstreamSockets) s.destroy();
    await close(front);
    await close(upstream);
  });

  it("relays bulk bytes intact, passes a half-close on, and still delivers the answer", async () => {
    mode = "echo-after-end";
    sendProxy = false;
    idleTimeoutMs = 0;
    const payload = randomBytes(8 * 1024 * 1024);
    const client = connect({ port: frontPort, host: "127.0.0.1", allowHalfOpen: true });
    const answer: Buffer[] = [];
    client.on("data", (d: Buffer) => answer.push(d));
    const ended = new Promise((r) => client.once("end", r));
    client.end(payload);
    await ended;
    expect(Buffer.concat(answer).toString()).toBe(`got:${payload.length}`);
    expect(received.at(-1)!.equals(payload)).toBe(true);
    const stats = await lastStats!;
    expect(stats).toMatchObject({
      reason: "closed",
      bytesToUpstream: payload.length,
      bytesToDownstream: `got:${payload.length}`.length,
    });
    client.destroy();
  });

  it("writes a PROXY header first and does not count it as payload", async () => {
    sendProxy = true;
    const client = connect({ port: frontPort, host: "127.0.0.1", allowHalfOpen: true });
    const ended = new Promise((r) => client.once("end", r));
    client.on("data", () => {});
    await new Promise((r) => client.once("connect", r));
    const localPort = client.localPort;
    client.end("hello");
    await ended;
    const got = received.at(-1)!.toString("latin1");
    expect(got).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${localPort} ${frontPort}\r\nhello`);
    expect((await lastStats!).bytesToUpstream).toBe(5);
    sendProxy = false;
    client.destroy();
  });

  it("closes both sides after the idle timeout", async () => {
    mode = "silent";
    idleTimeoutMs = 300;
    const client = connect({ port: frontPort, host: "127.0.0.1" });
    client.on("error", () => {});
    const closed = new Promise((r) => client.once("close", r));
    client.write("x");
    await closed;
    const stats = await lastStats!;
    expect(stats.reason).toBe("idle-timeout");
    expect(stats.durationMs).toBeGreaterThanOrEqual(250);
    idleTimeoutMs = 0;
  });

  it("destroys the downstream when the upstream resets", async () => {
    mode = "silent";
    const client = connect({ port: frontPort, host: "127.0.0.1" });
    client.on("error", () => {});
    const closed = new Promise((r) => client.once("close", r));
    client.write("x");
    for (let i = 0; i < 100 && received.length === 0 && upstreamSockets.length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    upstreamSockets.at(-1)!.resetAndDestroy();
    await closed;
    expect((await lastStats!).reason).toBe("upstream-error");
  });
});
