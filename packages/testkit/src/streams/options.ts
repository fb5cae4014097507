import type { PodStreamContext } from "./index.js";
import { StreamRequestError } from "./status.js";

export interface ExecOptions {
  command: string[];
  container: string;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

function parseBool(query: URLSearchParams, name: string, dflt: boolean): boolean {
  const values = query.getAll(name);
  const v = values[values.length - 1];
  if (v === undefined) return dflt;
  switch (v.toLowerCase()) {
    case "":
    case "1":
    case "t":
    case "true":
      return true;
    case "0":
    case "f":
    case "false":
      return false;
    default:
      throw new StreamRequestError(
        400,
        `invalid value for query parameter ${JSON.stringify(name)}: ${JSON.stringify(v)} is not a boolean`,
      );
  }
}

/** Validates the query of an exec or attach request the way the API server does. Throws StreamRequestError (400). */
export function parseExecOptions(ctx: PodStreamContext): ExecOptions {
  const q = ctx.query;
  const requested = q.get("container") ?? "";
  let container: string;
  if (requested !== "") {
    if (!ctx.containerNames.includes(requested)) {
      throw new StreamRequestError(400, `container ${requested} is not valid for pod ${ctx.pod}`);
    }
    container = requested;
  } else {
    const first = ctx.containerNames[0];
    if (first === undefined) throw new StreamRequestError(400, `pod ${ctx.pod} has no containers`);
    container = first;
  }
  const stdin = parseBool(q, "stdin", false);
  const tty = parseBool(q, "tty", false);
  // Like the API server's defaulting of PodExecOptions / PodAttachOptions: stdout and stderr default to true.
  const stdout = parseBool(q, "stdout", true);
  const stderr = parseBool(q, "stderr", true);
  const command = q.getAll("command");
  if (ctx.subresource === "exec" && command.length === 0) {
    throw new StreamRequestError(400, "you must specify at least 1 command");
  }
  if (!stdin && !stdout && !stderr) {
    throw new StreamRequestError(400, "you must specify at least 1 of stdin, stdout, stderr");
  }
  return { command, container, stdin, stdout, stderr: stderr && !tty, tty };
}

/** Parses `ports=80,8080` (also repeated `ports`) of a websocket port-forward request. */
export function parsePortForwardPorts(query: URLSearchParams): number[] {
  const ports: number[] = [];
  for (const value of query.getAll("ports")) {
    for (const part of value.split(",")) {
      const p = part.trim();
      if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) {
        throw new StreamRequestError(
          400,
          `invalid port ${JSON.stringify(part)}: must be an integer between 1 and 65535`,
        );
      }
      ports.push(Number(p));
    }
  }
  if (ports.length === 0) throw new StreamRequestError(400, 'query parameter "ports" is required');
  if (ports.length > 16)
    throw new StreamRequestError(400, "too many ports: at most 16 may be forwarded on one connection");
  return ports;
}

/** Parses one port header of a SPDY port-forward stream. Returns undefined when invalid. */
export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= 65535 ? n : undefined;
}
