import { describe, expect, it } from "vitest";
import {
  bodyFraming,
  ChunkedScanner,
  connectionTokensOf,
  findHeadEnd,
  HttpParseError,
  leadingEmptyLines,
  parseRequestHead,
  parseResponseHead,
  statusLine,
} from "./http1.js";

const HEAD =
  "POST /api/v1/namespaces/default/pods?dryRun=All HTTP/1.1\r\n" +
  "Host: localhost:8001\r\n" +
  "Content-Type:  application/json \r\n" +
  "X-Empty:\r\n" +
  "Content-Length: 2\r\n\r\n";

/** Feeds `bytes` split at `at` the way a connection does (concatenate, rescan from 3 back). */
function endAcrossSplit(bytes: Buffer, at: number): number {
  let scanFrom = 0;
  let buf = bytes.subarray(0, at);
  let end = findHeadEnd(buf, Math.max(0, scanFrom - 3));
  if (end >= 0) return end;
  scanFrom = buf.length;
  buf = Buffer.concat([buf, bytes.subarray(at)]);
  end = findHeadEnd(buf, Math.max(0, scanFrom - 3));
  return end;
}

describe("request heads", () => {
  it("parses the request line and keeps header names, order and trimmed values", () => {
    const head = parseRequestHead(HEAD);
    expect(head.method).toBe("POST");
    expect(head.target).toBe("/api/v1/namespaces/default/pods?dryRun=All");
    expect(head.minor).toBe(1);
    expect(head.headers).toEqual([
      "Host",
      "localhost:8001",
      "Content-Type",
      "application/json",
      "X-Empty",
      "",
      "Content-Length",
      "2",
    ]);
    expect(parseRequestHead("GET / HTTP/1.0\r\n\r\n").minor).toBe(0);
    expect(parseRequestHead("GET / HTTP/1.1\n\n").headers).toEqual([]); // bare LF, as Go accepts
  });

  it("finds the end of a head however the bytes are split", () => {
    const bytes = Buffer.from(`${HEAD}{}`, "latin1");
    const expected = HEAD.length;
    for (let at = 1; at < bytes.length; at++) expect(endAcrossSplit(bytes, at)).toBe(expected);
    expect(findHeadEnd(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r"), 0)).toBe(-1);
    expect(leadingEmptyLines(Buffer.from("\r\n\r\nGET"), 0)).toBe(4);
  });

  it("rejects malformed heads with the status a server answers", () => {
    const status = (text: string) => {
      try {
        parseRequestHead(text);
        return 0;
      } catch (err) {
        expect(err).toBeInstanceOf(HttpParseError);
        return (err as HttpParseError).status;
      }
    };
    expect(status("GARBAGE\r\n\r\n")).toBe(400);
    expect(status("GET /\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/2.0\r\n\r\n")).toBe(505);
    expect(status("GET / FOO/1.1\r\n\r\n")).toBe(400);
    expect(status("GET /a b HTTP/1.1\r\n\r\n")).toBe(400);
    expect(status("G(T / HTTP/1.1\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nNoColon\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n")).toBe(400);
  });

  it("decides request body framing like Go's server", () => {
    expect(bodyFraming(["Content-Length", "5"], true)).toEqual({ kind: "length", length: 5 });
    expect(bodyFraming(["Content-Length", "0"], true)).toEqual({ kind: "none" });
    expect(bodyFraming(["content-length", "5", "Content-Length", "5"], true)).toEqual({
      kind: "length",
      length: 5,
    });
    expect(bodyFraming(["Transfer-Encoding", "Chunked"], true)).toEqual({ kind: "chunked" });
    expect(bodyFraming([], true)).toEqual({ kind: "none" });
    const status = (h: string[]) => {
      try {
        bodyFraming(h, true);
        return 0;
      } catch (err) {
        return (err as HttpParseError).status;
      }
    };
    expect(status(["Content-Length", "5", "Content-Length", "6"])).toBe(400);
    expect(status(["Content-Length", "-1"])).toBe(400);
    expect(status(["Content-Length", "1e3"])).toBe(400);
    expect(status(["Transfer-Encoding", "chunked", "Content-Length", "3"])).toBe(400);
    expect(status(["Transfer-Encoding", "gzip"])).toBe(501);
    expect(status(["Transfer-Encoding", "gzip, chunked"])).toBe(501);
  });
});

describe("response heads", () => {
  it("parses status, version and headers; frames bodies like Go's client", () => {
    const res = parseResponseHead("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
    expect(res.status).toBe(404);
    expect(res.headers).toEqual(["Content-Length", "3", "Connection", "close"]);
    expect(connectionTokensOf(res.headers)).toEqual(new Set(["close"]));
    expect(parseResponseHead("HTTP/1.0 200\r\n\r\n").status).toBe(200);
    expect(bodyFraming([], false)).toEqual({ kind: "eof" });
    expect(bodyFraming(["Transfer-Encoding", "gzip"], false)).toEqual({ kind: "eof" });
    expect(bodyFraming(["Transfer-Encoding", "chunked", "Content-Length", "9"], false)).toEqual({
      kind: "chunked",
    });
    expect(() => parseResponseHead("HTTP/1.1 2000 OK\r\n\r\n")).toThrow(HttpParseError);
    expect(() => parseResponseHead("SSH-2.0-OpenSSH\r\n\r\n")).toThrow(/malformed HTTP response/);
    expect(statusLine(200)).toBe("HTTP/1.1 200 OK\r\n");
    expect(statusLine(299)).toBe("HTTP/1.1 299 status code 299\r\n");
  });
});

describe("chunked scanner", () => {
  const body = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
  const decoded = "helloabcdefghijklmnopqrstuvwxyz";

  it("finds the end and the payload at every split point, leaving what follows", () => {
    const bytes = Buffer.from(`${body}GET /next`, "latin1");
    for (let at = 0; at <= body.length; at++) {
      const scanner = new ChunkedScanner();
      let payload = "";
      const collect = (b: Buffer, s: number, e: number) => {
        payload += b.toString("latin1", s, e);
      };
      const first = bytes.subarray(0, at);
      const second = bytes.subarray(at);
      const end1 = scanner.scan(first, 0, collect);
      let end: number;
      if (end1 >= 0) end = end1;
      else {
        const end2 = scanner.scan(second, 0, collect);
        expect(end2).toBeGreaterThanOrEqual(0);
        end = at + end2;
      }
      expect(end).toBe(body.length);
      expect(payload).toBe(decoded);
      expect(scanner.done).toBe(true);
    }
  });

  it("walks byte by byte and accepts bare LF line ends", () => {
    const scanner = new ChunkedScanner();
    const bytes = Buffer.from("3\nabc\n0\n\n", "latin1");
    let end = -1;
    for (let i = 0; i < bytes.length && end < 0; i++) {
      const r = scanner.scan(bytes.subarray(i, i + 1), 0);
      if (r >= 0) end = i + r;
    }
    expect(end).toBe(bytes.length);
  });

  it("rejects malformed framing", () => {
    const bad = (text: string) => () => new ChunkedScanner().scan(Buffer.from(text, "latin1"), 0);
    expect(bad("zz\r\n")).toThrow(HttpParseError);
    expect(bad("\r\n")).toThrow(HttpParseError);
    expect(bad("3\r\nabcX")).toThrow(/CRLF/);
    expect(bad("1234567890abcdef0\r\n")).toThrow(/too large/);
    expect(bad(`1;${"e".repeat(5000)}`)).toThrow(/too long/);
  });
});
