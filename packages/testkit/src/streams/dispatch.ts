import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { errorMessage, type Logger } from "@kproxy/core";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import { negotiateExecProtocol, serveChannelExec } from "./channel.js";
import type { PodStreamContext } from "./index.js";
import { parseExecOptions, parsePortForwardPorts } from "./options.js";
import { negotiatePortForwardProtocol, servePortForwardWebSocket } from "./portforward-ws.js";
import { SpdySession } from "./spdy.js";
import {
  SPDY_EXEC_PROTOCOLS,
  SPDY_PORTFORWARD_PROTOCOL,
  serveSpdyExec,
  serveSpdyPortForward,
} from "./spdy-handlers.js";
import { StreamRequestError, writeHttpStatusError } from "./status.js";

/** Prefix of the subprotocols kubectl offers when it tunnels SPDY inside a WebSocket (PortForwardWebsockets). */
export const SPDY_TUNNEL_PREFIX = "SPDY/3.1+";

function headerList(req: IncomingMessage, name: string): string[] {
  const raw = req.headers[name];
  const values = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  return values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  protocol: string,
  onOpen: (ws: WebSocket) => void,
  logger: Logger,
): void {
  const open = onOpen;
  onOpen = (ws) => {
    try {
      open(ws);
    } catch (err) {
      logger.error("pod stream failed after the upgrade", { err: errorMessage(err) });
      ws.terminate();
    }
  };
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: 32 * 1024 * 1024,
    handleProtocols: () => (protocol === "" ? false : protocol),
  });
  wss.handleUpgrade(req, socket as Socket, head, (ws) => {
    wss.close();
    onOpen(ws);
  });
}

function serveSpdy(
  socket: Duplex,
  head: Buffer,
  protocol: string,
  ctx: PodStreamContext,
  serve: (session: SpdySession) => void,
): void {
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Connection: Upgrade\r\n" +
      "Upgrade: SPDY/3.1\r\n" +
      `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
  );
  if (head.length > 0) socket.unshift(head);
  const session = new SpdySession(socket, {
    role: "server",
    onError: (err) => ctx.logger.debug("spdy session error", { err }),
  });
  serve(session);
}

export function dispatchPodStream(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: PodStreamContext,
): void {
  const logger = ctx.logger.child({ namespace: ctx.namespace, pod: ctx.pod, subresource: ctx.subresource });
  socket.on("error", (err) => logger.debug("pod stream socket error", { err }));
  try {
    const upgrade = (req.headers.upgrade ?? "").toLowerCase();
    const isWebSocket = upgrade.split(",").some((u) => u.trim() === "websocket");
    const isSpdy = upgrade.split(",").some((u) => u.trim() === "spdy/3.1");
    if (!isWebSocket && !isSpdy) {
      throw new StreamRequestError(
        400,
        `unable to upgrade connection: the ${ctx.subresource} subresource requires an Upgrade to websocket or SPDY/3.1`,
      );
    }

    if (ctx.subresource === "portforward") {
      if (isWebSocket) {
        const offered = headerList(req, "sec-websocket-protocol");
        const tunnel = offered.find((p) => p === `${SPDY_TUNNEL_PREFIX}${SPDY_PORTFORWARD_PROTOCOL}`);
        if (tunnel) {
          acceptWebSocket(
            req,
            socket,
            head,
            tunnel,
            (ws) => {
              const stream = createWebSocketStream(ws);
              stream.on("error", (err) => logger.debug("spdy tunnel error", { err }));
              const session = new SpdySession(stream, {
                role: "server",
                onError: (err) => logger.debug("spdy session error", { err }),
              });
              serveSpdyPortForward(session, ctx, logger);
            },
            logger,
          );
          return;
        }
        const protocol = negotiatePortForwardProtocol(offered);
        if (protocol === undefined) {
          throw new StreamRequestError(
            400,
            `unable to upgrade connection: none of the requested websocket subprotocols [${offered.join(", ")}] is supported for port-forward`,
          );
        }
        const ports = parsePortForwardPorts(ctx.query);
        acceptWebSocket(
          req,
          socket,
          head,
          protocol,
          (ws) => servePortForwardWebSocket(ws, ports, ctx, logger),
          logger,
        );
        return;
      }
      const versions = headerList(req, "x-stream-protocol-version");
      if (versions.length > 0 && !versions.includes(SPDY_PORTFORWARD_PROTOCOL)) {
        throw new StreamRequestError(
          403,
          `unable to upgrade: unable to negotiate protocol: client supports [${versions.join(", ")}], server supports [${SPDY_PORTFORWARD_PROTOCOL}]`,
        );
      }
      serveSpdy(socket, head, SPDY_PORTFORWARD_PROTOCOL, ctx, (session) =>
        serveSpdyPortForward(session, ctx, logger),
      );
      return;
    }

    // exec and attach
    const opts = parseExecOptions(ctx);
    const target = { namespace: ctx.namespace, pod: ctx.pod, attach: ctx.subresource === "attach" };
    if (isWebSocket) {
      const offered = headerList(req, "sec-websocket-protocol");
      const protocol = negotiateExecProtocol(offered);
      if (!protocol) {
        throw new StreamRequestError(
          400,
          `unable to upgrade connection: none of the requested websocket subprotocols [${offered.join(", ")}] is supported`,
        );
      }
      acceptWebSocket(
        req,
        socket,
        head,
        protocol.name,
        (ws) => serveChannelExec(ws, protocol, opts, target, logger),
        logger,
      );
      return;
    }
    const versions = headerList(req, "x-stream-protocol-version");
    const protocol =
      versions.length === 0 ? "channel.k8s.io" : SPDY_EXEC_PROTOCOLS.find((p) => versions.includes(p));
    if (!protocol) {
      throw new StreamRequestError(
        403,
        `unable to upgrade: unable to negotiate protocol: client supports [${versions.join(", ")}], server supports [${SPDY_EXEC_PROTOCOLS.join(", ")}]`,
      );
    }
    serveSpdy(socket, head, protocol, ctx, (session) =>
      serveSpdyExec(session, protocol, opts, target, logger),
    );
  } catch (err) {
    if (err instanceof StreamRequestError) {
      logger.info("pod stream request rejected", { code: err.httpCode, message: err.message });
      writeHttpStatusError(socket, err.httpCode, err.message);
      return;
    }
    logger.error("pod stream failed", { err: errorMessage(err) });
    try {
      writeHttpStatusError(socket, 500, `internal error: ${errorMessage(err)}`);
    } catch {
      socket.destroy();
    }
  }
}
