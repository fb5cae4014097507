import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { gzipSync } from "node:zlib";

export interface RecordedRequest {
  method: string;
  url: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  rawHeaders: string[];
  body: Buffer;
  upgrade: boolean;
}

export interface RecordingUpstream {
  url: string;
  port: number;
  /** By X-Test-Id header value; requests without one are kept under "". */
  records: Map<string, RecordedRequest[]>;
  close(): Promise<void>;
}

function toRecord(req: http.IncomingMessage, body: Buffer, upgrade: boolean): RecordedRequest {
  const headers: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] as string).toLowerCase();
    const value = req.rawHeaders[i + 1] as string;
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { method: req.method ?? "", url: req.url ?? "", headers, rawHeaders: req.rawHeaders, body, upgrade };
}

/**
 * An API-server stand-in that records every request. Paths: ".../gzip" answers a gzip body with
 * Content-Encoding: gzip; upgrade requests get 101 and "hello" (or 403 when the path contains
 * "deny-upgrade"); everything else gets a small JSON body.
 */
export async function startRecordingUpstream(tls?: {
  cert: Buffer;
  key: Buffer;
}): Promise<RecordingUpstream> {
  const records = new Map<string, RecordedRequest[]>();
  const sockets = new Set<Socket | Duplex>();
  const keep = (rec: RecordedRequest) => {
    const id = rec.headers["x-test-id"] ?? "";
    const list = records.get(id) ?? [];
    list.push(rec);
    records.set(id, list);
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      keep(toRecord(req, Buffer.concat(chunks), false));
      if ((req.url ?? "").includes("/gzip")) {
        res.writeHead(200, { "Content-Type": "text/plain", "Content-Encoding": "gzip" });
        res.end(gzipSync(Buffer.from("decompressed body\n")));
        return;
      }
      const body = JSON.stringify({ kind: "Recorded", path: req.url });
      res.writeHead(200, { "Content-Type": "application/json", "X-Upstream": "yes" });
      res.end(body);
    });
  };
  const server = tls
    ? https.createServer({ cert: tls.cert, key: tls.key }, handler)
    : http.createServer(handler);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("secureConnection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
    keep(toRecord(req, Buffer.alloc(0), true));
    socket.on("error", () => {});
    if ((req.url ?? "").includes("deny-upgrade")) {
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\ndenied\n");
      return;
    }
    socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nhello");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    records,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
