/** Header names (lower-case) whose values are secrets and are never logged. */
export const SECRET_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-remote-user",
  "impersonate-user",
]);

const SECRET_KEY = /(authorization|token|password|secret|client-?key|private-?key|cookie|credential)/i;

/** Replaces secret values in a header map (any casing) with "<redacted>". */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] = value !== undefined && SECRET_HEADERS.has(name.toLowerCase()) ? "<redacted>" : value;
  }
  return out;
}

/** Deep copy of a log field object with secret-looking keys replaced by "<redacted>". */
export function redactFields(fields: Record<string, unknown>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (SECRET_KEY.test(key) && value !== undefined && value !== null && value !== "") {
      out[key] = "<redacted>";
    } else if (
      value &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      depth < 4 &&
      !(value instanceof Error)
    ) {
      out[key] = redactFields(value as Record<string, unknown>, depth + 1);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Query parameter names (case-insensitive, after percent-decoding) whose values are secrets. */
const SECRET_QUERY = /^(access_token|token|password|secret|client_secret|api_key|apikey|key|signature|sig)$/i;

/**
 * A request target (`/path?query`) fit for a log line: the values of secret-looking query
 * parameters (`token`, `access_token`, `password`, …) are replaced by `<redacted>`.
 */
export function redactQuery(target: string): string {
  const q = target.indexOf("?");
  if (q < 0) return target;
  const parts = target
    .slice(q + 1)
    .split("&")
    .map((kv) => {
      const eq = kv.indexOf("=");
      if (eq < 0) return kv;
      let key = kv.slice(0, eq);
      try {
        key = decodeURIComponent(key);
      } catch {
        // a malformed escape: test the key as it is
      }
      return SECRET_QUERY.test(key) ? `${kv.slice(0, eq)}=<redacted>` : kv;
    });
  return `${target.slice(0, q)}?${parts.join("&")}`;
}
