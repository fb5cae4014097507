/**
 * An error with a stable, machine-readable `code` and an optional `cause`.
 * Codes are UPPER_SNAKE strings that never change once published; messages may.
 */
export class KproxyError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: string,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KproxyError";
    this.code = code;
    this.details = options?.details;
  }
}

/** True when `err` is a KproxyError, optionally with the given code. */
export function isKproxyError(err: unknown, code?: string): err is KproxyError {
  return err instanceof KproxyError && (code === undefined || err.code === code);
}

/** A one-line message for an unknown thrown value, never a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
