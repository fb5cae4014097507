/**
 * An app's admin HTTP listener: /healthz, /readyz, /metrics and extra routes (e.g. /status).
 * GET and HEAD only; never serves a stack trace.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { errorMessage, KproxyError, type Logger, silentLogger } from "@kproxy/core";
import { type MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./metrics.js";

/** A readiness or liveness answer: true/false, or with the reason shown in the body. */
export type CheckResult = boolean | { ok: boolean; reason?: string };

export type AdminRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface AdminServerOptions {
  /** Listen address; default "127.0.0.1". */
  host?: string;
  /** Listen port; 0 for an ephemeral one. */
  port: number;
  /** Served at /metrics when given. */
  metrics?: MetricsRegistry;
  /** /readyz: 200 "ok" when true, 503 with the reason otherwise. Default always ready. */
  ready?: () => CheckResult;
  /** /healthz (and /livez): default always healthy. */
  healthy?: () => CheckResult;
  /** Extra routes by exact path (e.g. "/status"); they win over the built-in ones. */
  routes?: Record<string, AdminRoute>;
  logger?: Logger;
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  /** http://host:port (IPv6 hosts in brackets). */
  readonly url: string;
  close(): Promise<void>;
}

function normalize(r: CheckResult): { ok: boolean; reason: string } {
  if (typeof r === "boolean") return { ok: r, reason: r ? "ok" : "not ok" };
  return { ok: r.ok, reason: r.reason ?? (r.ok ? "ok" : "not ok") };
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, {
    "Content-Type": type,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
  });
  res.end(head ? undefined : body);
}

/** Starts the admin listener; resolves once it listens, rejects with ADMIN_LISTEN_FAILED. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? silentLogger;
  const routes = options.routes ?? {};
  const sockets = new Set<import("node:net").Socket>();
  const check = (fn: (() => CheckResult) | undefined, res: ServerResponse, head: boolean) => {
    let r: { ok: boolean; reason: string };
    try {
      r = fn ? normalize(fn()) : { ok: true, reason: "ok" };
    } catch (err) {
      r = { ok: false, reason: errorMessage(err) };
    }
    send(res, r.ok ? 200 : 503, "text/plain; charset=utf-8", `${r.reason}\n`, head);
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://admin");
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      res.setHeader("Allow", "GET, HEAD");
      send(res, 405, "text/plain; charset=utf-8", "method not allowed\n", false);
      return;
    }
    const route = routes[url.pathname];
    if (route !== undefined) {
      Promise.resolve()
        .then(() => route(req, res, url))
        .catch((err: unknown) => {
          logger.error("admin route failed", { path: url.pathname, error: errorMessage(err) });
          if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n", head);
          else res.destroy();
        });
      return;
    }
    switch (url.pathname) {
      case "/healthz":
      case "/livez":
        return check(options.healthy, res, head);
      case "/readyz":
        return check(options.ready, res, head);
      case "/metrics":
        if (options.metrics) {
          let body: string;
          try {
            body = options.metrics.expose();
          } catch (err) {
            logger.error("metrics collection failed", { error: errorMessage(err) });
            return send(res, 500, "text/plain; charset=utf-8", "metrics collection failed\n", head);
          }
          return send(res, 200, PROMETHEUS_CONTENT_TYPE, body, head);
        }
        break;
    }
    send(res, 404, "text/plain; charset=utf-8", "not found\n", head);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new KproxyError("ADMIN_LISTEN_FAILED", `admin listener on ${host}:${options.port}: ${err.message}`, {
          cause: err,
        }),
      );
    server.once("error", onError);
    server.listen({ host, port: options.port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (err) => logger.error("admin listener error", { error: err.message }));
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
