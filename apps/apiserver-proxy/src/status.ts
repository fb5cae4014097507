/**
 * Every answer the proxy makes itself is a Kubernetes Status, as the API server's; the HTTP
 * status of each error is decided here.
 */
import type { ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { errorMessage, isKproxyError, type KproxyError } from "@kproxy/core";
import { REWRITE_ERROR_CODES, writeRawResponse } from "@kproxy/transport";

export interface StatusDetails {
  name?: string;
  kind?: string;
  causes?: { message: string }[];
}

/** A metav1.Status with status "Failure". */
export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure";
  message: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): KubeStatus {
  // Field order as the API server writes it; an empty reason is omitted.
  const s: Record<string, unknown> = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
  };
  if (reason !== "") s.reason = reason;
  if (details !== undefined) s.details = details;
  s.code = code;
  return s as unknown as KubeStatus;
}

export const UNAUTHORIZED = failure(401, "Unauthorized", "Unauthorized");
export const NOT_FOUND = failure(404, "NotFound", "the server could not find the requested resource", {});

export function methodNotAllowed(method: string): KubeStatus {
  return failure(
    405,
    "MethodNotAllowed",
    `the server does not allow this method on the requested resource (${method})`,
    {},
  );
}

export function internalError(message: string): KubeStatus {
  return failure(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/** The Status for any error: endpoint resolution errors carry theirs, upstream errors are 503s. */
export function statusFromError(err: unknown): KubeStatus {
  if (isKproxyError(err)) {
    const d = err.details as
      | { status?: unknown; reason?: unknown; kind?: unknown; name?: unknown }
      | undefined;
    if (typeof d?.status === "number" && typeof d.reason === "string") {
      const details: StatusDetails | undefined =
        typeof d.kind === "string" ? { name: String(d.name ?? ""), kind: d.kind } : undefined;
      return failure(d.status, d.reason, err.message, details);
    }
    // (The lean path reports rewriting failures as they are; forwardHttp wraps them.)
    if (err.code === REWRITE_ERROR_CODES.locationInvalid) return internalError(err.message);
    if (err.code === REWRITE_ERROR_CODES.htmlFailed) return failure(500, "", err.message);
    if (err.code.startsWith("UPSTREAM_")) {
      const cause = (err as KproxyError).cause;
      if (isKproxyError(cause) && cause.code === REWRITE_ERROR_CODES.locationInvalid)
        return internalError(cause.message);
      if (isKproxyError(cause) && cause.code === REWRITE_ERROR_CODES.htmlFailed)
        return failure(500, "", cause.message);
      return failure(503, "ServiceUnavailable", `error trying to reach service: ${err.message}`);
    }
  }
  return failure(500, "", errorMessage(err));
}

export function statusText(status: KubeStatus): string {
  return JSON.stringify(status);
}

const JSON_HEADERS = { "Content-Type": "application/json", "Cache-Control": "no-cache, private" } as const;

/** Answers with a Status (no body for HEAD). */
export function sendStatus(res: ServerResponse, status: KubeStatus, head = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusText(status);
  res.writeHead(status.code, { ...JSON_HEADERS, "Content-Length": Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

/** Answers an upgrade request's raw connection with a Status, then closes it. */
export function sendRawStatus(socket: Duplex, status: KubeStatus): void {
  writeRawResponse(socket, status.code, { ...JSON_HEADERS }, statusText(status));
}

export function reasonPhrase(code: number): string {
  return STATUS_CODES[code] ?? "";
}
