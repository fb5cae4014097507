import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V2_SIGNATURE,
  parseProxyHeader,
  proxyAddressesOf,
  readProxyHeader,
} from "./index.js";

const SIG = "0d0a0d0a000d0a515549540a";

describe("PROXY protocol v1 encoding", () => {
  it("writes the spec's TCP4, TCP6 and UNKNOWN lines byte for byte", () => {
    expect(
      encodeProxyV1({
        family: "TCP4",
        sourceAddress: "192.168.0.1",
        sourcePort: 56324,
        destinationAddress: "192.168.0.11",
        destinationPort: 443,
      }).toString("latin1"),
    ).toBe("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    expect(
      encodeProxyV1({
        family: "TCP6",
        sourceAddress: "2001:0db8:0000:0000:0000:0000:0000:0001",
        sourcePort: 1234,
        destinationAddress: "::1",
        destinationPort: 6443,
      }).toString("latin1"),
    ).toBe("PROXY TCP6 2001:db8::1 ::1 1234 6443\r\n");
    expect(encodeProxyV1(undefined).toString("latin1")).toBe("PROXY UNKNOWN\r\n");
  });

  it("refuses addresses of the wrong family", () => {
    expect(() =>
      encodeProxyV1({
        family: "TCP4",
        sourceAddress: "::1",
        sourcePort: 1,
        destinationAddress: "1.2.3.4",
        destinationPort: 2,
      }),
    ).toThrow(expect.objectContaining({ code: "PROXY_PROTOCOL_INVALID" }));
  });
});

describe("PROXY protocol v2 encoding", () => {
  it("writes signature, PROXY|v2, TCP over IPv4, length 12 and the addresses", () => {
    const b = encodeProxyV2({
      family: "TCP4",
      sourceAddress: "192.168.0.1",
      sourcePort: 56324,
      destinationAddress: "10.0.0.2",
      destinationPort: 443,
    });
    expect(b.toString("hex")).toBe(`${SIG}2111000cc0a800010a000002dc0401bb`);
  });

  it("writes TCP over IPv6 with length 36", () => {
    const b = encodeProxyV2({
      family: "TCP6",
      sourceAddress: "2001:db8::1",
      sourcePort: 1234,
      destinationAddress: "::ffff:10.0.0.1",
      destinationPort: 6443,
    });
    expect(b.toString("hex")).toBe(
      `${SIG}21210024` + "20010db8000000000000000000000001" + "00000000000000000000ffff0a000001" + "04d2192b",
    );
  });

  it("writes LOCAL with no addresses, and TLVs after the addresses", () => {
    expect(encodeProxyV2(undefined).toString("hex")).toBe(`${SIG}20000000`);
    const b = encodeProxyV2(
      {
        family: "TCP4",
        sourceAddress: "1.2.3.4",
        sourcePort: 1,
        destinationAddress: "5.6.7.8",
        destinationPort: 2,
      },
      { tlvs: [{ type: 0x02, value: Buffer.from("api") }] },
    );
    expect(b.toString("hex")).toBe(`${SIG}211100120102030405060708000100020200036170` + "69");
  });
});

describe("parseProxyHeader", () => {
  it("round-trips v1 and v2 and reports the header length", () => {
    const a = {
      family: "TCP6" as const,
      sourceAddress: "fe80::1",
      sourcePort: 40000,
      destinationAddress: "2001:db8:0:1::5",
      destinationPort: 6443,
    };
    for (const enc of [encodeProxyV1(a), encodeProxyV2(a)]) {
      const payload = Buffer.concat([enc, Buffer.from("\x16\x03\x01hello")]);
      const parsed = parseProxyHeader(payload);
      expect(parsed?.length).toBe(enc.length);
      expect(parsed?.header.addresses).toEqual(a);
      expect(parsed?.header.command).toBe("PROXY");
    }
    const local = parseProxyHeader(encodeProxyV2(undefined));
    expect(local?.header).toMatchObject({ version: 2, command: "LOCAL", addresses: undefined });
    const unknown = parseProxyHeader(Buffer.from("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"));
    expect(unknown?.header).toMatchObject({ version: 1, addresses: undefined });
  });

  it("asks for more bytes on a partial header, byte by byte", () => {
    const full = encodeProxyV2({
      family: "TCP4",
      sourceAddress: "1.2.3.4",
      sourcePort: 1,
      destinationAddress: "5.6.7.8",
      destinationPort: 2,
    });
    for (let i = 1; i < full.length; i++) expect(parseProxyHeader(full.subarray(0, i))).toBeUndefined();
    const v1 = Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    for (let i = 1; i < v1.length; i++) expect(parseProxyHeader(v1.subarray(0, i))).toBeUndefined();
  });

  it("rejects garbage, bad fields, over-long v1 lines and versions not accepted", () => {
    const invalid = expect.objectContaining({ code: "PROXY_PROTOCOL_INVALID" });
    expect(() => parseProxyHeader(Buffer.from("\x16\x03\x01\x02\x00"))).toThrow(invalid);
    expect(() => parseProxyHeader(Buffer.from("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"))).toThrow(invalid);
    expect(() => parseProxyHeader(Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"))).toThrow(invalid);
    expect(() => parseProxyHeader(Buffer.from("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"))).toThrow(invalid);
    expect(() => parseProxyHeader(Buffer.from(`PROXY TCP4 ${"1".repeat(120)}`))).toThrow(invalid);
    const v2 = encodeProxyV2(undefined);
    expect(() => parseProxyHeader(v2, [1])).toThrow(invalid);
    expect(() => parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n"), [2])).toThrow(invalid);
    const badVersion = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x31, 0x11, 0, 0])]);
    expect(() => parseProxyHeader(badVersion)).toThrow(invalid);
  });
});

describe("readProxyHeader on a socket", () => {
  let server: Server;
  let port = 0;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    server = createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const nextAccepted = async (n: number) => {
    for (let i = 0; i < 200 && accepted.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return accepted[n - 1]!;
  };

  it("reads a header split over writes and leaves the payload to be relayed", async () => {
    const client = connect(port, "127.0.0.1");
    await new Promise((r) => client.once("connect", r));
    const s = await nextAccepted(1);
    const header = readProxyHeader(s);
    const bytes = Buffer.concat([
      Buffer.from("PROXY TCP4 9.9.9.9 8.8.8.8 1111 2222\r\n"),
      Buffer.from("payload"),
    ]);
    client.write(bytes.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 30));
    client.write(bytes.subarray(10));
    expect((await header).addresses).toMatchObject({ sourceAddress: "9.9.9.9", sourcePort: 1111 });
    const rest: Buffer[] = [];
    s.on("data", (d: Buffer) => rest.push(d));
    s.resume();
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(rest).toString()).toBe("payload");
    expect(proxyAddressesOf(s)).toMatchObject({
      family: "TCP4",
      sourceAddress: "127.0.0.1",
      destinationPort: port,
    });
    client.destroy();
  });

  it("fails with PROXY_PROTOCOL_TIMEOUT and PROXY_PROTOCOL_INVALID", async () => {
    const c1 = connect(port, "127.0.0.1");
    const s1 = await nextAccepted(2);
    await expect(readProxyHeader(s1, { timeoutMs: 100 })).rejects.toMatchObject({
      code: "PROXY_PROTOCOL_TIMEOUT",
    });
    const c2 = connect(port, "127.0.0.1");
    const s2 = await nextAccepted(3);
    const p = readProxyHeader(s2);
    c2.write("GET / HTTP/1.1\r\n\r\n");
    await expect(p).rejects.toMatchObject({ code: "PROXY_PROTOCOL_INVALID" });
    c1.destroy();
    c2.destroy();
  });
});
