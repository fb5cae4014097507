/** Kubernetes Status objects and the error type that carries one. */

export type StatusReason =
  | "BadRequest"
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "MethodNotAllowed"
  | "NotAcceptable"
  | "AlreadyExists"
  | "Conflict"
  | "Gone"
  | "Expired"
  | "UnsupportedMediaType"
  | "Invalid"
  | "TooManyRequests"
  | "InternalError"
  | "ServiceUnavailable"
  | "Timeout"
  | "";

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, unknown>;
  status: "Success" | "Failure";
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

const REASON_BY_CODE: Record<number, StatusReason> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** The reason the real API server uses for a bare status code. */
export function reasonForCode(code: number): StatusReason {
  return REASON_BY_CODE[code] ?? "";
}

/** An API error: thrown by the store and the handlers, rendered as a Status body. */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: StatusReason;
  readonly details: StatusDetails | undefined;

  constructor(code: number, reason: StatusReason, message: string, details?: StatusDetails) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): Status {
    return failureStatus(this.code, this.reason, this.message, this.details);
  }
}

export function failureStatus(
  code: number,
  reason: StatusReason,
  message: string,
  details?: StatusDetails,
): Status {
  const s: Status = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, code };
  if (reason) s.reason = reason;
  if (details) s.details = details;
  return s;
}

export function notFound(groupResource: { group: string; resource: string }, name: string): ApiError {
  const gr = groupResource.group
    ? `${groupResource.resource}.${groupResource.group}`
    : groupResource.resource;
  return new ApiError(404, "NotFound", `${gr} "${name}" not found`, {
    name,
    group: groupResource.group,
    kind: groupResource.resource,
  });
}

export function alreadyExists(groupResource: { group: string; resource: string }, name: string): ApiError {
  const gr = groupResource.group
    ? `${groupResource.resource}.${groupResource.group}`
    : groupResource.resource;
  return new ApiError(409, "AlreadyExists", `${gr} "${name}" already exists`, {
    name,
    group: groupResource.group,
    kind: groupResource.resource,
  });
}

export function conflict(
  groupResource: { group: string; resource: string },
  name: string,
  why: string,
): ApiError {
  const gr = groupResource.group
    ? `${groupResource.resource}.${groupResource.group}`
    : groupResource.resource;
  return new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${gr} "${name}": ${why}`, {
    name,
    group: groupResource.group,
    kind: groupResource.resource,
  });
}

export function invalid(
  kind: string,
  group: string,
  name: string,
  causes: { field: string; message: string; reason?: string }[],
): ApiError {
  const gk = group ? `${kind}.${group}` : kind;
  const msg = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
  return new ApiError(422, "Invalid", `${gk} "${name}" is invalid: ${msg}`, {
    name,
    group,
    kind,
    causes: causes.map((c) => ({
      reason: c.reason ?? "FieldValueInvalid",
      message: c.message,
      field: c.field,
    })),
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}
