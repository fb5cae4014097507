import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "@kproxy/core";
import { dispatchPodStream } from "./dispatch.js";

export interface PodStreamContext {
  namespace: string;
  pod: string;
  subresource: "exec" | "attach" | "portforward";
  query: URLSearchParams;
  containerNames: string[]; // from the pod's spec.containers
  portForwardTarget?: (
    namespace: string,
    pod: string,
    port: number,
  ) => { host: string; port: number } | undefined;
  logger: Logger;
}

/** Called by the server on an HTTP upgrade for .../pods/NAME/{exec,attach,portforward}, after authn and after it
 *  checked that the pod exists. Negotiates the protocol, writes the 101 (or an HTTP error with a Status JSON body)
 *  on the raw socket, then serves the stream. Never throws. */
export function handlePodStream(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: PodStreamContext,
): void {
  dispatchPodStream(req, socket, head, ctx);
}
