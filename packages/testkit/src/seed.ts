/** Seed files: objects to create at start-up, as JSON or (multi-document) YAML. */
import { parseAllDocuments } from "yaml";
import type { KObject } from "./store.js";

/** Objects from a seed file: a JSON/YAML object, array, List, or multi-document YAML. */
export function parseSeed(text: string, fileName: string): KObject[] {
  let docs: unknown[];
  if (fileName.endsWith(".json")) docs = [JSON.parse(text)];
  else {
    const parsed = parseAllDocuments(text);
    const all = Array.isArray(parsed) ? parsed : [parsed];
    docs = [];
    for (const d of all) {
      if (d.errors.length > 0) throw new Error(d.errors[0]!.message);
      const v = d.toJS();
      if (v !== null && v !== undefined) docs.push(v);
    }
  }
  const out: KObject[] = [];
  const add = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) add(x);
      return;
    }
    if (typeof v !== "object" || v === null) throw new Error("seed entries must be objects");
    const o = v as { kind?: unknown; items?: unknown };
    if (typeof o.kind === "string" && o.kind.endsWith("List") && Array.isArray(o.items)) {
      for (const x of o.items) add(x);
      return;
    }
    const k = v as KObject;
    if (typeof k.apiVersion !== "string" || typeof k.kind !== "string")
      throw new Error("seed objects need apiVersion and kind");
    out.push(k);
  };
  for (const d of docs) add(d);
  return out;
}
