/**
 * The URL space of the API server's proxy subresource (B.1): which object a request is for, and
 * the backend path it asks for, with upstream's decoding, cleaning and trailing-slash rules.
 */
import type { ProxyKind } from "@kproxy/endpoints";
import { joinPreservingTrailingSlash } from "@kproxy/transport";

export interface ProxyRequest {
  kind: ProxyKind;
  /** Undefined for nodes. */
  namespace: string | undefined;
  /** The `{id}` segment as given: `name`, `name:port` or `scheme:name:port`. */
  id: string;
  /** The decoded request path (Go's req.URL.Path). */
  requestPath: string;
  /** The raw request path as the client sent it. */
  rawPath: string;
  /** The raw query ("" when none). */
  rawQuery: string;
  /**
   * The backend path: the sub-path after `/proxy`, cleaned, with the request's trailing "/" kept;
   * "" when there is none (GET/HEAD then get a 301 to the path with "/").
   */
  backendPath: string;
}

export type ParsedPath = { ok: true; request: ProxyRequest } | { ok: false; status: 400 | 404 };

/** The methods the proxy subresource serves (others: 405). */
export const PROXY_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "HEAD",
  "OPTIONS",
]);

function decodePath(raw: string): string | undefined {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

const PARSED_CACHE_SIZE = 4096;
const parsedCache = new Map<string, ParsedPath>();

/**
 * parseProxyPath, remembered for the last few thousand request targets (clients repeat theirs;
 * the results are never modified).
 */
export function parseProxyPathCached(url: string): ParsedPath {
  let parsed = parsedCache.get(url);
  if (parsed === undefined) {
    parsed = parseProxyPath(url);
    if (parsedCache.size >= PARSED_CACHE_SIZE) parsedCache.clear();
    parsedCache.set(url, parsed);
  }
  return parsed;
}

/** Parses a request target (`req.url`). Not a proxy URL: 404; undecodable path: 400. */
export function parseProxyPath(url: string): ParsedPath {
  const q = url.indexOf("?");
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  const requestPath = decodePath(rawPath);
  if (requestPath === undefined) return { ok: false, status: 400 };
  // RequestInfo.Parts: the path trimmed of "/" at both ends, split on "/".
  let start = 0;
  let end = requestPath.length;
  while (start < end && requestPath.charCodeAt(start) === 47) start++;
  while (end > start && requestPath.charCodeAt(end - 1) === 47) end--;
  const parts = requestPath.slice(start, end).split("/");
  if (parts[0] !== "api" || parts[1] !== "v1") return { ok: false, status: 404 };
  let kind: ProxyKind;
  let namespace: string | undefined;
  let id: string;
  let rest: number;
  if (parts[2] === "namespaces" && parts.length >= 7 && parts[6] === "proxy") {
    if (parts[4] === "services") kind = "service";
    else if (parts[4] === "pods") kind = "pod";
    else return { ok: false, status: 404 };
    namespace = parts[3] as string;
    id = parts[5] as string;
    rest = 7;
  } else if (parts[2] === "nodes" && parts.length >= 5 && parts[4] === "proxy") {
    kind = "node";
    id = parts[3] as string;
    rest = 5;
  } else return { ok: false, status: 404 };
  if (id === "" || namespace === "") return { ok: false, status: 404 };
  let sub = parts.slice(rest).join("/");
  if (sub !== "" && !sub.startsWith("/")) sub = `/${sub}`;
  if (requestPath.endsWith("/") && !sub.endsWith("/")) sub += "/";
  let backendPath = joinPreservingTrailingSlash("", sub);
  if (!backendPath.endsWith("/") && requestPath.endsWith("/")) backendPath += "/";
  return { ok: true, request: { kind, namespace, id, requestPath, rawPath, rawQuery, backendPath } };
}

/** The rewriting transport's PathPrepend: the request path without the backend path at its end. */
export function pathPrepend(requestPath: string, backendPath: string): string {
  return backendPath !== "" && requestPath.endsWith(backendPath)
    ? requestPath.slice(0, requestPath.length - backendPath.length)
    : requestPath;
}

/** The verb RBAC sees for a method (OPTIONS and others: "", as upstream). */
export function verbOf(method: string): string {
  switch (method) {
    case "GET":
    case "HEAD":
      return "get";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return "";
  }
}

/** True when the query has a `dryRun` parameter (400 `dryRun is not supported`). */
export function hasDryRun(rawQuery: string): boolean {
  if (rawQuery === "" || !rawQuery.includes("dryRun")) return false;
  for (const part of rawQuery.split(/[&;]/)) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    if (decodePath(key.replace(/\+/g, " ")) === "dryRun") return true;
  }
  return false;
}
