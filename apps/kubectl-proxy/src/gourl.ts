/**
 * The parts of Go's net/url and net/http that decide how kubectl proxy sees a request target:
 * percent-decoding, EscapedPath, path cleaning (ServeMux's 301s) and net.SplitHostPort.
 */

const HEX = "0123456789ABCDEF";

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

/** Go's shouldEscape(c, encodePath). */
function shouldEscapePath(c: number): boolean {
  if (isUnreserved(c)) return false;
  // $ & + , / : ; = @
  return !(
    c === 0x24 ||
    c === 0x26 ||
    c === 0x2b ||
    c === 0x2c ||
    c === 0x2f ||
    c === 0x3a ||
    c === 0x3b ||
    c === 0x3d ||
    c === 0x40
  );
}

/** Go's url.PathEscape-like escape(s, encodePath) on UTF-8 bytes. */
export function escapePath(path: string): string {
  let needs = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x80 || shouldEscapePath(c)) {
      needs = true;
      break;
    }
  }
  if (!needs) return path;
  let out = "";
  for (const byte of Buffer.from(path, "utf8")) {
    if (byte < 0x80 && !shouldEscapePath(byte)) out += String.fromCharCode(byte);
    else out += `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** Go's validEncoded(s, encodePath). */
function validEncodedPath(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // ! $ & ' ( ) * + , ; = : @ [ ] %
    if ("!$&'()*+,;=:@[]%".includes(s[i] as string)) continue;
    if (c >= 0x80 || shouldEscapePath(c)) return false;
  }
  return true;
}

/** Percent-decodes a path as Go does (no "+" handling); undefined for a bad escape. */
export function unescapePath(s: string): string | undefined {
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
    const decodedHost = unescapePath(host);
    if (decodedHost === undefined) return undefined;
    host = decodedHost;
    rest = m[3] as string;
  }
  const path = unescapePath(rest);
  if (path === undefined) return undefined;
  return { host, path, escapedPath: escapedPathOf(path, rest), rawQuery, forceQuery };
}

/** Go's URL.EscapedPath() for a URL whose Path is `path` and whose RawPath hint is `raw`. */
export function escapedPathOf(path: string, raw: string): string {
  if (raw !== "" && raw !== path && validEncodedPath(raw) && unescapePath(raw) === path) return raw;
  if (path === "*") return "*";
  return escapePath(path);
}

/** Go's path.Clean. */
export function cleanPosix(p: string): string {
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

/** net/http's cleanPath: rooted, cleaned, trailing slash kept. */
export function cleanPath(p: string): string {
  if (p === "") return "/";
  const rooted = p.startsWith("/") ? p : `/${p}`;
  let np = cleanPosix(rooted);
  if (rooted.endsWith("/") && np !== "/") {
    np = rooted.length === np.length + 1 && rooted.startsWith(np) ? rooted : `${np}/`;
  }
  return np;
}

/** Go's url.URL{Path, RawQuery, ForceQuery}.String() for a rooted path. */
export function urlString(path: string, rawQuery: string, forceQuery = false): string {
  const escaped = escapePath(path);
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
