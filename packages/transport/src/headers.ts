/**
 * Header handling shared by every HTTP proxy in kproxy, following Go's net/http/httputil
 * ReverseProxy (which both kubectl proxy and the API server's proxy subresource use).
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1 plus the historical ones Go removes), lower-case. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** True when `name` (any case) is a hop-by-hop header. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP_HEADERS.has(name.toLowerCase());
}

/** The lower-case header names listed in Connection header values ("close" and "keep-alive" included). */
export function connectionTokens(values: string | readonly string[] | undefined): Set<string> | undefined {
  if (values === undefined) return undefined;
  let tokens: Set<string> | undefined;
  const list = typeof values === "string" ? [values] : values;
  for (const value of list) {
    for (const part of value.split(",")) {
      const token = part.trim().toLowerCase();
      if (token === "") continue;
      tokens ??= new Set();
      tokens.add(token);
    }
  }
  return tokens;
}

/**
 * kubectl's upgrade test (apimachinery `IsUpgradeRequest`): any Connection value that contains
 * "upgrade", case-insensitively, as a substring.
 */
export function isUpgradeRequest(connection: string | readonly string[] | undefined): boolean {
  if (connection === undefined) return false;
  if (typeof connection === "string") return connection.toLowerCase().includes("upgrade");
  for (const value of connection) if (value.toLowerCase().includes("upgrade")) return true;
  return false;
}

/** Go's AppendForwardedForHeader: `<prior>, <ip>`, or just `<ip>`. Multiple prior values are joined with ", ". */
export function appendForwardedFor(prior: string | readonly string[] | undefined, clientIp: string): string {
  if (prior === undefined) return clientIp;
  const joined = typeof prior === "string" ? prior : prior.join(", ");
  return joined === "" && typeof prior !== "string" ? clientIp : `${joined}, ${clientIp}`;
}

/** A header list in the shape undici and Node's `rawHeaders` both use: name, value, name, value… */
export type FlatHeaders = string[];

export interface UpstreamHeaderOptions {
  /** The Host header to send (the API server's host[:port]); replaces the client's. */
  host: string;
  /** The client's IP to append to X-Forwarded-For; undefined (Unix socket clients) adds nothing. */
  clientIp: string | undefined;
  /** Ask for gzip when the client did not send Accept-Encoding (Go's transparent compression). */
  requestGzip: boolean;
  /** Also drop these lower-case header names. */
  drop?: ReadonlySet<string>;
}

export interface UpstreamHeaders {
  /** Flat name/value list for undici (original casing and order kept). */
  headers: FlatHeaders;
  /** True when the proxy added `Accept-Encoding: gzip` and must decompress a gzip response. */
  requestedGzip: boolean;
  /** Lower-case names present, for credential decisions ("authorization", "impersonate-user"). */
  has: (lowerName: string) => boolean;
}

/**
 * Builds the upstream request headers from a client's `rawHeaders` as Go's ReverseProxy does:
 * hop-by-hop headers and every header named in Connection are removed (`Te: trailers` is kept),
 * Host is replaced, X-Forwarded-For is appended, `Expect` is dropped (the proxy answers
 * 100-continue itself) and `Accept-Encoding: gzip` is added when the client sent none, there is
 * no Range, the method is not HEAD and `requestGzip` is on.
 */
export function buildUpstreamHeaders(
  rawHeaders: readonly string[],
  method: string,
  options: UpstreamHeaderOptions,
): UpstreamHeaders {
  let listed: Set<string> | undefined;
  let xff: string[] | undefined;
  let teTrailers = false;
  let acceptEncoding = false;
  let range = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    const value = rawHeaders[i + 1] as string;
    if (name === "connection") {
      for (const part of value.split(",")) {
        const token = part.trim().toLowerCase();
        if (token === "") continue;
        listed ??= new Set();
        listed.add(token);
      }
    } else if (name === "te") {
      for (const part of value.split(",")) if (part.trim().toLowerCase() === "trailers") teTrailers = true;
    }
  }
  const present = new Set<string>();
  const out: string[] = ["Host", options.host];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const rawName = rawHeaders[i] as string;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(name) || name === "host" || name === "expect") continue;
    if (listed?.has(name)) continue;
    if (options.drop?.has(name)) continue;
    const value = rawHeaders[i + 1] as string;
    if (name === "x-forwarded-for") {
      xff ??= [];
      xff.push(value);
      continue;
    }
    if (name === "accept-encoding" && value !== "") acceptEncoding = true;
    if (name === "range" && value !== "") range = true;
    present.add(name);
    out.push(rawName, value);
  }
  if (teTrailers) out.push("Te", "trailers");
  if (options.clientIp !== undefined) {
    out.push("X-Forwarded-For", appendForwardedFor(xff, options.clientIp));
    present.add("x-forwarded-for");
  } else if (xff !== undefined) {
    for (const value of xff) out.push("X-Forwarded-For", value);
    present.add("x-forwarded-for");
  }
  let requestedGzip = false;
  if (options.requestGzip && !acceptEncoding && !range && method !== "HEAD") {
    // Go sends exactly this and removes any empty Accept-Encoding the client sent.
    for (let i = 2; i < out.length; i += 2) {
      if ((out[i] as string).toLowerCase() === "accept-encoding") {
        out.splice(i, 2);
        i -= 2;
      }
    }
    out.push("Accept-Encoding", "gzip");
    present.add("accept-encoding");
    requestedGzip = true;
  }
  return { headers: out, requestedGzip, has: (lowerName) => present.has(lowerName) };
}

/**
 * Response headers for the client: hop-by-hop headers and those named in the response's
 * Connection header removed. With `decompressed`, Content-Encoding and Content-Length go too.
 * Mutates and returns `headers` (undici hands each response a fresh object).
 */
export function filterResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  decompressed = false,
): Record<string, string | string[] | undefined> {
  const listed = connectionTokens(headers.connection);
  for (const name of HOP_BY_HOP_HEADERS) if (name in headers) delete headers[name];
  if (listed !== undefined) for (const name of listed) delete headers[name];
  if (decompressed) {
    delete headers["content-encoding"];
    delete headers["content-length"];
  }
  return headers;
}
