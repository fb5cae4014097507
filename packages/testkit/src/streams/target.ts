import { connect } from "node:net";
import { type Duplex, PassThrough } from "node:stream";
import type { PodStreamContext } from "./index.js";

export interface PortConnection {
  /** Bytes written go to the pod's port; bytes read come back from it. */
  stream: Duplex;
  /** Resolves when the connection is usable, rejects with a kubelet-like message when it cannot be made. */
  ready: Promise<void>;
  /** "echo" when the pod has no real target for the port and behaves as an echo server. */
  kind: "tcp" | "echo";
}

/** Opens a connection to `port` of the pod: a TCP connection to portForwardTarget's address, or an echo stream. */
export function openPortConnection(ctx: PodStreamContext, port: number): PortConnection {
  let address: { host: string; port: number } | undefined;
  try {
    address = ctx.portForwardTarget?.(ctx.namespace, ctx.pod, port);
  } catch (err) {
    ctx.logger.warn("portforward: portForwardTarget threw; using echo", { err });
  }
  if (!address) {
    const stream = new PassThrough();
    return { stream, ready: Promise.resolve(), kind: "echo" };
  }
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  const ready = new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", (err) => {
      reject(
        new Error(
          `error forwarding port ${port} to pod ${ctx.namespace}/${ctx.pod}: failed to connect to ${address.host}:${address.port}: ${err.message}`,
        ),
      );
    });
  });
  ready.catch(() => {});
  return { stream: socket, ready, kind: "tcp" };
}
