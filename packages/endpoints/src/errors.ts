import { KproxyError } from "@kproxy/core";

/** The stable error codes this package throws (as KproxyError.code). */
export const ENDPOINTS_ERROR_CODES = Object.freeze([
  "INVALID_PROXY_ID",
  "SERVICE_NOT_FOUND",
  "SERVICE_PORT_NOT_FOUND",
  "NO_ENDPOINTS",
  "POD_NOT_FOUND",
  "NODE_NOT_FOUND",
  "ADDRESS_NOT_ALLOWED",
  "NO_PREFERRED_ADDRESS",
  "NOT_SYNCED",
  "RESOURCE_NOT_WATCHED",
  "INVALID_OPTIONS",
  "LIST_FAILED",
  "WATCHER_CLOSED",
] as const);

export type EndpointsErrorCode = (typeof ENDPOINTS_ERROR_CODES)[number];

/**
 * What an app needs to answer with a Kubernetes Status: `status` (HTTP code), `reason`
 * (Status reason, "" for a plain error that upstream turns into a 500 without reason), and for
 * NotFound the `kind` (plural resource) and `name` that go into Status.details.
 */
export interface ResolveErrorDetails {
  status: number;
  reason: string;
  kind?: string;
  name?: string;
  [key: string]: unknown;
}

export function resolveError(
  code: EndpointsErrorCode,
  message: string,
  details: ResolveErrorDetails,
  cause?: unknown,
): KproxyError {
  return new KproxyError(code, message, { details, cause });
}

/** `<kind> "<name>" not found`, 404 NotFound, as the API server words it. */
export function notFound(code: EndpointsErrorCode, kind: string, name: string): KproxyError {
  return resolveError(code, `${kind} ${JSON.stringify(name)} not found`, {
    status: 404,
    reason: "NotFound",
    kind,
    name,
  });
}
