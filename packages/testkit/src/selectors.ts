/** Label and field selectors, parsed as the real API server does. */
import { badRequest } from "./status.js";

export type LabelRequirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!" }
  | { key: string; op: ">" | "<"; value: number };

export type LabelSelector = LabelRequirement[];

const KEY_RE = /^([a-z0-9A-Z]([-a-z0-9A-Z.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE_RE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

/** Split on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function checkKey(key: string, raw: string): void {
  if (!KEY_RE.test(key) || key.length > 317)
    throw badRequest(`unable to parse requirement: invalid label key "${key}" in selector "${raw}"`);
}
function checkValue(v: string, raw: string): void {
  if (!VALUE_RE.test(v) || v.length > 63)
    throw badRequest(`unable to parse requirement: invalid label value: "${v}" in selector "${raw}"`);
}

/** Parse a label selector string; throws a 400 ApiError on bad syntax. */
export function parseLabelSelector(raw: string): LabelSelector {
  const reqs: LabelSelector = [];
  if (raw.trim() === "") return reqs;
  for (const partRaw of splitTop(raw)) {
    const part = partRaw.trim();
    if (part === "")
      throw badRequest(`unable to parse requirement: found '', expected: identifier in "${raw}"`);
    const setM = part.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/);
    const notM = part.match(/^!\s*(\S+)$/);
    const eqM = part.match(/^([^=!<>\s]+)\s*(==|=|!=)\s*(\S*)$/);
    const cmpM = part.match(/^([^=!<>\s]+)\s*([<>])\s*(-?\d+)$/);
    if (setM) {
      const m = setM;
      const key = m[1]!;
      checkKey(key, raw);
      const values = m[3]!
        .split(",")
        .map((v) => v.trim())
        .filter((v, _i, arr) => !(v === "" && arr.length === 1));
      for (const v of values) checkValue(v, raw);
      if (values.length === 0)
        throw badRequest(`unable to parse requirement: values must be non-empty in "${raw}"`);
      reqs.push({ key, op: m[2] as "in" | "notin", values });
    } else if (notM) {
      const m = notM;
      checkKey(m[1]!, raw);
      reqs.push({ key: m[1]!, op: "!" });
    } else if (eqM) {
      const m = eqM;
      checkKey(m[1]!, raw);
      checkValue(m[3]!, raw);
      reqs.push({ key: m[1]!, op: m[2] === "!=" ? "!=" : "=", value: m[3]! });
    } else if (cmpM) {
      const m = cmpM;
      checkKey(m[1]!, raw);
      reqs.push({ key: m[1]!, op: m[2] as ">" | "<", value: Number(m[3]) });
    } else if (/^[^=!<>\s()]+$/.test(part)) {
      checkKey(part, raw);
      reqs.push({ key: part, op: "exists" });
    } else {
      throw badRequest(`unable to parse requirement: invalid selector "${raw}"`);
    }
  }
  return reqs;
}

export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of sel) {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        if (v !== r.value) return false;
        break;
      case "!=":
        if (has && v === r.value) return false;
        break;
      case "in":
        if (!has || !r.values.includes(v!)) return false;
        break;
      case "notin":
        if (has && r.values.includes(v!)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!":
        if (has) return false;
        break;
      case ">":
      case "<": {
        if (!has || !/^-?\d+$/.test(v!)) return false;
        const n = Number(v);
        if (r.op === ">" ? !(n > r.value) : !(n < r.value)) return false;
        break;
      }
    }
  }
  return true;
}

/** A Service-style map selector (spec.selector) as requirements. */
export function selectorFromMap(m: Record<string, string>): LabelSelector {
  return Object.entries(m).map(([key, value]) => ({ key, op: "=" as const, value }));
}

export interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

/** Parse a field selector; `allowed` lists supported field labels (others → 400). */
export function parseFieldSelector(
  raw: string,
  allowed: readonly string[],
  kind: string,
): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  if (raw.trim() === "") return out;
  for (const partRaw of raw.split(",")) {
    const part = partRaw.trim();
    const m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${raw}'; can't understand '${part}'`);
    const field = m[1]!;
    if (field !== "metadata.name" && field !== "metadata.namespace" && !allowed.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    void kind;
    out.push({ field, op: m[2] === "!=" ? "!=" : "=", value: m[3]!.trim() });
  }
  return out;
}

function fieldValue(obj: Record<string, unknown>, path: string): string {
  if (path === "source") {
    const src = (obj.source ?? {}) as Record<string, unknown>;
    return String(src.component ?? "");
  }
  let cur: unknown = obj;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object") return "";
    cur = (cur as Record<string, unknown>)[seg];
  }
  if (cur === undefined || cur === null) return "";
  return String(cur);
}

export function matchesFields(reqs: FieldRequirement[], obj: Record<string, unknown>): boolean {
  for (const r of reqs) {
    const v = fieldValue(obj, r.field);
    if (r.op === "=" ? v !== r.value : v === r.value) return false;
  }
  return true;
}
