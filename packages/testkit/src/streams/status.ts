import type { Duplex } from "node:stream";

/** A Kubernetes metav1.Status object, as written on the error channel and in HTTP error bodies. */
export interface K8sStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ reason: string; message: string }> };
  code?: number;
}

export function successStatus(): K8sStatus {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" };
}

/** The status a kubelet reports when the command exited with a non-zero code. */
export function exitCodeStatus(command: string[], exitCode: number): K8sStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${exitCode}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(exitCode) }] },
  };
}

export function failureStatus(code: number, reason: string, message: string): K8sStatus {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
};

const STATUS_REASONS: Record<number, string> = {
  400: "BadRequest",
  403: "Forbidden",
  404: "NotFound",
  500: "InternalError",
};

/** An error that the dispatcher turns into an HTTP error response with a Status body. */
export class StreamRequestError extends Error {
  constructor(
    readonly httpCode: number,
    message: string,
  ) {
    super(message);
    this.name = "StreamRequestError";
  }
}

/** Writes a complete HTTP error response with a Status JSON body on a raw (not yet upgraded) socket, then closes it. */
export function writeHttpStatusError(socket: Duplex, httpCode: number, message: string): void {
  const status = failureStatus(httpCode, STATUS_REASONS[httpCode] ?? "InternalError", message);
  const body = Buffer.from(JSON.stringify(status));
  const head =
    `HTTP/1.1 ${httpCode} ${REASON_PHRASES[httpCode] ?? "Error"}\r\n` +
    "Content-Type: application/json\r\n" +
    `Content-Length: ${body.length}\r\n` +
    "Cache-Control: no-cache, private\r\n" +
    "Connection: close\r\n\r\n";
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.on("error", () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(head, "latin1"), body]));
  // Do not wait forever for a peer that never reads.
  const timer = setTimeout(() => socket.destroy(), 5_000);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}
