import { duplexPair } from "node:stream";
import { inflateSync } from "node:zlib";
import { describe, expect, it, vi } from "vitest";
import {
  decodeHeaderBlock,
  encodeFrame,
  encodeHeaderBlock,
  FLAG_FIN,
  GoAwayStatus,
  HeaderCompressor,
  HeaderDecompressor,
  RstStatus,
  SPDY3_DICTIONARY,
  type SpdyFrame,
  SpdyFrameReader,
  SpdyProtocolError,
  SpdySession,
} from "../src/streams/spdy.js";

vi.setConfig({ testTimeout: 30_000 });

const hex = (b: Buffer) => b.toString("hex");

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

describe("SPDY/3.1 frame encoding", () => {
  it("encodes control frames with version 3 and the exact field layout", () => {
    expect(hex(encodeFrame({ type: "rst_stream", streamId: 5, status: RstStatus.CANCEL }))).toBe(
      "8003000300000008" + "00000005" + "00000005",
    );
    expect(hex(encodeFrame({ type: "ping", id: 0x01020304 }))).toBe("8003000600000004" + "01020304");
    expect(
      hex(encodeFrame({ type: "goaway", lastGoodStreamId: 7, status: GoAwayStatus.PROTOCOL_ERROR })),
    ).toBe("8003000700000008" + "00000007" + "00000001");
    expect(hex(encodeFrame({ type: "window_update", streamId: 3, delta: 0x10000 }))).toBe(
      "8003000900000008" + "00000003" + "00010000",
    );
    expect(
      hex(encodeFrame({ type: "settings", flags: 0, entries: [{ id: 7, flags: 1, value: 0x12345 }] })),
    ).toBe("800300040000000c" + "00000001" + "01000007" + "00012345");
    expect(
      hex(encodeFrame({ type: "syn_reply", streamId: 1, flags: FLAG_FIN, headerBlock: Buffer.from("ab") })),
    ).toBe("8003000201000006" + "00000001" + "6162");
    expect(
      hex(
        encodeFrame({
          type: "syn_stream",
          streamId: 3,
          associatedStreamId: 0,
          priority: 2,
          slot: 0,
          flags: 0,
          headerBlock: Buffer.from("x"),
        }),
      ),
    ).toBe("800300010000000b" + "00000003" + "00000000" + "4000" + "78");
  });

  it("encodes data frames with the stream id, flags and 24-bit length", () => {
    expect(
      hex(encodeFrame({ type: "data", streamId: 0x7fffffff, flags: FLAG_FIN, data: Buffer.from("hi") })),
    ).toBe("7fffffff01000002" + "6869");
  });

  it("reads frames back across arbitrary chunk boundaries", () => {
    const frames: SpdyFrame[] = [
      { type: "data", streamId: 1, flags: 0, data: Buffer.from("hello") },
      { type: "ping", id: 9 },
      { type: "rst_stream", streamId: 3, status: 5 },
      { type: "settings", flags: 0, entries: [{ id: 7, flags: 0, value: 1000 }] },
      { type: "window_update", streamId: 1, delta: 12 },
      {
        type: "syn_stream",
        streamId: 5,
        associatedStreamId: 0,
        priority: 3,
        slot: 0,
        flags: 1,
        headerBlock: Buffer.from("zz"),
      },
    ];
    const wire = Buffer.concat(frames.map(encodeFrame));
    const reader = new SpdyFrameReader();
    const got: SpdyFrame[] = [];
    for (let i = 0; i < wire.length; i += 3) got.push(...reader.push(wire.subarray(i, i + 3)));
    expect(got).toEqual(frames);
    expect(reader.pendingBytes).toBe(0);
  });

  it("rejects frames of another SPDY version and truncated control frames", () => {
    expect(() => new SpdyFrameReader().push(Buffer.from("8002000600000004000000ff", "hex"))).toThrow(
      SpdyProtocolError,
    );
    expect(() =>
      new SpdyFrameReader().push(Buffer.from("800300030000000200000001", "hex").subarray(0, 10)),
    ).toThrow(/RST_STREAM frame too short/);
  });
});

describe("SPDY/3 header blocks", () => {
  it("encodes name/value pairs with 32-bit lengths, lower-case names and NUL-joined values", () => {
    const block = encodeHeaderBlock({ streamType: "data", Port: ["80", "81"] });
    expect(hex(block)).toBe(
      "00000002" +
        "0000000a" +
        Buffer.from("streamtype").toString("hex") +
        "00000004" +
        Buffer.from("data").toString("hex") +
        "00000004" +
        Buffer.from("port").toString("hex") +
        "00000005" +
        Buffer.from("80\u000081").toString("hex"),
    );
    expect(decodeHeaderBlock(block)).toEqual({ streamtype: ["data"], port: ["80", "81"] });
  });

  it("rejects malformed blocks", () => {
    expect(() => decodeHeaderBlock(Buffer.from("00000001000000ff61", "hex"))).toThrow(SpdyProtocolError);
    expect(() => decodeHeaderBlock(Buffer.from("0000", "hex"))).toThrow(SpdyProtocolError);
  });

  it("uses the SPDY/3 dictionary and one compression context per direction", async () => {
    expect(SPDY3_DICTIONARY.length).toBe(1423);
    expect(adler32(SPDY3_DICTIONARY)).toBe(0xe3c6a7c2);
    const c = new HeaderCompressor();
    const d = new HeaderDecompressor();
    const h1 = { streamtype: "error", port: "8080", requestid: "0" };
    const h2 = { streamtype: "data", port: "8080", requestid: "0" };
    const b1 = await c.compress(h1);
    const b2 = await c.compress(h2);
    // zlib header with FDICT set, then the dictionary's Adler-32.
    expect(b1[0]).toBe(0x78);
    expect((b1[1] as number) & 0x20).toBe(0x20);
    expect(b1.readUInt32BE(2)).toBe(0xe3c6a7c2);
    // The second block reuses the context: it has no zlib header and is shorter.
    expect(b2.length).toBeLessThan(b1.length);
    expect(inflateSync(b1, { dictionary: SPDY3_DICTIONARY, finishFlush: 2 })).toEqual(encodeHeaderBlock(h1));
    expect(await d.decompress(b1)).toEqual({ streamtype: ["error"], port: ["8080"], requestid: ["0"] });
    expect(await d.decompress(b2)).toEqual({ streamtype: ["data"], port: ["8080"], requestid: ["0"] });
    c.close();
    d.close();
  });
});

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sessionPair() {
  const [a, b] = duplexPair();
  const server = new SpdySession(a, { role: "server" });
  const client = new SpdySession(b, { role: "client" });
  return { server, client, a, b };
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

describe("SpdySession", () => {
  it("opens a stream, replies, carries data both ways with FIN, and answers pings", async () => {
    const { server, client } = sessionPair();
    server.on("stream", (s) => {
      expect(s.headers.streamtype).toEqual(["data"]);
      void s.reply({ ok: "yes" });
      s.pipe(s); // echo
    });
    const { stream, headers } = await client.openStream({ streamType: "data" });
    expect(headers).toEqual({ ok: ["yes"] });
    const big = Buffer.alloc(300 * 1024, 7);
    const back = readAll(stream);
    stream.end(big);
    expect((await back).equals(big)).toBe(true);
    await client.ping();
    client.destroy();
    server.destroy();
  });

  it("respects a peer's flow-control window once it takes part in flow control", async () => {
    const [a, b] = duplexPair();
    const server = new SpdySession(a, { role: "server" });
    const reader = new SpdyFrameReader();
    const received: SpdyFrame[] = [];
    b.on("data", (c: Buffer) => received.push(...reader.push(c)));
    const opened = new Promise<import("../src/streams/spdy.js").SpdyStream>((r) => server.on("stream", r));
    // A raw client: small initial window, then a SYN_STREAM with a compressed header block.
    b.write(encodeFrame({ type: "settings", flags: 0, entries: [{ id: 7, flags: 0, value: 1000 }] }));
    const block = await new HeaderCompressor().compress({ streamtype: "data" });
    b.write(
      encodeFrame({
        type: "syn_stream",
        streamId: 1,
        associatedStreamId: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        headerBlock: block,
      }),
    );
    const s = await opened;
    s.write(Buffer.alloc(5000, 1));
    const dataBytes = () =>
      received
        .filter((f) => f.type === "data")
        .reduce((n, f) => n + (f.type === "data" ? f.data.length : 0), 0);
    await waitFor(() => dataBytes() >= 1000, "the first 1000 bytes");
    await new Promise((r) => setTimeout(r, 100));
    expect(dataBytes()).toBe(1000);
    b.write(encodeFrame({ type: "window_update", streamId: 1, delta: 1500 }));
    await waitFor(() => dataBytes() >= 2500, "1500 more bytes");
    await new Promise((r) => setTimeout(r, 100));
    expect(dataBytes()).toBe(2500);
    server.destroy();
  });

  it("answers garbage with GOAWAY(PROTOCOL_ERROR) and unknown streams with RST_STREAM, without throwing", async () => {
    const [a, b] = duplexPair();
    const errors: Error[] = [];
    const server = new SpdySession(a, { role: "server", onError: (e) => errors.push(e) });
    const reader = new SpdyFrameReader();
    const received: SpdyFrame[] = [];
    b.on("data", (c: Buffer) => received.push(...reader.push(c)));
    b.write(encodeFrame({ type: "data", streamId: 41, flags: 0, data: Buffer.from("x") }));
    await waitFor(() => received.length > 0, "the RST_STREAM");
    expect(received).toContainEqual({ type: "rst_stream", streamId: 41, status: RstStatus.INVALID_STREAM });
    b.write(Buffer.from("8007000100000000", "hex")); // version 7
    await waitFor(() => received.some((f) => f.type === "goaway"), "the GOAWAY");
    expect(received.at(-1)).toEqual({
      type: "goaway",
      lastGoodStreamId: 0,
      status: GoAwayStatus.PROTOCOL_ERROR,
    });
    expect(errors[0]?.message).toContain("unsupported SPDY version 7");
    server.destroy();
  });
});
