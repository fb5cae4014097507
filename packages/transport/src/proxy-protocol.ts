/**
 * The PROXY protocol (HAProxy's spec, versions 1 and 2): encode a header to send to an upstream
 * before the relayed bytes, and read one from a downstream load balancer before relaying.
 */
import { isIPv4, isIPv6, type Socket } from "node:net";
import { KproxyError } from "@kproxy/core";

/** The 12-byte signature that starts a v2 header. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** Longest v1 header, CRLF included (spec: 107 bytes). */
export const PROXY_V1_MAX_LENGTH = 107;

export type ProxyProtocolVersion = 1 | 2;

/** The original connection's addresses, as a PROXY header carries them. */
export interface ProxyAddresses {
  readonly family: "TCP4" | "TCP6";
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

export interface ProxyHeader {
  readonly version: ProxyProtocolVersion;
  /** "LOCAL" (v2 only): a connection made by the proxy itself (e.g. a health check); use the real addresses. */
  readonly command: "PROXY" | "LOCAL";
  /** Undefined for v1 UNKNOWN, v2 LOCAL, or an address family other than TCP over IPv4/IPv6. */
  readonly addresses: ProxyAddresses | undefined;
  /** v2 type-length-value extensions, as received. */
  readonly tlvs: readonly ProxyTlv[];
}

function bad(message: string): KproxyError {
  return new KproxyError("PROXY_PROTOCOL_INVALID", `invalid PROXY protocol header: ${message}`);
}

// ------------------------------------------------------------------ IP text <-> bytes

function ipv4Bytes(ip: string, out: Buffer, at: number): void {
  const parts = ip.split(".");
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

function ipv6Bytes(ip: string, out: Buffer, at: number): void {
  let text = ip;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const groups: number[] = [];
  const parse = (part: string): number[] => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (g.includes(".")) {
        const b = g.split(".").map(Number);
        out.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
      } else out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const dbl = text.indexOf("::");
  if (dbl >= 0) {
    const head = parse(text.slice(0, dbl));
    const tail = parse(text.slice(dbl + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else groups.push(...parse(text));
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i] ?? 0, at + i * 2);
}

function formatIpv6(buf: Buffer, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(at + i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

function unmap(ip: string): string {
  const m = MAPPED.exec(ip);
  return m ? m[1]! : ip;
}

/**
 * The addresses of an accepted socket, as a PROXY header should carry them: IPv4-mapped IPv6
 * addresses (a dual-stack listener) become TCP4 when both ends are IPv4. Undefined when unknown.
 */
export function proxyAddressesOf(socket: Socket): ProxyAddresses | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (!remoteAddress || !localAddress || remotePort === undefined || localPort === undefined)
    return undefined;
  const src = unmap(remoteAddress);
  const dst = unmap(localAddress);
  if (isIPv4(src) && isIPv4(dst))
    return {
      family: "TCP4",
      sourceAddress: src,
      sourcePort: remotePort,
      destinationAddress: dst,
      destinationPort: localPort,
    };
  return {
    family: "TCP6",
    sourceAddress: isIPv4(src) ? `::ffff:${src}` : remoteAddress,
    sourcePort: remotePort,
    destinationAddress: isIPv4(dst) ? `::ffff:${dst}` : localAddress,
    destinationPort: localPort,
  };
}

function checkAddresses(a: ProxyAddresses): void {
  const is = a.family === "TCP4" ? isIPv4 : isIPv6;
  if (!is(a.sourceAddress) || !is(a.destinationAddress))
    throw new KproxyError("PROXY_PROTOCOL_INVALID", `addresses do not match family ${a.family}`, {
      details: { family: a.family },
    });
  for (const p of [a.sourcePort, a.destinationPort])
    if (!Number.isInteger(p) || p < 0 || p > 65535)
      throw new KproxyError("PROXY_PROTOCOL_INVALID", `invalid port ${p}`);
}

// ------------------------------------------------------------------ encode

/** A v1 (text) header: `PROXY TCP4 src dst sport dport\r\n`, or `PROXY UNKNOWN\r\n` without addresses. */
export function encodeProxyV1(addresses: ProxyAddresses | undefined): Buffer {
  if (addresses === undefined) return Buffer.from("PROXY UNKNOWN\r\n", "latin1");
  checkAddresses(addresses);
  const fmt = (ip: string) => (addresses.family === "TCP6" ? formatV6Text(ip) : ip);
  return Buffer.from(
    `PROXY ${addresses.family} ${fmt(addresses.sourceAddress)} ${fmt(addresses.destinationAddress)} ${addresses.sourcePort} ${addresses.destinationPort}\r\n`,
    "latin1",
  );
}

function formatV6Text(ip: string): string {
  const b = Buffer.alloc(16);
  ipv6Bytes(ip, b, 0);
  return formatIpv6(b, 0);
}

/**
 * A v2 (binary) header: PROXY command with TCP over IPv4 (family 0x11) or IPv6 (0x21), or a LOCAL
 * command (no addresses) when `addresses` is undefined. TLVs are appended as given.
 */
export function encodeProxyV2(
  addresses: ProxyAddresses | undefined,
  options: { tlvs?: readonly ProxyTlv[] } = {},
): Buffer {
  const tlvs = options.tlvs ?? [];
  let tlvLength = 0;
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 255 || t.value.length > 65535)
      throw new KproxyError("PROXY_PROTOCOL_INVALID", "invalid TLV");
    tlvLength += 3 + t.value.length;
  }
  if (addresses !== undefined) checkAddresses(addresses);
  const addrLength = addresses === undefined ? 0 : addresses.family === "TCP4" ? 12 : 36;
  const length = addrLength + tlvLength;
  if (length > 65535) throw new KproxyError("PROXY_PROTOCOL_INVALID", "header too long");
  const buf = Buffer.alloc(16 + length);
  PROXY_V2_SIGNATURE.copy(buf, 0);
  buf[12] = addresses === undefined ? 0x20 : 0x21;
  buf[13] = addresses === undefined ? 0x00 : addresses.family === "TCP4" ? 0x11 : 0x21;
  buf.writeUInt16BE(length, 14);
  let at = 16;
  if (addresses !== undefined) {
    if (addresses.family === "TCP4") {
      ipv4Bytes(addresses.sourceAddress, buf, 16);
      ipv4Bytes(addresses.destinationAddress, buf, 20);
      buf.writeUInt16BE(addresses.sourcePort, 24);
      buf.writeUInt16BE(addresses.destinationPort, 26);
    } else {
      ipv6Bytes(addresses.sourceAddress, buf, 16);
      ipv6Bytes(addresses.destinationAddress, buf, 32);
      buf.writeUInt16BE(addresses.sourcePort, 48);
      buf.writeUInt16BE(addresses.destinationPort, 50);
    }
    at += addrLength;
  }
  for (const t of tlvs) {
    buf[at] = t.type;
    buf.writeUInt16BE(t.value.length, at + 1);
    t.value.copy(buf, at + 3);
    at += 3 + t.value.length;
  }
  return buf;
}

/** Encodes a header of `version` for a downstream socket (its remote and local addresses). */
export function encodeProxyHeader(
  version: ProxyProtocolVersion,
  addresses: ProxyAddresses | undefined,
): Buffer {
  return version === 1 ? encodeProxyV1(addresses) : encodeProxyV2(addresses);
}

// ------------------------------------------------------------------ parse

export interface ParsedProxyHeader {
  readonly header: ProxyHeader;
  /** Bytes of `buf` the header took; the rest is payload. */
  readonly length: number;
}

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const PORT = /^(0|[1-9]\d{0,4})$/;

function parsePort(text: string): number {
  const n = PORT.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 0 && n <= 65535)) throw bad(`invalid port ${JSON.stringify(text)}`);
  return n;
}

function parseV1(buf: Buffer): ParsedProxyHeader | undefined {
  const limit = Math.min(buf.length, PROXY_V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit - 1; i++)
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) {
      end = i;
      break;
    }
  if (end < 0) {
    if (buf.length >= PROXY_V1_MAX_LENGTH) throw bad("v1 header longer than 107 bytes");
    for (let i = V1_PREFIX.length; i < buf.length; i++)
      if (buf[i]! < 0x20 && buf[i] !== 0x0d) throw bad("control character in v1 header");
    return undefined;
  }
  const line = buf.toString("latin1", V1_PREFIX.length, end);
  const fields = line.split(" ");
  const family = fields[0];
  if (family === "UNKNOWN")
    return { header: { version: 1, command: "PROXY", addresses: undefined, tlvs: [] }, length: end + 2 };
  if (family !== "TCP4" && family !== "TCP6") throw bad(`unknown v1 protocol ${JSON.stringify(family)}`);
  if (fields.length !== 5) throw bad("v1 header needs protocol, two addresses and two ports");
  const [, src, dst, sport, dport] = fields as [string, string, string, string, string];
  const is = family === "TCP4" ? isIPv4 : isIPv6;
  if (!is(src) || !is(dst)) throw bad(`addresses are not ${family === "TCP4" ? "IPv4" : "IPv6"}`);
  return {
    header: {
      version: 1,
      command: "PROXY",
      addresses: {
        family,
        sourceAddress: src,
        destinationAddress: dst,
        sourcePort: parsePort(sport),
        destinationPort: parsePort(dport),
      },
      tlvs: [],
    },
    length: end + 2,
  };
}

function parseV2(buf: Buffer): ParsedProxyHeader | undefined {
  if (buf.length < 16) return undefined;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw bad(`unsupported v2 version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw bad(`unknown v2 command ${cmd}`);
  const fam = buf[13]!;
  const length = buf.readUInt16BE(14);
  if (buf.length < 16 + length) return undefined;
  const total = 16 + length;
  let addresses: ProxyAddresses | undefined;
  let at = 16;
  if (fam === 0x11 || fam === 0x21) {
    const need = fam === 0x11 ? 12 : 36;
    if (length < need) throw bad("v2 address block shorter than its family needs");
    if (cmd === 1) {
      if (fam === 0x11)
        addresses = {
          family: "TCP4",
          sourceAddress: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`,
          destinationAddress: `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`,
          sourcePort: buf.readUInt16BE(24),
          destinationPort: buf.readUInt16BE(26),
        };
      else
        addresses = {
          family: "TCP6",
          sourceAddress: formatIpv6(buf, 16),
          destinationAddress: formatIpv6(buf, 32),
          sourcePort: buf.readUInt16BE(48),
          destinationPort: buf.readUInt16BE(50),
        };
    }
    at += need;
  } else if (fam === 0x12 || fam === 0x22)
    at += fam === 0x12 ? 12 : 36; // UDP: no TCP addresses
  else if (fam === 0x31 || fam === 0x32)
    at += 216; // AF_UNIX
  else if (fam !== 0x00) throw bad(`unknown v2 address family 0x${fam.toString(16)}`);
  if (at > total) throw bad("v2 address block shorter than its family needs");
  const tlvs: ProxyTlv[] = [];
  while (at < total) {
    if (at + 3 > total) throw bad("truncated v2 TLV");
    const len = buf.readUInt16BE(at + 1);
    if (at + 3 + len > total) throw bad("truncated v2 TLV");
    tlvs.push({ type: buf[at]!, value: Buffer.from(buf.subarray(at + 3, at + 3 + len)) });
    at += 3 + len;
  }
  return {
    header: { version: 2, command: cmd === 1 ? "PROXY" : "LOCAL", addresses, tlvs },
    length: total,
  };
}

/**
 * Parses a PROXY header (v1 or v2, or only `versions`) at the start of `buf`. Returns undefined
 * while more bytes are needed; throws PROXY_PROTOCOL_INVALID when `buf` cannot start a valid header.
 */
export function parseProxyHeader(
  buf: Buffer,
  versions: readonly ProxyProtocolVersion[] = [1, 2],
): ParsedProxyHeader | undefined {
  const n = Math.min(buf.length, 12);
  const maybeV2 = versions.includes(2) && buf.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n));
  const maybeV1 =
    versions.includes(1) &&
    buf.subarray(0, Math.min(buf.length, 6)).equals(V1_PREFIX.subarray(0, Math.min(buf.length, 6)));
  if (maybeV2 && buf.length >= 12) return parseV2(buf);
  if (maybeV1 && buf.length >= 6) return parseV1(buf);
  if (maybeV1 || maybeV2) return undefined;
  throw bad(`expected a ${versions.map((v) => `v${v}`).join(" or ")} header`);
}

export interface ReadProxyHeaderOptions {
  /** Accepted versions; default both. */
  versions?: readonly ProxyProtocolVersion[];
  /** Fail with PROXY_PROTOCOL_TIMEOUT when no complete header arrived by then; default 5000. */
  timeoutMs?: number;
}

/**
 * Reads a PROXY header from a freshly accepted socket. Bytes after the header are pushed back
 * (`unshift`) and the socket is left paused, so that piping it afterwards relays them. Rejects
 * with PROXY_PROTOCOL_INVALID, PROXY_PROTOCOL_TIMEOUT, or PROXY_PROTOCOL_CLOSED; the caller
 * destroys the socket.
 */
export function readProxyHeader(socket: Socket, options: ReadProxyHeaderOptions = {}): Promise<ProxyHeader> {
  const versions = options.versions ?? [1, 2];
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise<ProxyHeader>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
      socket.pause();
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let parsed: ParsedProxyHeader | undefined;
      try {
        parsed = parseProxyHeader(buf, versions);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (parsed === undefined) {
        if (buf.length > 16 + 65535) fail(bad("header too long"));
        return;
      }
      cleanup();
      if (parsed.length < buf.length) socket.unshift(buf.subarray(parsed.length));
      resolve(parsed.header);
    };
    const onEnd = () =>
      fail(new KproxyError("PROXY_PROTOCOL_CLOSED", "connection closed before a complete PROXY header"));
    const onError = (err: Error) =>
      fail(
        new KproxyError("PROXY_PROTOCOL_CLOSED", `connection failed before a PROXY header: ${err.message}`, {
          cause: err,
        }),
      );
    const timer = setTimeout(
      () => fail(new KproxyError("PROXY_PROTOCOL_TIMEOUT", `no PROXY header within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
  });
}
