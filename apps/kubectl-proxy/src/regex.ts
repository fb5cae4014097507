import { KproxyError } from "@kproxy/core";

/**
 * kubectl's regex flags are Go RE2 patterns. They are translated to JavaScript RegExp with the
 * `u` flag (so `.` and classes work on code points, as RE2 works on runes) and matched unanchored
 * and case-sensitively, like Go's MatchString:
 *
 * - RE2-only syntax is translated: `(?P<name>…)`, inline flags `(?i)` `(?s)` `(?m)` (also
 *   `(?i:…)`), `\A`, `\z`, `\Q…\E`, `[[:alpha:]]`-style classes, `\pL`, `\p{Greek}`, `\x{…}`, octal
 *   `\12`; `\s` is RE2's ASCII `[\t\n\f\r ]` and `.` never matches `\n` without `(?s)`.
 * - Syntax RE2 rejects is rejected here too, even where JavaScript would accept it: lookaround,
 *   backreferences, `(?U)`, `\C`, nested repetition `a**`.
 * A pattern that does not compile throws KproxyError("REGEX_INVALID") with kubectl's message,
 * `Error compiling re: error parsing regexp: …`, and details.exitCode 255.
 */
export function compileGoRegexp(pattern: string): RegExp {
  const js = translate(pattern);
  try {
    return new RegExp(js, "u");
  } catch (err) {
    throw regexError(goMessageFor(pattern, err instanceof Error ? err.message : String(err)));
  }
}

/** kubectl's MakeRegexpArray: split on every "," (no escaping); "" is an empty list. */
export function makeRegexpArray(flag: string): RegExp[] {
  if (flag === "") return [];
  return flag.split(",").map(compileGoRegexp);
}

/** True when any regex matches `text` (an unanchored search). */
export function matchesAny(text: string, list: readonly RegExp[]): boolean {
  for (const re of list) if (re.test(text)) return true;
  return false;
}

function regexError(goMessage: string): KproxyError {
  return new KproxyError("REGEX_INVALID", `Error compiling re: error parsing regexp: ${goMessage}`, {
    details: { exitCode: 255 },
  });
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

function hexEscape(codePoint: number): string {
  return `\\u{${codePoint.toString(16)}}`;
}

function isAsciiPunct(ch: string): boolean {
  return /^[!-/:-@[-`{-~]$/.test(ch);
}

/** Translates RE2 syntax to JavaScript (u flag). Throws REGEX_INVALID for what RE2 rejects. */
function translate(p: string): string {
  let out = "";
  let inClass = false;
  let classStart = false;
  // One entry per open group: how many extra ")" to emit when it closes (for inline flags).
  const groups: number[] = [];
  let pendingCloses = 0; // inline-flag groups opened at top level
  let dotAll = false;
  const dotAllStack: boolean[] = [];
  let i = 0;
  const n = p.length;
  while (i < n) {
    const ch = p[i] as string;
    if (ch === "\\") {
      const next = p[i + 1];
      if (next === undefined) throw regexError("trailing backslash at end of expression: ``");
      if (next === "Q") {
        const end = p.indexOf("\\E", i + 2);
        const literal = end < 0 ? p.slice(i + 2) : p.slice(i + 2, end);
        for (const c of literal) out += hexEscape(c.codePointAt(0) as number);
        i = end < 0 ? n : end + 2;
        continue;
      }
      if (!inClass && next === "A") {
        out += "(?<![\\s\\S])";
        i += 2;
        continue;
      }
      if (!inClass && next === "z") {
        out += "(?![\\s\\S])";
        i += 2;
        continue;
      }
      if (next === "s") {
        out += inClass ? "\\t\\n\\f\\r " : "[\\t\\n\\f\\r ]";
        i += 2;
        continue;
      }
      if (next === "S" && !inClass) {
        out += "[^\\t\\n\\f\\r ]";
        i += 2;
        continue;
      }
      if (next === "p" || next === "P") {
        let name: string;
        let len: number;
        if (p[i + 2] === "{") {
          const end = p.indexOf("}", i + 3);
          if (end < 0) throw regexError(`invalid character class range: \`${p.slice(i)}\``);
          name = p.slice(i + 3, end);
          len = end + 1 - i;
        } else {
          name = p[i + 2] ?? "";
          len = 3;
        }
        let negate = next === "P";
        if (name.startsWith("^")) {
          negate = !negate;
          name = name.slice(1);
        }
        const prop = name === "Any" ? "Any" : name.length <= 2 ? name : `Script=${name}`;
        out += prop === "Any" ? (negate ? "[^\\s\\S]" : "[\\s\\S]") : `\\${negate ? "P" : "p"}{${prop}}`;
        i += len;
        continue;
      }
      if (next === "x" && p[i + 2] === "{") {
        const end = p.indexOf("}", i + 3);
        const hex = end < 0 ? "" : p.slice(i + 3, end);
        if (!/^[0-9A-Fa-f]{1,6}$/.test(hex) || Number.parseInt(hex, 16) > 0x10ffff) {
          throw regexError(`invalid escape sequence: \`${p.slice(i, end < 0 ? n : end + 1)}\``);
        }
        out += hexEscape(Number.parseInt(hex, 16));
        i = end + 1;
        continue;
      }
      if (next >= "0" && next <= "7") {
        const digits = /^[0-7]{1,3}/.exec(p.slice(i + 1))?.[0] ?? next;
        if (next !== "0" && digits.length === 1) throw regexError(`invalid escape sequence: \`\\${next}\``);
        out += hexEscape(Number.parseInt(digits, 8));
        i += 1 + digits.length;
        continue;
      }
      if (next === "a") {
        out += "\\x07";
        i += 2;
        continue;
      }
      if (/^[0-9A-Za-z]$/.test(next) && !"fnrtvdDwWbB".includes(next)) {
        throw regexError(`invalid escape sequence: \`\\${next}\``);
      }
      if (isAsciiPunct(next)) {
        out += hexEscape(next.charCodeAt(0));
        i += 2;
        continue;
      }
      out += ch + next;
      i += 2;
      continue;
    }
    if (inClass) {
      if (ch === "[" && p[i + 1] === ":") {
        const end = p.indexOf(":]", i + 2);
        if (end > 0) {
          let name = p.slice(i + 2, end);
          const negated = name.startsWith("^");
          if (negated) name = name.slice(1);
          const cls = POSIX_CLASSES[name];
          if (cls === undefined)
            throw regexError(`invalid character class range: \`${p.slice(i, end + 2)}\``);
          if (negated) throw regexError(`invalid character class range: \`${p.slice(i, end + 2)}\``);
          out += cls;
          i = end + 2;
          classStart = false;
          continue;
        }
      }
      if (ch === "]" && !classStart) inClass = false;
      // In RE2 a "]" first in a class is a literal.
      out += ch === "]" && classStart ? "\\]" : ch === "[" ? "\\[" : ch;
      classStart = classStart && ch === "^";
      i++;
      continue;
    }
    if (ch === "[") {
      inClass = true;
      classStart = true;
      out += ch;
      i++;
      if (p[i] === "^") {
        out += "^";
        i++;
      }
      continue;
    }
    if (ch === "{") {
      const repeat = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
      if (repeat === null) {
        out += "\\x7b";
        i++;
        continue;
      }
      const min = Number(repeat[1]);
      const max = repeat[3] === undefined || repeat[3] === "" ? min : Number(repeat[3]);
      if (min > 1000 || max > 1000 || (repeat[3] !== undefined && repeat[3] !== "" && max < min)) {
        throw regexError(`invalid repeat count: \`${repeat[0]}\``);
      }
      if (out === "" || /[(|]$/.test(out))
        throw regexError(`missing argument to repetition operator: \`${repeat[0]}\``);
      out += repeat[0];
      i += repeat[0].length;
      continue;
    }
    if (ch === "}" || ch === "]") {
      out += ch === "}" ? "\\x7d" : "\\x5d";
      i++;
      continue;
    }
    if (ch === ".") {
      out += dotAll ? "[\\s\\S]" : "[^\\n]";
      i++;
      continue;
    }
    if (ch === "(") {
      if (p[i + 1] === "?") {
        const rest = p.slice(i + 2);
        if (rest.startsWith("P<")) {
          out += "(?<";
          i += 4;
          groups.push(0);
          dotAllStack.push(dotAll);
          continue;
        }
        if (rest.startsWith("=") || rest.startsWith("!") || rest.startsWith("<=") || rest.startsWith("<!")) {
          const len = rest.startsWith("<") ? 4 : 3;
          throw regexError(`invalid or unsupported Perl syntax: \`${p.slice(i, i + len)}\``);
        }
        if (rest.startsWith("<") || rest.startsWith(":")) {
          out += rest.startsWith(":") ? "(?:" : "(?<";
          i += 3;
          groups.push(0);
          dotAllStack.push(dotAll);
          continue;
        }
        const flags = /^([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
        if (flags === null || (flags[1] === "" && (flags[2] ?? "") === "")) {
          throw regexError(`invalid or unsupported Perl syntax: \`${p.slice(i, i + 3)}\``);
        }
        const on = flags[1] ?? "";
        const off = flags[2] ?? "";
        if (on.includes("U") || off.includes("U")) {
          throw regexError(`invalid or unsupported Perl syntax: \`${p.slice(i, i + 2 + flags[0].length)}\``);
        }
        const jsOn = on.replace("s", "");
        const jsOff = off.replace("s", "");
        const modifier = jsOn === "" && jsOff === "" ? "?:" : `?${jsOn}${jsOff === "" ? "" : `-${jsOff}`}:`;
        if (flags[3] === ":") {
          dotAllStack.push(dotAll);
          if (on.includes("s")) dotAll = true;
          if (off.includes("s")) dotAll = false;
          out += `(${modifier}`;
          groups.push(0);
        } else {
          // (?flags) applies to the rest of the enclosing group.
          if (on.includes("s")) dotAll = true;
          if (off.includes("s")) dotAll = false;
          out += `(${modifier}`;
          if (groups.length > 0) groups[groups.length - 1] = (groups[groups.length - 1] as number) + 1;
          else pendingCloses++;
        }
        i += 2 + flags[0].length;
        continue;
      }
      groups.push(0);
      dotAllStack.push(dotAll);
      out += "(";
      i++;
      continue;
    }
    if (ch === ")") {
      if (groups.length === 0) throw regexError(`unexpected ): \`${p}\``);
      const extra = groups.pop() as number;
      dotAll = dotAllStack.pop() ?? false;
      out += ")".repeat(extra + 1);
      i++;
      continue;
    }
    if ((ch === "*" || ch === "+" || ch === "?") && /[*+]$/.test(out) && !/\\[*+]$/.test(out)) {
      if (ch !== "?") throw regexError(`invalid nested repetition operator: \`${p.slice(i - 1, i + 1)}\``);
    }
    out += ch;
    i++;
  }
  if (inClass) {
    const start = p.lastIndexOf("[");
    throw regexError(`missing closing ]: \`${p.slice(start)}\``);
  }
  if (groups.length > 0) throw regexError(`missing closing ): \`${p}\``);
  return out + ")".repeat(pendingCloses);
}

function goMessageFor(pattern: string, jsMessage: string): string {
  if (/Nothing to repeat/i.test(jsMessage)) {
    const m = /(?:^|[^\\])([*+?{])/.exec(pattern);
    return `missing argument to repetition operator: \`${m?.[1] ?? pattern}\``;
  }
  if (/Unterminated character class/i.test(jsMessage)) return `missing closing ]: \`${pattern}\``;
  if (/Unterminated group/i.test(jsMessage)) return `missing closing ): \`${pattern}\``;
  if (/Unmatched '\)'/i.test(jsMessage)) return `unexpected ): \`${pattern}\``;
  if (/Range out of order|Invalid character class/i.test(jsMessage)) {
    return `invalid character class range: \`${pattern}\``;
  }
  if (/numbers out of order/i.test(jsMessage)) return `invalid repeat count: \`${pattern}\``;
  if (/Invalid escape|Invalid Unicode escape|Invalid property name/i.test(jsMessage)) {
    return `invalid escape sequence: \`${pattern}\``;
  }
  const detail = jsMessage.replace(/^Invalid regular expression: \/.*\/u?: /, "");
  return `${detail.charAt(0).toLowerCase()}${detail.slice(1)}: \`${pattern}\``;
}
