import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createCertificateAuthority } from "@kproxy/testkit";

export function tempDir(prefix = "kproxy-kubeconfig-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Pki {
  dir: string;
  caCert: string;
  caCertPem: Buffer;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing we trust: for "wrong CA" tests. */
  otherCaCert: string;
}

/**
 * A CA, a server cert for 127.0.0.1/localhost/kubernetes (with SANs, as Go requires) and a client cert
 * (CN=alice, O=devs), issued by testkit's CA and written as PEM files into `dir`; plus a second CA.
 */
export async function makePki(dir: string): Promise<Pki> {
  const ca = await createCertificateAuthority({ commonName: "ca" });
  const otherCa = await createCertificateAuthority({ commonName: "other-ca" });
  const server = await ca.issueServerCert({
    commonName: "kube-apiserver",
    dnsNames: ["localhost", "kubernetes"],
    ips: ["127.0.0.1"],
  });
  const client = await ca.issueClientCert({ commonName: "alice", organizations: ["devs"] });
  const write = (name: string, pem: string) => {
    writeFileSync(join(dir, name), pem, { mode: 0o600 });
    return join(dir, name);
  };
  return {
    dir,
    caCert: write("ca.crt", ca.certPem),
    caCertPem: Buffer.from(ca.certPem),
    serverCert: write("server.crt", server.certPem),
    serverKey: write("server.key", server.keyPem),
    clientCert: write("client.crt", client.certPem),
    clientKey: write("client.key", client.keyPem),
    otherCaCert: write("other-ca.crt", otherCa.certPem),
  };
}

export interface Seen {
  headers: IncomingHttpHeaders;
  url: string;
  clientCN: string | undefined;
  servername: string | undefined;
}

export interface EchoServer {
  url: string;
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

function listen(server: Server, seen: Seen[], proto: "http" | "https"): Promise<EchoServer> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        url: `${proto}://127.0.0.1:${port}`,
        port,
        seen,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

function handler(seen: Seen[]) {
  return (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    const sock = req.socket as TLSSocket;
    const peer = typeof sock.getPeerCertificate === "function" ? sock.getPeerCertificate() : undefined;
    const cn = peer && sock.authorized ? (peer.subject?.CN as string | undefined) : undefined;
    seen.push({
      headers: req.headers,
      url: req.url ?? "",
      clientCN: cn,
      servername: (sock as TLSSocket & { servername?: string | false }).servername || undefined,
    });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ clientCN: cn ?? null }));
  };
}

/** An HTTPS "API server" that asks for (but does not require) client certs and records each request. */
export function startHttpsEcho(pki: Pki): Promise<EchoServer> {
  const seen: Seen[] = [];
  const server = createHttpsServer(
    {
      cert: readFileSync(pki.serverCert),
      key: readFileSync(pki.serverKey),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: false,
    },
    handler(seen),
  );
  return listen(server as unknown as Server, seen, "https");
}

/** An HTTPS server that REQUIRES a client cert signed by the test CA (handshake fails otherwise). */
export function startMtlsServer(pki: Pki): Promise<EchoServer> {
  const seen: Seen[] = [];
  const server = createHttpsServer(
    {
      cert: readFileSync(pki.serverCert),
      key: readFileSync(pki.serverKey),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    },
    handler(seen),
  );
  return listen(server as unknown as Server, seen, "https");
}

export function startHttpEcho(): Promise<EchoServer> {
  const seen: Seen[] = [];
  return listen(createHttpServer(handler(seen)), seen, "http");
}

export interface ConnectProxy {
  url: string;
  targets: string[];
  close(): Promise<void>;
}

/** A minimal HTTP CONNECT proxy that records the authorities it tunnelled to. */
export function startConnectProxy(): Promise<ConnectProxy> {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((_req, res) => {
    res.statusCode = 405;
    res.end();
  });
  server.on("connect", (req, clientSocket: Socket, head: Buffer) => {
    const target = req.url ?? "";
    targets.push(target);
    const idx = target.lastIndexOf(":");
    const host = target.slice(0, idx).replace(/^\[|\]$/g, "");
    const port = Number(target.slice(idx + 1));
    const upstream = netConnect(port, host, () => {
      clientSocket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(clientSocket);
      clientSocket.pipe(upstream);
    });
    sockets.add(upstream);
    sockets.add(clientSocket);
    const drop = () => {
      upstream.destroy();
      clientSocket.destroy();
    };
    upstream.on("error", drop);
    clientSocket.on("error", drop);
    upstream.on("close", () => sockets.delete(upstream));
    clientSocket.on("close", () => sockets.delete(clientSocket));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        targets,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Writes a kubeconfig from a JS object (JSON is valid YAML) or raw YAML text. */
export function writeKubeconfig(path: string, content: unknown): string {
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return path;
}

/** Writes an exec credential plugin (a node script) that counts its runs in `<dir>/<name>.count`. */
export function writeExecPlugin(
  dir: string,
  name: string,
  opts: {
    apiVersion: string;
    token?: string;
    expirationTimestamp?: string;
    fail?: string;
    certFile?: string;
    keyFile?: string;
  },
): { path: string; count: () => number; lastInfo: () => unknown } {
  const script = join(dir, `${name}.mjs`);
  const countFile = join(dir, `${name}.count`);
  const infoFile = join(dir, `${name}.info.json`);
  const body = `#!/usr/bin/env node
import { readFileSync, writeFileSync } from "node:fs";
const countFile = ${JSON.stringify(countFile)};
let n = 0;
try { n = Number(readFileSync(countFile, "utf8")); } catch {}
n += 1;
writeFileSync(countFile, String(n));
writeFileSync(${JSON.stringify(infoFile)}, JSON.stringify({ info: process.env.KUBERNETES_EXEC_INFO ?? null, args: process.argv.slice(2), env: process.env.PLUGIN_ENV ?? null }));
const opts = ${JSON.stringify(opts)};
if (opts.fail) { process.stderr.write(opts.fail + "\\n"); process.exit(3); }
const status = {};
if (opts.token) status.token = opts.token + "-" + n;
if (opts.certFile) { status.clientCertificateData = readFileSync(opts.certFile, "utf8"); status.clientKeyData = readFileSync(opts.keyFile, "utf8"); }
if (opts.expirationTimestamp) status.expirationTimestamp = opts.expirationTimestamp;
process.stdout.write(JSON.stringify({ kind: "ExecCredential", apiVersion: opts.apiVersion, status }));
`;
  writeFileSync(script, body, { mode: 0o755 });
  return {
    path: script,
    count: () => {
      try {
        return Number(readFileSync(countFile, "utf8"));
      } catch {
        return 0;
      }
    },
    lastInfo: () => JSON.parse(readFileSync(infoFile, "utf8")),
  };
}
