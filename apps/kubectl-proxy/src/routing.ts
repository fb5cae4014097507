import {
  cleanRequestPath,
  escapedPathOf,
  escapeGoPath,
  parseRequestTarget,
  singleJoiningSlash,
  splitHostPort,
  unescapeGoPath,
  urlString,
} from "@kproxy/transport";
import { matchesAny } from "./regex.js";

/** kubectl's request filter (FilterServer). */
export interface FilterRules {
  acceptPaths: readonly RegExp[];
  rejectPaths: readonly RegExp[];
  acceptHosts: readonly RegExp[];
  rejectMethods: readonly RegExp[];
  /**
   * Off (kubectl): `[::1]:8001` is matched as `::1`, so the default accept-hosts rejects it.
   * On: a bracketed IPv6 Host with a port keeps its brackets (`[::1]`).
   */
  keepIPv6Brackets: boolean;
}

export interface RoutingRules {
  /** API prefix with its trailing "/". */
  apiPrefix: string;
  /** Static file prefix with its trailing "/", or undefined when --www is not set. */
  wwwPrefix: string | undefined;
  /** undefined: --disable-filter. */
  filter: FilterRules | undefined;
  /** The kubeconfig server's path when --append-server-path is on, else "". */
  serverPath: string;
}

export type Route =
  | { kind: "bad-request"; message: string }
  | { kind: "options-star" }
  | { kind: "redirect"; location: string }
  | { kind: "not-found" }
  | { kind: "forbidden"; host: string; path: string }
  | { kind: "static"; path: string; rawQuery: string }
  | { kind: "proxy"; upstreamPath: string; filterPath: string; host: string };

/** kubectl's extractHost, optionally without the [::1]:port quirk. */
export function filterHost(hostHeader: string, keepIPv6Brackets: boolean): string {
  const split = splitHostPort(hostHeader);
  if (split === undefined) return hostHeader;
  if (keepIPv6Brackets && hostHeader.startsWith("[")) return `[${split.host}]`;
  return split.host;
}

/** Decides a request as kubectl's filter does: reject-paths, reject-methods, then accept-paths and accept-hosts. */
export function filterAccepts(rules: FilterRules, method: string, path: string, host: string): boolean {
  if (matchesAny(path, rules.rejectPaths)) return false;
  if (matchesAny(method, rules.rejectMethods)) return false;
  return matchesAny(path, rules.acceptPaths) && matchesAny(host, rules.acceptHosts);
}

interface Pattern {
  prefix: string;
  segments: string[];
  kind: "api" | "www";
}

/** Normalises a prefix as kubectl does: a trailing "/" is added when missing. */
export function normalizePrefix(prefix: string): string {
  return prefix.endsWith("/") ? prefix : `${prefix}/`;
}

/**
 * Routes one request exactly as kubectl's Go ServeMux + FilterServer + stripLeaveSlash would.
 * `hostHeader` is the Host header (undefined when absent).
 */
export class Router {
  private readonly patterns: Pattern[];

  constructor(private readonly rules: RoutingRules) {
    const patterns: Pattern[] = [
      { prefix: rules.apiPrefix, segments: segmentsOf(rules.apiPrefix), kind: "api" },
    ];
    if (rules.wwwPrefix !== undefined) {
      patterns.push({ prefix: rules.wwwPrefix, segments: segmentsOf(rules.wwwPrefix), kind: "www" });
    }
    // Longest (most segments) first, like Go's most-specific-wins.
    patterns.sort((a, b) => b.segments.length - a.segments.length);
    this.patterns = patterns;
  }

  route(method: string, rawTarget: string, hostHeader: string | undefined): Route {
    const target = parseRequestTarget(rawTarget);
    if (target === undefined) return { kind: "bad-request", message: "" };
    if (target.path === "*" && rawTarget === "*") return { kind: "options-star" };
    const host = target.host !== "" ? target.host : (hostHeader ?? "");
    const cleaned = cleanRequestPath(target.escapedPath);
    const match = this.match(cleaned);
    if (!this.exact(match, cleaned) && !cleaned.endsWith("/")) {
      const withSlash = `${cleaned}/`;
      if (this.exact(this.match(withSlash), withSlash)) {
        return {
          kind: "redirect",
          location: urlString(`${cleanRequestPath(target.path)}/`, target.rawQuery),
        };
      }
    }
    if (cleaned !== target.escapedPath) {
      return { kind: "redirect", location: urlString(cleaned, target.rawQuery) };
    }
    if (match === undefined) return { kind: "not-found" };
    if (match.kind === "www") {
      const stripped = target.path.startsWith(match.prefix)
        ? target.path.slice(match.prefix.length)
        : undefined;
      if (stripped === undefined) return { kind: "not-found" };
      return {
        kind: "static",
        path: stripped.startsWith("/") ? stripped : `/${stripped}`,
        rawQuery: target.rawQuery,
      };
    }
    // The API handler: strip the prefix unless it starts with /api (kubectl's rule).
    const prefix = this.rules.apiPrefix;
    let path = target.path;
    let escaped = target.escapedPath;
    if (!prefix.startsWith("/api")) {
      if (!path.startsWith(prefix) || path.length <= prefix.length - 1) return { kind: "not-found" };
      let rest = path.slice(prefix.length);
      if (rest.length > 0 && !rest.startsWith("/")) rest = `/${rest}`;
      path = rest;
      // Go keeps URL.RawPath, which is still used when it encodes the new path (prefix "/").
      escaped = escapedPathOf(rest, target.escapedPath);
    }
    if (this.rules.filter !== undefined) {
      const filterHostValue = filterHost(host, this.rules.filter.keepIPv6Brackets);
      if (!filterAccepts(this.rules.filter, method, path, filterHostValue)) {
        return { kind: "forbidden", host, path };
      }
    }
    if (this.rules.serverPath !== "") {
      // Go joins both the decoded and the raw path (httputil.joinURLPath), so escapes survive.
      escaped = singleJoiningSlash(escapeGoPath(this.rules.serverPath), escaped);
    }
    if (escaped === "") escaped = "/";
    else if (!escaped.startsWith("/")) escaped = `/${escaped}`;
    const upstreamPath =
      target.rawQuery !== "" || target.forceQuery ? `${escaped}?${target.rawQuery}` : escaped;
    return { kind: "proxy", upstreamPath, filterPath: path, host };
  }

  private match(escapedPath: string): Pattern | undefined {
    const segs = escapedPath.split("/").slice(1);
    for (const pattern of this.patterns) {
      if (segs.length <= pattern.segments.length) continue;
      let ok = true;
      for (let k = 0; k < pattern.segments.length; k++) {
        const seg = segs[k] as string;
        if ((unescapeGoPath(seg) ?? seg) !== pattern.segments[k]) {
          ok = false;
          break;
        }
      }
      if (ok) return pattern;
    }
    return undefined;
  }

  private exact(pattern: Pattern | undefined, path: string): boolean {
    if (pattern === undefined) return false;
    if (!path.endsWith("/")) return false;
    return pattern.segments.length + 1 === countSlashes(path);
  }
}

function segmentsOf(prefix: string): string[] {
  return prefix.split("/").slice(1, -1);
}

function countSlashes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 0x2f) n++;
  return n;
}
