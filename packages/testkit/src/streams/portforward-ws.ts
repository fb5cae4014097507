import type { Logger } from "@kproxy/core";
import type { WebSocket } from "ws";
import { CLOSE_CHANNEL } from "./channel.js";
import type { PodStreamContext } from "./index.js";
import { openPortConnection } from "./target.js";

/** Port-forward websocket subprotocols, best first ("" when the client offers none). */
export const PORTFORWARD_SUBPROTOCOLS: readonly string[] = ["portforward.k8s.io", "v4.channel.k8s.io"];

/**
 * Picks the port-forward websocket subprotocol. Clients such as client-node offer every channel protocol
 * (v5..v1); like the kubelet we answer with v4.channel.k8s.io, whose framing port-forward uses.
 */
export function negotiatePortForwardProtocol(offered: string[]): string | undefined {
  if (offered.length === 0) return "";
  for (const p of PORTFORWARD_SUBPROTOCOLS) if (offered.includes(p)) return p;
  return undefined;
}

function portPrefix(channel: number, port: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = channel;
  b.writeUInt16LE(port, 1);
  return b;
}

/**
 * Serves port-forward on an open WebSocket: for the i-th port, channel 2i carries data and 2i+1 errors; the first
 * message on each is the little-endian port number. The WebSocket closes when every port's connection has ended.
 */
export function servePortForwardWebSocket(
  ws: WebSocket,
  ports: number[],
  ctx: PodStreamContext,
  logger: Logger,
): void {
  let open = ports.length;
  const conns = ports.map((port, i) => {
    const conn = openPortConnection(ctx, port);
    const dataChannel = 2 * i;
    const errorChannel = 2 * i + 1;
    ws.send(portPrefix(dataChannel, port));
    ws.send(portPrefix(errorChannel, port));
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      open--;
      if (open === 0 && ws.readyState === ws.OPEN) ws.close(1000);
    };
    conn.ready.catch((err: Error) => {
      logger.info("portforward: connection failed", { port, err });
      if (ws.readyState === ws.OPEN)
        ws.send(Buffer.concat([Buffer.from([errorChannel]), Buffer.from(err.message)]));
      finish();
    });
    conn.stream.on("data", (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      const out = Buffer.allocUnsafe(chunk.length + 1);
      out[0] = dataChannel;
      chunk.copy(out, 1);
      ws.send(out);
    });
    conn.stream.on("end", finish);
    conn.stream.on("close", () => void conn.ready.then(finish, () => {}));
    conn.stream.on("error", (err) => {
      // Errors before the connection is made are reported by the rejection of `ready`.
      void conn.ready.then(
        () => {
          logger.debug("portforward: port connection error", { port, err });
          finish();
        },
        () => {},
      );
    });
    return conn;
  });

  ws.on("message", (raw, isBinary) => {
    const buf = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    if (!isBinary || buf.length === 0) {
      logger.debug("portforward: ignoring empty or text websocket message");
      return;
    }
    const channel = buf[0] as number;
    if (channel === CLOSE_CHANNEL) {
      const closing = buf[1];
      if (closing !== undefined && closing % 2 === 0) conns[closing / 2]?.stream.end();
      return;
    }
    const conn = channel % 2 === 0 ? conns[channel / 2] : undefined;
    if (!conn) {
      logger.debug("portforward: ignoring data on unexpected channel", { channel });
      return;
    }
    if (!conn.stream.writableEnded && !conn.stream.destroyed) conn.stream.write(Buffer.from(buf.subarray(1)));
  });
  ws.on("close", () => {
    for (const c of conns) c.stream.destroy();
  });
  ws.on("error", (err) => logger.debug("portforward: websocket error", { err }));
}
