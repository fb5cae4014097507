import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A small HTTP server standing in for one pod's container: it says who it is and echoes the request. */
export interface PodBackend {
  namespace: string;
  pod: string;
  ip: string;
  port: number;
  close(): Promise<void>;
}

function page(namespace: string, pod: string): string {
  return `<!doctype html>
<html><head><title>${pod}</title><link rel="stylesheet" href="/static/style.css"></head>
<body><h1>Hello from ${namespace}/${pod}</h1>
<p><a href="/info">request info</a> · <a href="/healthz">healthz</a></p>
<img src="/static/logo.png" alt="logo"></body></html>
`;
}

/** Starts the backend of one pod on ip:port (a 127.0.0.0/8 address, so every pod has its own IP). */
export async function startPodBackend(
  namespace: string,
  pod: string,
  ip: string,
  port: number,
): Promise<PodBackend> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://pod");
    if (url.pathname === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (url.pathname === "/" || url.pathname === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page(namespace, pod));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = { ...req.headers };
      delete headers.authorization;
      const body = JSON.stringify(
        {
          pod,
          namespace,
          ip,
          method: req.method,
          path: url.pathname,
          query: url.search,
          headers,
          bodyBytes: Buffer.concat(chunks).length,
        },
        null,
        2,
      );
      res.writeHead(200, { "content-type": "application/json" }).end(`${body}\n`);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, ip, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    namespace,
    pod,
    ip,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
