import * as net from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import { KproxyError } from "@kproxy/core";
import { upstreamError } from "./errors.js";
import type { FlatHeaders } from "./headers.js";

/** Where and how to dial for an upgrade (exec, attach, port-forward, WebSocket). */
export interface UpgradeDial {
  host: string;
  port: number;
  /** TLS options for https upstreams (ALPN is forced to http/1.1); undefined for plain TCP. */
  tls?: tls.ConnectionOptions;
  /** TCP keep-alive initial delay in ms; negative disables keep-alive; 0 uses Go's default, 15 s. */
  keepAliveMs?: number;
  /** Give up dialling after this long. Default 30 s, as kubectl. */
  dialTimeoutMs?: number;
}

export interface UpgradeRequest {
  /** The client connection, as handed over by Node's "upgrade" event. */
  client: Duplex;
  /** Bytes the client already sent after its request head. */
  head: Buffer;
  method: string;
  /** Path and query as sent upstream. */
  path: string;
  /** Complete upstream headers (Host first, credentials and X-Forwarded-For already applied). */
  headers: FlatHeaders;
  dial: UpgradeDial;
  /** "host:port" for error messages. */
  target: string;
  /**
   * Called when there is no tunnel to make: dial or write failure (`error dialing backend: …`),
   * or an upstream answer that is neither 101 nor ≥ 400 (`invalid upgrade response: …`). It must
   * answer on the raw client socket (see writeRawResponse).
   */
  onError: (error: KproxyError, client: Duplex) => void;
  /** Max bytes of upstream response head. Default 1 MiB. */
  maxHeaderBytes?: number;
}

export interface UpgradeResult {
  /** The upstream status (0 if none was read). */
  status: number;
  /** Bytes copied client→upstream and upstream→client after the handshake. */
  bytesUp: number;
  bytesDown: number;
  error?: KproxyError;
}

const HEAD_END = Buffer.from("\r\n\r\n");
const ERROR_RELAY_MS = 10_000;

function serializeHead(method: string, path: string, headers: FlatHeaders): Buffer {
  let text = `${method} ${path} HTTP/1.1\r\n`;
  let contentLength: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      contentLength = headers[i + 1];
      continue;
    }
    if (lower === "transfer-encoding") continue;
    text += `${name}: ${headers[i + 1]}\r\n`;
  }
  // Go's Request.Write: a positive length is sent; POST/PUT/PATCH without a body say 0.
  if (contentLength !== undefined && contentLength !== "0") text += `Content-Length: ${contentLength}\r\n`;
  else if (method === "POST" || method === "PUT" || method === "PATCH") text += "Content-Length: 0\r\n";
  return Buffer.from(`${text}\r\n`, "latin1");
}

function dial(options: UpgradeDial): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.dialTimeoutMs ?? 30_000;
    let socket: net.Socket;
    if (options.tls !== undefined) {
      const servername = options.tls.servername ?? (net.isIP(options.host) === 0 ? options.host : undefined);
      socket = tls.connect({
        ...options.tls,
        host: options.host,
        port: options.port,
        ALPNProtocols: ["http/1.1"],
        ...(servername !== undefined ? { servername } : {}),
      });
    } else {
      socket = net.connect({ host: options.host, port: options.port });
    }
    const keepAlive = options.keepAliveMs ?? 0;
    if (keepAlive >= 0) socket.setKeepAlive(true, keepAlive === 0 ? 15_000 : keepAlive);
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error("i/o timeout"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    const ok = () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve(socket);
    };
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once(options.tls !== undefined ? "secureConnect" : "connect", ok);
    socket.once("error", fail);
  });
}

/** Reads an HTTP response head; resolves with the status and all bytes read so far. */
function readResponseHead(socket: net.Socket, maxBytes: number): Promise<{ status: number; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const cleanup = () => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(HEAD_END);
      if (end < 0) {
        if (buffered.length > maxBytes) {
          cleanup();
          reject(new KproxyError("UPSTREAM_PROTOCOL", "net/http: server response headers too large"));
        }
        return;
      }
      cleanup();
      socket.pause();
      const line = buffered.subarray(0, buffered.indexOf("\r\n")).toString("latin1");
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(line);
      if (match === null) {
        reject(new KproxyError("UPSTREAM_PROTOCOL", `malformed HTTP response ${JSON.stringify(line)}`));
        return;
      }
      resolve({ status: Number(match[1]), bytes: buffered });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onEnd = () => {
      cleanup();
      reject(Object.assign(new Error("unexpected EOF"), { code: "UND_ERR_SOCKET" }));
    };
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("end", onEnd);
  });
}

/**
 * Tunnels an upgrade request the way apimachinery's UpgradeAwareHandler does: dial the upstream
 * (TLS with ALPN http/1.1), write the request head, read the response head. On 101 the raw
 * response goes to the client and bytes are copied both ways until either side finishes, then
 * both connections close. A ≥ 400 answer is relayed verbatim (for at most 10 s) and the
 * connection closed. Anything else is an error for `onError`. Never rejects.
 */
export async function tunnelUpgrade(request: UpgradeRequest): Promise<UpgradeResult> {
  const { client } = request;
  const result: UpgradeResult = { status: 0, bytesUp: 0, bytesDown: 0 };
  let clientGone = false;
  const onClientGone = () => {
    clientGone = true;
  };
  client.once("close", onClientGone);
  client.on("error", () => {});
  let upstream: net.Socket;
  try {
    upstream = await dial(request.dial);
  } catch (err) {
    result.error = new KproxyError(
      "UPSTREAM_UNREACHABLE",
      `error dialing backend: ${upstreamError(err, request.target).message}`,
      {
        cause: err,
      },
    );
    if (!clientGone) request.onError(result.error, client);
    return result;
  }
  upstream.on("error", () => {});
  if (clientGone) {
    upstream.destroy();
    return result;
  }
  const abortUpstream = () => upstream.destroy();
  client.once("close", abortUpstream);
  let head: { status: number; bytes: Buffer };
  try {
    upstream.write(serializeHead(request.method, request.path, request.headers));
    head = await readResponseHead(upstream, request.maxHeaderBytes ?? 1 << 20);
  } catch (err) {
    upstream.destroy();
    client.off("close", abortUpstream);
    if (clientGone) return result;
    const base = err instanceof KproxyError ? err : upstreamError(err, request.target);
    result.error = new KproxyError(base.code, `error sending request: ${base.message}`, { cause: err });
    request.onError(result.error, client);
    return result;
  }
  result.status = head.status;
  if (head.status !== 101 && head.status < 400) {
    upstream.destroy();
    client.off("close", abortUpstream);
    result.error = new KproxyError(
      "UPSTREAM_PROTOCOL",
      `invalid upgrade response: status code ${head.status}`,
    );
    request.onError(result.error, client);
    return result;
  }
  return new Promise<UpgradeResult>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      resolve(result);
    };
    const timer = head.status === 101 ? undefined : setTimeout(finish, ERROR_RELAY_MS);
    client.write(head.bytes);
    upstream.on("data", (chunk: Buffer) => {
      result.bytesDown += chunk.length;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    });
    upstream.once("end", finish);
    upstream.once("close", finish);
    client.once("close", finish);
    if (head.status === 101) {
      if (request.head.length > 0) {
        result.bytesUp += request.head.length;
        upstream.write(request.head);
      }
      client.on("data", (chunk: Buffer) => {
        result.bytesUp += chunk.length;
        if (!upstream.write(chunk)) {
          client.pause();
          upstream.once("drain", () => client.resume());
        }
      });
      client.once("end", finish);
      client.resume();
    } else {
      // Relay the error answer, then close; whatever the client sends is ignored.
      client.on("data", () => {});
      client.resume();
    }
    upstream.resume();
  });
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/**
 * Writes a complete HTTP/1.1 response on a raw socket (used once a connection was handed over
 * for an upgrade) and closes it after the bytes are flushed.
 */
export function writeRawResponse(
  socket: Duplex,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string,
): void {
  if (socket.destroyed) return;
  const payload = Buffer.from(body, "utf8");
  let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}\r\n`;
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
  text += `Date: ${new Date().toUTCString()}\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
  socket.end(Buffer.concat([Buffer.from(text, "latin1"), payload]));
}
