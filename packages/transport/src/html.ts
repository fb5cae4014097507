/**
 * HTML link rewriting as the API server's proxy does it (apimachinery `proxy/transport.go`,
 * `rewriteHTML`): tokenize, re-serialise every start and self-closing tag (rewriting the URL
 * attributes of the tags in `HTML_URL_ATTRIBUTES`), copy every other token byte for byte.
 *
 * The document is handled as a "binary" (latin1) string so that bytes that are not valid UTF-8
 * survive untouched, as in Go, which works on bytes.
 */

/** Upstream's atomsToAttrs: the tags whose URL attributes are rewritten. */
export const HTML_URL_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  a: ["href"],
  applet: ["codebase"],
  area: ["href"],
  audio: ["src"],
  base: ["href"],
  blockquote: ["cite"],
  body: ["background"],
  button: ["formaction"],
  command: ["icon"],
  del: ["cite"],
  embed: ["src"],
  form: ["action"],
  frame: ["longdesc", "src"],
  head: ["profile"],
  html: ["manifest"],
  iframe: ["longdesc", "src"],
  img: ["longdesc", "src", "usemap"],
  input: ["src", "usemap", "formaction"],
  ins: ["cite"],
  link: ["href"],
  object: ["classid", "codebase", "data", "usemap"],
  q: ["cite"],
  script: ["src"],
  source: ["src"],
  video: ["poster", "src"],
});

/** Elements whose content is raw text to the tokenizer (Go's x/net/html raw tags). */
const RAW_TEXT_TAGS = new Set([
  "iframe",
  "noembed",
  "noframes",
  "noscript",
  "plaintext",
  "script",
  "style",
  "textarea",
  "title",
  "xmp",
]);

const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

/** UTF-8 bytes of a code point, as a latin1 string. */
function utf8Binary(codePoint: number): string {
  return Buffer.from(String.fromCodePoint(codePoint), "utf8").toString("latin1");
}

/** Decodes the character references Go's tokenizer decodes in attribute values (the common ones). */
function unescapeAttr(value: string): string {
  if (!value.includes("&")) return value;
  return value.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);?/g, (whole, ref: string) => {
    if (ref.startsWith("#")) {
      const n =
        ref[1] === "x" || ref[1] === "X"
          ? Number.parseInt(ref.slice(2), 16)
          : Number.parseInt(ref.slice(1), 10);
      if (!Number.isFinite(n) || n <= 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff))
        return utf8Binary(0xfffd);
      return utf8Binary(n);
    }
    const named = NAMED_ENTITIES[ref];
    if (named === undefined || !whole.endsWith(";")) return whole;
    return named === "\u00a0" ? utf8Binary(0xa0) : named;
  });
}

/** Go's html escape for token serialisation: & ' < > " and CR. */
function escapeAttr(value: string): string {
  return value.replace(/[&'<>"\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "'":
        return "&#39;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&#34;";
      default:
        return "&#13;";
    }
  });
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 12 || c === 13;
}

function isLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

interface StartTag {
  name: string;
  attrs: { key: string; value: string }[];
  selfClosing: boolean;
  /** Index just after the closing ">". */
  end: number;
}

/** Reads a start tag at `s[i] === "<"` (next char a letter); undefined when it is cut off by EOF. */
function readStartTag(s: string, i: number): StartTag | undefined {
  let j = i + 1;
  const nameStart = j;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (isSpace(c) || c === 47 || c === 62) break;
    j++;
  }
  const name = s.slice(nameStart, j).toLowerCase();
  const attrs: { key: string; value: string }[] = [];
  for (;;) {
    while (
      j < s.length &&
      (isSpace(s.charCodeAt(j)) || (s.charCodeAt(j) === 47 && s.charCodeAt(j + 1) !== 62))
    )
      j++;
    if (j >= s.length) return undefined;
    const c = s.charCodeAt(j);
    if (c === 62) return { name, attrs, selfClosing: false, end: j + 1 };
    if (c === 47) {
      // "/>"
      return { name, attrs, selfClosing: true, end: j + 2 };
    }
    // attribute name: the first character may be "=" (Go keeps it in the name)
    const keyStart = j;
    j++;
    while (j < s.length) {
      const d = s.charCodeAt(j);
      if (isSpace(d) || d === 47 || d === 61 || d === 62) break;
      j++;
    }
    const key = s.slice(keyStart, j).toLowerCase();
    let k = j;
    while (k < s.length && isSpace(s.charCodeAt(k))) k++;
    let value = "";
    if (s.charCodeAt(k) === 61) {
      k++;
      while (k < s.length && isSpace(s.charCodeAt(k))) k++;
      const q = s.charCodeAt(k);
      if (q === 34 || q === 39) {
        const close = s.indexOf(s[k] as string, k + 1);
        if (close < 0) return undefined;
        value = s.slice(k + 1, close);
        j = close + 1;
      } else {
        const vStart = k;
        while (k < s.length && !isSpace(s.charCodeAt(k)) && s.charCodeAt(k) !== 62) k++;
        value = s.slice(vStart, k);
        j = k;
      }
    }
    attrs.push({ key, value: unescapeAttr(value) });
  }
}

/** Go's Token.String for a start or self-closing tag. */
function serializeTag(tag: StartTag): string {
  let out = `<${tag.name}`;
  for (const a of tag.attrs) out += ` ${a.key}="${escapeAttr(a.value)}"`;
  return out + (tag.selfClosing ? "/>" : ">");
}

/** Finds the end of raw text for `tag` (the index of "</tag" case-insensitively), or the end of input. */
function rawTextEnd(s: string, from: number, tag: string): number {
  if (tag === "plaintext") return s.length;
  const lower = s.toLowerCase();
  let at = from;
  for (;;) {
    const k = lower.indexOf(`</${tag}`, at);
    if (k < 0) return s.length;
    const after = s.charCodeAt(k + 2 + tag.length);
    if (Number.isNaN(after) || isSpace(after) || after === 47 || after === 62) return k;
    at = k + 1;
  }
}

/**
 * Rewrites the URL attributes of an HTML document (a latin1 "binary" string of its bytes) with
 * `rewrite(value)`, which returns the new value or undefined to keep it. Returns the new document.
 */
export function rewriteHtml(doc: string, rewrite: (url: string) => string | undefined): string {
  let out = "";
  let i = 0;
  let textStart = 0;
  while (i < doc.length) {
    const lt = doc.indexOf("<", i);
    if (lt < 0) break;
    const next = doc.charCodeAt(lt + 1);
    if (next === 33) {
      // <!-- comment --> or <!doctype ...> / bogus comment: copied as it is
      const end = doc.startsWith("<!--", lt) ? doc.indexOf("-->", lt + 4) : doc.indexOf(">", lt + 2);
      i = end < 0 ? doc.length : end + (doc.startsWith("<!--", lt) ? 3 : 1);
      continue;
    }
    if (next === 63 || (next === 47 && isLetter(doc.charCodeAt(lt + 2)))) {
      // <?bogus> and end tags: copied as they are
      const end = doc.indexOf(">", lt + 2);
      i = end < 0 ? doc.length : end + 1;
      continue;
    }
    if (!isLetter(next)) {
      i = lt + 1;
      continue;
    }
    const tag = readStartTag(doc, lt);
    if (tag === undefined) break; // cut off: the rest is copied as it is
    const urlAttrs = HTML_URL_ATTRIBUTES[tag.name];
    if (urlAttrs !== undefined) {
      for (const a of tag.attrs) {
        if (!urlAttrs.includes(a.key)) continue;
        const replaced = rewrite(a.value);
        if (replaced !== undefined) a.value = replaced;
      }
    }
    out += doc.slice(textStart, lt) + serializeTag(tag);
    textStart = tag.end;
    i = !tag.selfClosing && RAW_TEXT_TAGS.has(tag.name) ? rawTextEnd(doc, tag.end, tag.name) : tag.end;
  }
  return out + doc.slice(textStart);
}
