import type { Logger } from "@kproxy/core";
import type { WebSocket } from "ws";
import { type ProcessIO, runAttachedProcess, runFakeCommand, StdinQueue } from "./commands.js";
import type { ExecOptions } from "./options.js";
import { exitCodeStatus, successStatus } from "./status.js";

/** Channel numbers of the Kubernetes streaming protocols. */
export const STDIN_CHANNEL = 0;
export const STDOUT_CHANNEL = 1;
export const STDERR_CHANNEL = 2;
export const ERROR_CHANNEL = 3;
export const RESIZE_CHANNEL = 4;
/** v5.channel.k8s.io: `[255, n]` closes channel n (the client's half-close of stdin). */
export const CLOSE_CHANNEL = 255;

export interface ChannelProtocol {
  /** The negotiated subprotocol, "" when the client offered none. */
  name: string;
  /** 1 for channel.k8s.io (and ""), 2..5 for vN.channel.k8s.io. */
  version: number;
  base64: boolean;
}

const EXEC_PROTOCOLS: ChannelProtocol[] = [
  { name: "v5.channel.k8s.io", version: 5, base64: false },
  { name: "v4.channel.k8s.io", version: 4, base64: false },
  { name: "v4.base64.channel.k8s.io", version: 4, base64: true },
  { name: "v3.channel.k8s.io", version: 3, base64: false },
  { name: "v2.channel.k8s.io", version: 2, base64: false },
  { name: "channel.k8s.io", version: 1, base64: false },
  { name: "base64.channel.k8s.io", version: 1, base64: true },
];

/** Supported exec/attach websocket subprotocols, best first. */
export const EXEC_SUBPROTOCOLS: readonly string[] = EXEC_PROTOCOLS.map((p) => p.name);

/** Picks the best protocol the client offered; undefined when it offered some and none is supported. */
export function negotiateExecProtocol(offered: string[]): ChannelProtocol | undefined {
  if (offered.length === 0) return { name: "", version: 1, base64: false };
  for (const p of EXEC_PROTOCOLS) if (offered.includes(p.name)) return p;
  return undefined;
}

/** Encodes one message of the channel protocol: binary `[channel, ...data]`, or text `"<digit><base64>"`. */
export function encodeChannelMessage(
  protocol: ChannelProtocol,
  channel: number,
  data: Buffer,
): Buffer | string {
  if (protocol.base64) return String.fromCharCode(48 + channel) + data.toString("base64");
  const out = Buffer.allocUnsafe(data.length + 1);
  out[0] = channel;
  data.copy(out, 1);
  return out;
}

/** Decodes one received message; undefined for a malformed (empty or undecodable) one. */
export function decodeChannelMessage(
  protocol: ChannelProtocol,
  raw: Buffer,
  isBinary: boolean,
): { channel: number; data: Buffer } | undefined {
  if (raw.length === 0) return undefined;
  if (protocol.base64 && !isBinary) {
    const text = raw.toString("latin1");
    const channel = text.charCodeAt(0) - 48;
    if (channel < 0 || channel > 9) return undefined;
    return { channel, data: Buffer.from(text.slice(1), "base64") };
  }
  return { channel: raw[0] as number, data: raw.subarray(1) };
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * Serves exec or attach on an open WebSocket: runs the fake command, relays stdin/stdout/stderr by channel,
 * reports the exit status on the error channel, then closes the WebSocket.
 */
export function serveChannelExec(
  ws: WebSocket,
  protocol: ChannelProtocol,
  opts: ExecOptions,
  target: { namespace: string; pod: string; attach: boolean },
  logger: Logger,
): void {
  const abort = new AbortController();
  const stdin = new StdinQueue();
  if (!opts.stdin) stdin.end();
  let closed = false;

  const send = (channel: number, data: string | Buffer): void => {
    if (closed || ws.readyState !== ws.OPEN) return;
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    if (buf.length === 0) return;
    ws.send(encodeChannelMessage(protocol, channel, buf));
  };

  ws.on("message", (raw, isBinary) => {
    const msg = decodeChannelMessage(protocol, toBuffer(raw), isBinary);
    if (!msg) {
      logger.debug("exec: ignoring empty or malformed websocket message");
      return;
    }
    switch (msg.channel) {
      case STDIN_CHANNEL:
        if (opts.stdin) stdin.push(Buffer.from(msg.data));
        break;
      case RESIZE_CHANNEL:
        try {
          const size = JSON.parse(msg.data.toString("utf8")) as { Width?: unknown; Height?: unknown };
          logger.debug("exec: terminal resized", { width: size.Width, height: size.Height });
        } catch {
          logger.warn("exec: malformed resize message ignored");
        }
        break;
      case CLOSE_CHANNEL:
        if (protocol.version >= 5 && msg.data[0] === STDIN_CHANNEL) stdin.end();
        else logger.debug("exec: ignoring close of channel", { channel: msg.data[0] });
        break;
      default:
        logger.debug("exec: ignoring message on unexpected channel", { channel: msg.channel });
    }
  });
  ws.on("close", () => {
    closed = true;
    stdin.end();
    abort.abort();
  });
  ws.on("error", (err) => logger.debug("exec: websocket error", { err }));

  const io: ProcessIO = {
    stdin,
    stdout: (d) => {
      if (opts.stdout) send(STDOUT_CHANNEL, d);
    },
    stderr: (d) => {
      if (opts.tty) {
        if (opts.stdout) send(STDOUT_CHANNEL, d);
      } else if (opts.stderr) send(STDERR_CHANNEL, d);
    },
    signal: abort.signal,
    pod: target.pod,
    namespace: target.namespace,
    container: opts.container,
    tty: opts.tty,
  };

  const run = target.attach ? runAttachedProcess(io) : runFakeCommand(opts.command, io);
  run
    .catch((err: unknown) => {
      logger.warn("exec: fake command failed", { err });
      return 1;
    })
    .then((code) => {
      if (closed) return;
      if (protocol.version >= 4) {
        const status =
          code === 0 ? successStatus() : exitCodeStatus(target.attach ? ["attach"] : opts.command, code);
        send(ERROR_CHANNEL, JSON.stringify(status));
      } else if (code !== 0) {
        send(ERROR_CHANNEL, `command terminated with non-zero exit code: exit code ${code}`);
      }
      ws.close(1000);
      // A peer that never answers the close handshake is cut off.
      const timer = setTimeout(() => ws.terminate(), 10_000);
      timer.unref();
      ws.once("close", () => clearTimeout(timer));
    });
}
