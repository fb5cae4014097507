import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { blackholePort } from "@kproxy/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dialTcp,
  encodeProxyV1,
  proxyAddressesOf,
  type Relay,
  type RelayOptions,
  type RelayStats,
  relayTcp,
} from "./index.js";

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

describe("relayTcp data path", () => {
  // upstream: per connection, reads the first line "<bytes> <seed> [<piece size>]\n", then sends
  // that many pseudo-random bytes (at once, or piece by piece), and hashes whatever else it
  // receives; answers the hash once all is sent and the client's FIN has arrived.
  let upstream: Server;
  let upstreamPort = 0;
  const servers: Server[] = [];
  const relays: Relay[] = [];

  const stream = (n: number, seed: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    return b;
  };
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

  beforeAll(async () => {
    upstream = createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      let head = Buffer.alloc(0);
      let hash: ReturnType<typeof createHash> | undefined;
      s.on("data", (d: Buffer) => {
        if (hash) {
          hash.update(d);
          return;
        }
        head = Buffer.concat([head, d]);
        const nl = head.indexOf(10);
        if (nl < 0) return;
        const [n, seed, piece] = head.subarray(0, nl).toString().split(" ").map(Number);
        hash = createHash("sha256").update(head.subarray(nl + 1));
        const data = stream(n!, seed!);
        if (!piece) {
          s.write(data);
          sent();
          return;
        }
        // In small pieces, one per event-loop turn: the relay sees many small reads.
        let off = 0;
        const next = () => {
          if (off >= data.length || !s.writable) {
            sent();
            return;
          }
          const more = s.write(data.subarray(off, off + piece));
          off += piece;
          if (more) setImmediate(next);
          else s.once("drain", next);
        };
        next();
      });
      // The hash of what came up, once everything went down and the client's FIN arrived.
      let waiting = 2;
      const sent = () => {
        if (--waiting === 0) s.end(`\n${hash?.digest("hex") ?? ""}`);
      };
      s.on("end", () => (hash ? sent() : s.end("no header")));
    });
    upstreamPort = await listen(upstream);
  });
  afterAll(async () => {
    for (const r of relays) r.close();
    for (const s of servers) await close(s);
    await close(upstream);
  });

  /** A front that relays to the upstream, optionally waiting before it dials. */
  async function front(options: RelayOptions & { dialDelayMs?: number } = {}): Promise<number> {
    const s = createServer({ allowHalfOpen: true }, async (down) => {
      down.on("error", () => {});
      if (options.dialDelayMs) await new Promise((r) => setTimeout(r, options.dialDelayMs));
      const up = await dialTcp({ host: "127.0.0.1", port: upstreamPort });
      relays.push(relayTcp(down, up, options));
    });
    servers.push(s);
    return listen(s);
  }

  /**
   * Sends `sendBytes` random bytes up while the upstream sends `recvBytes` down; the client reads
   * slowly when `slow` (so both relay directions hit backpressure). Returns what came back.
   */
  async function exchange(port: number, sendBytes: number, recvBytes: number, seed: number, slow = false) {
    const client = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    client.on("error", () => {});
    const got: Buffer[] = [];
    let pauses = 0;
    client.on("data", (d: Buffer) => {
      got.push(d);
      if (slow && pauses < 40 && got.length % 8 === 0) {
        pauses++;
        client.pause();
        setTimeout(() => client.resume(), 5);
      }
    });
    const ended = new Promise<void>((r) => client.once("end", () => r()));
    const payload = stream(sendBytes, seed + 1);
    client.write(`${recvBytes} ${seed}\n`);
    // Written in pieces, so that reads of every size happen on the way up.
    for (let off = 0; off < payload.length; ) {
      const n = Math.min(payload.length - off, 1 + ((off * 7919) % 200_000));
      if (!client.write(payload.subarray(off, off + n))) await new Promise((r) => client.once("drain", r));
      off += n;
    }
    client.end();
    await ended;
    client.destroy();
    const all = Buffer.concat(got);
    return {
      down: all.subarray(0, recvBytes),
      upHash: all.subarray(recvBytes + 1).toString(),
      sentHash: sha(payload),
      expectedDown: stream(recvBytes, seed),
    };
  }

  it("reads both directions into reused buffers (no Buffer allocated per read)", async () => {
    const port = await front();
    const r = await exchange(port, 1000, 1000, 7);
    expect(r.down.equals(r.expectedDown)).toBe(true);
    expect(relays.at(-1)!.reusedBuffers()).toBe(2);
    const plain = await front({ reuseBuffers: false });
    await exchange(plain, 10, 10, 8);
    expect(relays.at(-1)!.reusedBuffers()).toBe(0);
  });

  it.each([
    ["reused buffers", true],
    ["a Buffer per read", false],
  ])(
    "keeps concurrent bulk streams intact both ways with slow readers (%s)",
    async (_, reuseBuffers) => {
      const port = await front({ reuseBuffers });
      const results = await Promise.all(
        [0, 1, 2, 3, 4, 5].map((i) =>
          exchange(port, (i + 1) * 1_500_000, (6 - i) * 1_500_000 + i, 100 + i, i % 2 === 0),
        ),
      );
      for (const r of results) {
        expect(r.down.equals(r.expectedDown)).toBe(true);
        expect(r.upHash).toBe(r.sentHash);
      }
    },
    60_000,
  );

  it("keeps data intact when a direction goes from bulk to small reads and back", async () => {
    const port = await front();
    const client = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    client.on("error", () => {});
    const got: Buffer[] = [];
    client.on("data", (d: Buffer) => got.push(d));
    const ended = new Promise((r) => client.once("end", r));
    const parts = [stream(1_000_000, 31)];
    for (let i = 0; i < 40; i++) parts.push(stream(100 + i, 40 + i));
    parts.push(stream(1_000_000, 32));
    client.write("0 1\n");
    for (const [i, p] of parts.entries()) {
      client.write(p);
      // Small pieces one at a time (each its own read), so the relay sees a run of small reads.
      if (i > 0 && i < parts.length - 1) await new Promise((r) => setTimeout(r, 2));
    }
    client.end();
    await ended;
    client.destroy();
    expect(Buffer.concat(got).toString().trim()).toBe(sha(Buffer.concat(parts)));
  });

  it("keeps small chunks intact while the reader is stalled (nothing reused while being written)", async () => {
    const port = await front();
    const run = async (seed: number) => {
      const client = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      client.on("error", () => {});
      client.pause();
      const got: Buffer[] = [];
      const ended = new Promise((r) => client.once("end", r));
      client.write(`6000000 ${seed} 3000\n`);
      await new Promise((r) => setTimeout(r, 400));
      client.on("data", (d: Buffer) => got.push(d));
      client.resume();
      client.end();
      await ended;
      client.destroy();
      return Buffer.concat(got).subarray(0, 6_000_000).equals(stream(6_000_000, seed));
    };
    expect(await Promise.all([run(51), run(52), run(53)])).toEqual([true, true, true]);
  }, 60_000);

  it("passes on a FIN that arrived before the relay started (a client that sent nothing)", async () => {
    const port = await front({ dialDelayMs: 150 });
    const client = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    client.on("error", () => {});
    const got: Buffer[] = [];
    client.on("data", (d: Buffer) => got.push(d));
    const ended = new Promise((r) => client.once("end", r));
    client.end();
    await ended;
    client.destroy();
    expect(Buffer.concat(got).toString()).toBe("no header");
    expect((await relays.at(-1)!.done).reason).toBe("closed");
  });

  it("relays bytes that arrived before the relay started, in order", async () => {
    const port = await front({ dialDelayMs: 150 });
    const r = await exchange(port, 300_000, 5, 21);
    expect(r.upHash).toBe(r.sentHash);
    expect(r.down.equals(r.expectedDown)).toBe(true);
  });

  it("keeps a connection with traffic open past the idle timeout, then closes it when idle", async () => {
    const port = await front({ idleTimeoutMs: 400 });
    const client = connect({ port, host: "127.0.0.1" });
    client.on("error", () => {});
    client.on("data", () => {});
    let closed = false;
    const closedAt = new Promise<number>((r) =>
      client.once("end", () => {
        closed = true;
        r(Date.now());
      }),
    );
    client.write("0 1\n");
    for (let i = 0; i < 12; i++) {
      await new Promise((r) => setTimeout(r, 100));
      client.write("x");
    }
    expect(closed).toBe(false);
    const lastByte = Date.now();
    expect((await closedAt) - lastByte).toBeGreaterThanOrEqual(300);
    expect((await relays.at(-1)!.done).reason).toBe("idle-timeout");
  });
});
