/**
 * The parts of Go's net/url and path packages that the API server's rewriting transport relies
 * on: parsing (with its errors), path escaping (`URL.EscapedPath`), serialisation, and
 * `path.Join`/`path.Clean`.
 */
import { KproxyError } from "@kproxy/core";

/** A URL as Go's url.URL holds it. `path` is decoded; `rawPath` is the original escaping when it differs. */
export interface GoUrl {
  scheme: string;
  /** `user:pass@` without the `@`, or undefined. */
  userinfo: string | undefined;
  host: string;
  path: string;
  rawPath: string;
  /** The text after "?" (undefined when there is no "?"). */
  rawQuery: string | undefined;
  /** The raw text after "#" (undefined when there is no "#"). */
  rawFragment: string | undefined;
  /** An opaque URL ("mailto:x"): the part after the scheme, kept as written. */
  opaque: string;
}

function parseError(op: string, url: string, message: string): KproxyError {
  return new KproxyError("URL_INVALID", `${op} ${JSON.stringify(url)}: ${message}`, {
    details: { url },
  });
}

const HEX = "0123456789ABCDEF";

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Go's shouldEscape for encodePath. */
function shouldEscapePath(c: number): boolean {
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57)) return false;
  switch (c) {
    case 45: // -
    case 95: // _
    case 46: // .
    case 126: // ~
    case 36: // $
    case 38: // &
    case 43: // +
    case 44: // ,
    case 47: // /
    case 58: // :
    case 59: // ;
    case 61: // =
    case 64: // @
      return false;
    default:
      return true;
  }
}

/**
 * Go's `escape(path, encodePath)`: percent-encodes every byte of the UTF-8 form that is not
 * unreserved or one of `$&+,/:;=@`.
 */
export function escapeGoPath(path: string): string {
  let needs = false;
  for (let i = 0; i < path.length; i++) {
    if (shouldEscapePath(path.charCodeAt(i))) {
      needs = true;
      break;
    }
  }
  if (!needs) return path;
  const bytes = Buffer.from(path, "utf8");
  let out = "";
  for (const b of bytes) {
    if (shouldEscapePath(b)) out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

/** Percent-decoding as Go's unescape (mode path): invalid escapes are an error; "+" stays. */
function unescapePath(s: string, whole: string): string {
  if (!s.includes("%")) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
        let esc = s.slice(i, i + 3);
        if (esc.length < 3) esc = s.slice(i);
        throw parseError("parse", whole, `invalid URL escape ${JSON.stringify(esc)}`);
      }
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const b of Buffer.from(s[i] as string, "utf8")) bytes.push(b);
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Go's validEncoded(s, encodePath): only characters a path may carry escaped or not. */
function validEncodedPath(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    switch (c) {
      case 33: // !
      case 36: // $
      case 38: // &
      case 39: // '
      case 40: // (
      case 41: // )
      case 42: // *
      case 43: // +
      case 44: // ,
      case 59: // ;
      case 61: // =
      case 58: // :
      case 64: // @
      case 91: // [
      case 93: // ]
        continue;
      case 37: // %
        continue;
      default:
        if (shouldEscapePath(c)) return false;
    }
  }
  return true;
}

/** Go's `URL.EscapedPath`: the original escaping when it is a valid encoding of `path`, else escapePath. */
export function escapedPath(u: Pick<GoUrl, "path" | "rawPath">): string {
  if (u.rawPath !== "" && validEncodedPath(u.rawPath)) {
    try {
      if (unescapePath(u.rawPath, u.rawPath) === u.path) return u.rawPath;
    } catch {
      // fall through
    }
  }
  if (u.path === "*") return "*";
  return escapeGoPath(u.path);
}

function getScheme(raw: string): { scheme: string; rest: string } {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    const letter = (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
    if (letter) continue;
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46) {
      if (i === 0) return { scheme: "", rest: raw };
      continue;
    }
    if (c === 58) {
      if (i === 0) throw parseError("parse", raw, "missing protocol scheme");
      return { scheme: raw.slice(0, i), rest: raw.slice(i + 1) };
    }
    return { scheme: "", rest: raw };
  }
  return { scheme: "", rest: raw };
}

function validHost(host: string, whole: string): void {
  if (host.startsWith("[")) {
    const end = host.lastIndexOf("]");
    if (end < 0) throw parseError("parse", whole, "missing ']' in host");
    const port = host.slice(end + 1);
    if (port !== "" && !/^:\d*$/.test(port))
      throw parseError("parse", whole, `invalid port ${JSON.stringify(port)} after host`);
    return;
  }
  const colon = host.lastIndexOf(":");
  if (colon >= 0) {
    const port = host.slice(colon);
    if (!/^:\d*$/.test(port))
      throw parseError("parse", whole, `invalid port ${JSON.stringify(port)} after host`);
  }
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (
      c === 32 ||
      c === 60 ||
      c === 62 ||
      c === 34 ||
      c === 96 ||
      c === 123 ||
      c === 125 ||
      c === 124 ||
      c === 92 ||
      c === 94
    )
      throw parseError("parse", whole, `invalid character ${JSON.stringify(host[i])} in host name`);
  }
}

/** Go's url.Parse: throws URL_INVALID with Go's wording (`parse "x": invalid URL escape "%zz"`). */
export function parseGoUrl(raw: string): GoUrl {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw parseError("parse", raw, "net/url: invalid control character in URL");
  }
  let rest = raw;
  let rawFragment: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    rawFragment = rest.slice(hash + 1);
    unescapePath(rawFragment, raw); // validates the escapes, as Go's setFragment does
    rest = rest.slice(0, hash);
  }
  const u: GoUrl = {
    scheme: "",
    userinfo: undefined,
    host: "",
    path: "",
    rawPath: "",
    rawQuery: undefined,
    rawFragment,
    opaque: "",
  };
  if (rest === "*") {
    u.path = "*";
    return u;
  }
  const s = getScheme(rest);
  u.scheme = s.scheme.toLowerCase();
  rest = s.rest;
  const q = rest.indexOf("?");
  if (q >= 0) {
    u.rawQuery = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (!rest.startsWith("/")) {
    if (u.scheme !== "") {
      u.opaque = rest;
      return u;
    }
    const colon = rest.indexOf(":");
    const slash = rest.indexOf("/");
    if (colon >= 0 && (slash < 0 || colon < slash))
      throw parseError("parse", raw, "first path segment in URL cannot contain colon");
  }
  if ((u.scheme !== "" || !rest.startsWith("///")) && rest.startsWith("//")) {
    const afterSlashes = rest.slice(2);
    const end = afterSlashes.indexOf("/");
    const authority = end < 0 ? afterSlashes : afterSlashes.slice(0, end);
    rest = end < 0 ? "" : afterSlashes.slice(end);
    const at = authority.lastIndexOf("@");
    let host = authority;
    if (at >= 0) {
      u.userinfo = authority.slice(0, at);
      host = authority.slice(at + 1);
    }
    validHost(host, raw);
    u.host = unescapePath(host, raw);
  }
  u.path = unescapePath(rest, raw);
  u.rawPath = escapeGoPath(u.path) === rest ? "" : rest;
  return u;
}

/** Go's URL.String. */
export function formatGoUrl(u: GoUrl): string {
  let out = "";
  if (u.scheme !== "") out += `${u.scheme}:`;
  if (u.opaque !== "") out += u.opaque;
  else {
    if (u.scheme !== "" || u.host !== "" || u.userinfo !== undefined) {
      if (u.host !== "" || u.path !== "" || u.userinfo !== undefined) out += "//";
      if (u.userinfo !== undefined) out += `${u.userinfo}@`;
      out += u.host;
    }
    const p = escapedPath(u);
    if (p !== "" && p[0] !== "/" && u.host !== "") out += "/";
    if (out === "") {
      // A first segment with a colon would be read as a scheme: "./" protects it.
      const slash = p.indexOf("/");
      const colon = p.indexOf(":");
      if (colon >= 0 && (slash < 0 || colon < slash)) out += "./";
    }
    out += p;
  }
  if (u.rawQuery !== undefined) out += `?${u.rawQuery}`;
  if (u.rawFragment !== undefined && u.rawFragment !== "") out += `#${u.rawFragment}`;
  return out;
}

/** Go's path.Clean. */
export function cleanPath(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
      else if (!rooted) parts.push("..");
      continue;
    }
    parts.push(seg);
  }
  const joined = parts.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** Go's path.Join: the non-empty elements joined with "/" and cleaned; "" when all are empty. */
export function joinPath(...elems: string[]): string {
  const nonEmpty = elems.filter((e) => e !== "");
  if (nonEmpty.length === 0) return "";
  return cleanPath(nonEmpty.join("/"));
}

/** apimachinery's JoinPreservingTrailingSlash: path.Join, then "/" again if the last element had one. */
export function joinPreservingTrailingSlash(...elems: string[]): string {
  const result = joinPath(...elems);
  const last = elems[elems.length - 1] ?? "";
  if (last.endsWith("/") && !result.endsWith("/")) return `${result}/`;
  return result;
}

// ---- request targets, ServeMux cleaning and host headers as net/http sees them (kubectl proxy)

/** Percent-decodes a path as Go does (no "+" handling); undefined for a bad escape. */
export function unescapeGoPath(s: string): string | undefined {
  if (!s.includes("%")) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const ch = s[i] as string;
    if (ch === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    } else {
      const code = s.codePointAt(i) as number;
      for (const b of Buffer.from(String.fromCodePoint(code), "utf8")) bytes.push(b);
      i += code > 0xffff ? 2 : 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** A parsed request target. `path` is decoded, `escapedPath` is Go's URL.EscapedPath(). */
export interface RequestTarget {
  /** Host from an absolute-form target ("GET http://host/x"), else "". */
  host: string;
  path: string;
  escapedPath: string;
  rawQuery: string;
  /** The target ended in a bare "?". */
  forceQuery: boolean;
}

/** Go's url.ParseRequestURI for a server request; undefined when Go would answer 400. */
export function parseRequestTarget(raw: string): RequestTarget | undefined {
  if (raw === "*") return { host: "", path: "*", escapedPath: "*", rawQuery: "", forceQuery: false };
  let rest = raw;
  let rawQuery = "";
  let forceQuery = false;
  const q = rest.indexOf("?");
  if (q >= 0) {
    rawQuery = rest.slice(q + 1);
    forceQuery = rawQuery === "";
    rest = rest.slice(0, q);
  }
  let host = "";
  if (!rest.startsWith("/")) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)(.*)$/.exec(rest);
    if (m === null) return undefined;
    const authority = m[2] as string;
    host = authority.slice(authority.lastIndexOf("@") + 1);
    const decodedHost = unescapeGoPath(host);
    if (decodedHost === undefined) return undefined;
    host = decodedHost;
    rest = m[3] as string;
  }
  const path = unescapeGoPath(rest);
  if (path === undefined) return undefined;
  return { host, path, escapedPath: escapedPathOf(path, rest), rawQuery, forceQuery };
}

/** Go's URL.EscapedPath() for a URL whose Path is `path` and whose RawPath hint is `raw`. */
export function escapedPathOf(path: string, raw: string): string {
  if (raw !== "" && raw !== path && validEncodedPath(raw) && unescapeGoPath(raw) === path) return raw;
  if (path === "*") return "*";
  return escapeGoPath(path);
}

/** net/http's cleanPath: rooted, cleaned, trailing slash kept. */
export function cleanRequestPath(p: string): string {
  if (p === "") return "/";
  const rooted = p.startsWith("/") ? p : `/${p}`;
  let np = cleanPath(rooted);
  if (rooted.endsWith("/") && np !== "/") {
    np = rooted.length === np.length + 1 && rooted.startsWith(np) ? rooted : `${np}/`;
  }
  return np;
}

/** Go's url.URL{Path, RawQuery, ForceQuery}.String() for a rooted path. */
export function urlString(path: string, rawQuery: string, forceQuery = false): string {
  const escaped = escapeGoPath(path);
  return rawQuery !== "" || forceQuery ? `${escaped}?${rawQuery}` : escaped;
}

/** Go's httputil singleJoiningSlash. */
export function singleJoiningSlash(a: string, b: string): string {
  const aslash = a.endsWith("/");
  const bslash = b.startsWith("/");
  if (aslash && bslash) return a + b.slice(1);
  if (!aslash && !bslash) return `${a}/${b}`;
  return a + b;
}

/** Go's net.SplitHostPort; undefined where Go returns an error. */
export function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  const i = hostport.lastIndexOf(":");
  if (i < 0) return undefined;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0) return undefined;
    if (end + 1 === hostport.length) return undefined;
    if (end + 1 !== i) return undefined;
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(":")) return undefined;
  }
  if (hostport.slice(j).includes("[")) return undefined;
  if (hostport.slice(k).includes("]")) return undefined;
  return { host, port: hostport.slice(i + 1) };
}

const VALID_HOST_BYTE = new Set("!$%&'()*+,-.:;=[]_~");

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x2e ||
    c === 0x7e
  );
}

/** httpguts.ValidHostHeader. */
export function validHostHeader(h: string): boolean {
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (isUnreserved(c) && c !== 0x7e) continue;
    if (c >= 0x80 || !VALID_HOST_BYTE.has(h[i] as string)) return false;
  }
  return true;
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&#34;",
  "'": "&#39;",
};

/** Go's htmlEscape as used by http.Redirect. */
export function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

/** Go's hexEscapeNonASCII for Location headers. */
export function hexEscapeNonAscii(s: string): string {
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    out += byte >= 0x80 ? `%${HEX[byte >> 4]}${HEX[byte & 15]}` : String.fromCharCode(byte);
  }
  return out;
}
