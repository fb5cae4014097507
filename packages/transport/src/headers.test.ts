import { describe, expect, it } from "vitest";
import {
  appendForwardedFor,
  buildUpstreamHeaders,
  filterResponseHeaders,
  isUpgradeRequest,
} from "./headers.js";

const pairs = (flat: string[]) => {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
};

describe("upstream headers (Go ReverseProxy rules)", () => {
  it("removes hop-by-hop and Connection-listed headers, keeps Te: trailers, replaces Host", () => {
    const raw = [
      "Host",
      "localhost:8001",
      "Connection",
      "keep-alive, X-Private",
      "X-Private",
      "1",
      "Keep-Alive",
      "5",
      "Proxy-Authorization",
      "Basic x",
      "Te",
      "trailers, deflate",
      "Upgrade",
      "h2c",
      "Accept",
      "application/json",
    ];
    const up = buildUpstreamHeaders(raw, "GET", {
      host: "10.0.0.1:6443",
      clientIp: "127.0.0.1",
      requestGzip: true,
    });
    expect(pairs(up.headers)).toEqual([
      ["Host", "10.0.0.1:6443"],
      ["Accept", "application/json"],
      ["Te", "trailers"],
      ["X-Forwarded-For", "127.0.0.1"],
      ["Accept-Encoding", "gzip"],
    ]);
    expect(up.requestedGzip).toBe(true);
  });

  it("appends to X-Forwarded-For and passes the client's Accept-Encoding through", () => {
    const raw = ["X-Forwarded-For", "1.2.3.4", "Accept-Encoding", "br"];
    const up = buildUpstreamHeaders(raw, "GET", { host: "h", clientIp: "::1", requestGzip: true });
    expect(pairs(up.headers)).toContainEqual(["X-Forwarded-For", "1.2.3.4, ::1"]);
    expect(pairs(up.headers)).toContainEqual(["Accept-Encoding", "br"]);
    expect(up.requestedGzip).toBe(false);
    expect(appendForwardedFor(undefined, "1.1.1.1")).toBe("1.1.1.1");
  });

  it("does not ask for gzip for HEAD, Range requests or when disabled; adds no XFF for socket clients", () => {
    expect(
      buildUpstreamHeaders([], "HEAD", { host: "h", clientIp: undefined, requestGzip: true }).requestedGzip,
    ).toBe(false);
    expect(
      buildUpstreamHeaders(["Range", "bytes=0-1"], "GET", {
        host: "h",
        clientIp: undefined,
        requestGzip: true,
      }).requestedGzip,
    ).toBe(false);
    const off = buildUpstreamHeaders([], "GET", { host: "h", clientIp: undefined, requestGzip: false });
    expect(pairs(off.headers)).toEqual([["Host", "h"]]);
  });

  it("detects upgrades by substring, as apimachinery does", () => {
    expect(isUpgradeRequest("keep-alive, Upgrade")).toBe(true);
    expect(isUpgradeRequest("xupgradex")).toBe(true);
    expect(isUpgradeRequest("keep-alive")).toBe(false);
    expect(isUpgradeRequest(undefined)).toBe(false);
  });

  it("filters response headers and drops the encoding of a decompressed body", () => {
    const h = filterResponseHeaders(
      {
        connection: "x-a",
        "x-a": "1",
        "transfer-encoding": "chunked",
        "content-encoding": "gzip",
        "content-length": "10",
        "x-b": "2",
      },
      true,
    );
    expect(h).toEqual({ "x-b": "2" });
  });
});
