import { KproxyError } from "@kproxy/core";

/** Stable codes for upstream failures. */
export type UpstreamErrorCode =
  | "UPSTREAM_UNREACHABLE"
  | "UPSTREAM_TLS"
  | "UPSTREAM_RESET"
  | "UPSTREAM_PROTOCOL"
  | "UPSTREAM_ABORTED";

function codeOf(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && !code.startsWith("UND_ERR_") && code !== "UND_ERR") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function undiciCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Turns a Node/undici error from talking to `target` ("host:port") into a KproxyError whose
 * message reads like Go's net/http error text, which is what kubectl puts in its 500 bodies
 * (`dial tcp 127.0.0.1:8080: connect: connection refused`). The original error is the cause.
 */
export function upstreamError(err: unknown, target: string): KproxyError {
  const sys = codeOf(err);
  const und = undiciCodeOf(err);
  const make = (code: UpstreamErrorCode, message: string) =>
    new KproxyError(code, message, { cause: err, details: { target } });
  switch (sys) {
    case "ECONNREFUSED":
      return make("UPSTREAM_UNREACHABLE", `dial tcp ${target}: connect: connection refused`);
    case "EHOSTUNREACH":
      return make("UPSTREAM_UNREACHABLE", `dial tcp ${target}: connect: no route to host`);
    case "ENETUNREACH":
      return make("UPSTREAM_UNREACHABLE", `dial tcp ${target}: connect: network is unreachable`);
    case "ETIMEDOUT":
      return make("UPSTREAM_UNREACHABLE", `dial tcp ${target}: i/o timeout`);
    case "ENOTFOUND":
    case "EAI_AGAIN": {
      const host = target.startsWith("[") ? target.slice(1, target.indexOf("]")) : target.split(":")[0];
      return make("UPSTREAM_UNREACHABLE", `dial tcp: lookup ${host}: no such host`);
    }
    case "ECONNRESET":
      return make("UPSTREAM_RESET", `read tcp ${target}: read: connection reset by peer`);
    case "EPIPE":
      return make("UPSTREAM_RESET", `write tcp ${target}: write: broken pipe`);
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return make(
        "UPSTREAM_TLS",
        "tls: failed to verify certificate: x509: certificate signed by unknown authority",
      );
    case "CERT_HAS_EXPIRED":
      return make(
        "UPSTREAM_TLS",
        "tls: failed to verify certificate: x509: certificate has expired or is not yet valid",
      );
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return make(
        "UPSTREAM_TLS",
        `tls: failed to verify certificate: x509: certificate is not valid for ${target}`,
      );
    default:
      break;
  }
  if (und === "UND_ERR_SOCKET" || und === "UND_ERR_CLOSED") return make("UPSTREAM_RESET", "EOF");
  if (und === "UND_ERR_ABORTED") return make("UPSTREAM_ABORTED", "context canceled");
  if (und === "UND_ERR_CONNECT_TIMEOUT")
    return make("UPSTREAM_UNREACHABLE", `dial tcp ${target}: i/o timeout`);
  if (und === "UND_ERR_HEADERS_OVERFLOW") {
    return make("UPSTREAM_PROTOCOL", "net/http: server response headers exceeded 1048576 bytes; aborted");
  }
  const message = err instanceof Error ? err.message : String(err);
  if (sys?.startsWith("ERR_TLS") || sys?.startsWith("ERR_SSL") || /certificate|ssl|tls/i.test(message)) {
    return make("UPSTREAM_TLS", `tls: ${message}`);
  }
  return make("UPSTREAM_PROTOCOL", message);
}
