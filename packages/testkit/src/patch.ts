/** JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge patch. */
import { ApiError } from "./status.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function patchError(message: string): ApiError {
  return new ApiError(422, "Invalid", message);
}

// ---------------------------------------------------------------- JSON merge patch

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v) as Json;
  }
  return out;
}

// ---------------------------------------------------------------- JSON patch

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, "/").replace(/~0/g, "~");
}

function parsePointer(p: unknown): string[] {
  if (typeof p !== "string") throw badPatch("path must be a string");
  if (p === "") return [];
  if (!p.startsWith("/")) throw badPatch(`invalid JSON pointer "${p}"`);
  return p.slice(1).split("/").map(unescapePointer);
}

function badPatch(msg: string): ApiError {
  return new ApiError(
    422,
    "Invalid",
    `the server rejected our request due to an error in our request: ${msg}`,
  );
}

function getAt(doc: Json, path: string[]): Json {
  let cur: Json = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) {
      const i = Number(seg);
      if (!/^\d+$/.test(seg) || i >= cur.length) throw badPatch(`path not found: ${seg}`);
      cur = cur[i]!;
    } else if (isObject(cur)) {
      if (!Object.hasOwn(cur, seg)) throw badPatch(`missing value at "${seg}"`);
      cur = cur[seg]!;
    } else throw badPatch(`cannot traverse into a scalar at "${seg}"`);
  }
  return cur;
}

function parentOf(doc: Json, path: string[]): { parent: Json; key: string } {
  if (path.length === 0) throw badPatch("cannot operate on the document root");
  return { parent: getAt(doc, path.slice(0, -1)), key: path[path.length - 1]! };
}

function addAt(doc: Json, path: string[], value: Json): Json {
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!/^(\d+|-)$/.test(key) || i > parent.length) throw badPatch(`index out of range: ${key}`);
    parent.splice(i, 0, value);
  } else if (isObject(parent)) parent[key] = value;
  else throw badPatch(`cannot add to a scalar at "${key}"`);
  return doc;
}

function removeAt(doc: Json, path: string[]): Json {
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!/^\d+$/.test(key) || i >= parent.length) throw badPatch(`index out of range: ${key}`);
    parent.splice(i, 1);
  } else if (isObject(parent)) {
    if (!Object.hasOwn(parent, key))
      throw badPatch(`unable to remove nonexistent key: ${key}: missing value`);
    delete parent[key];
  } else throw badPatch(`cannot remove from a scalar at "${key}"`);
  return doc;
}

export function applyJsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw new ApiError(400, "BadRequest", "a JSON patch must be an array of operations");
  let doc = clone(target) as Json;
  for (const opRaw of ops) {
    if (!isObject(opRaw)) throw badPatch("each JSON patch operation must be an object");
    const op = opRaw.op;
    const path = parsePointer(opRaw.path);
    switch (op) {
      case "add":
        if (!("value" in opRaw)) throw badPatch("add operation has no value");
        doc = addAt(doc, path, clone(opRaw.value!));
        break;
      case "remove":
        doc = removeAt(doc, path);
        break;
      case "replace":
        if (!("value" in opRaw)) throw badPatch("replace operation has no value");
        getAt(doc, path);
        doc = path.length === 0 ? clone(opRaw.value!) : addAt(removeAt(doc, path), path, clone(opRaw.value!));
        break;
      case "move": {
        const from = parsePointer(opRaw.from);
        const v = clone(getAt(doc, from));
        doc = addAt(removeAt(doc, from), path, v);
        break;
      }
      case "copy": {
        const from = parsePointer(opRaw.from);
        doc = addAt(doc, path, clone(getAt(doc, from)));
        break;
      }
      case "test": {
        const v = getAt(doc, path);
        if (JSON.stringify(v) !== JSON.stringify(opRaw.value))
          throw badPatch(`testing value ${JSON.stringify(opRaw.path)} failed`);
        break;
      }
      default:
        throw badPatch(`unexpected kind of JSON patch operation: ${JSON.stringify(op)}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------- strategic merge patch

/**
 * Patch metadata for lists: key = "Kind" then dotted path from the object root, or "*" for any kind.
 * Value: merge key (for lists of objects merged by key) or "" (lists of scalars merged as sets).
 * Lists not listed are replaced, as for atomic lists in the real schema.
 */
const MERGE_KEYS: Record<string, string> = {
  "*.metadata.finalizers": "",
  "*.metadata.ownerReferences": "uid",
  "Pod.spec.containers": "name",
  "Pod.spec.initContainers": "name",
  "Pod.spec.ephemeralContainers": "name",
  "Pod.spec.containers.ports": "containerPort",
  "Pod.spec.initContainers.ports": "containerPort",
  "Pod.spec.containers.env": "name",
  "Pod.spec.initContainers.env": "name",
  "Pod.spec.containers.volumeMounts": "mountPath",
  "Pod.spec.initContainers.volumeMounts": "mountPath",
  "Pod.spec.volumes": "name",
  "Pod.spec.imagePullSecrets": "name",
  "Pod.spec.hostAliases": "ip",
  "Pod.status.conditions": "type",
  "Pod.status.podIPs": "ip",
  "Pod.status.hostIPs": "ip",
  "Service.spec.ports": "port",
  "Service.status.conditions": "type",
  "Node.status.conditions": "type",
  "Node.status.addresses": "type",
  "Node.spec.podCIDRs": "",
  "Node.status.images": "",
  "Namespace.status.conditions": "type",
};

function mergeKeyFor(kind: string, path: string[]): string | undefined {
  const p = path.join(".");
  return MERGE_KEYS[`${kind}.${p}`] ?? MERGE_KEYS[`*.${p}`];
}

export function applyStrategicMergePatch(target: unknown, patch: unknown, kind: string): unknown {
  if (!isObject(patch))
    throw new ApiError(400, "BadRequest", "a strategic merge patch must be a JSON object");
  return smpObject(isObject(target) ? clone(target) : {}, patch, kind, []);
}

function smpObject(target: JsonObject, patch: JsonObject, kind: string, path: string[]): JsonObject {
  const directive = patch.$patch;
  if (directive === "replace") {
    const out = clone(patch);
    delete out.$patch;
    return out;
  }
  if (directive === "delete") return {};
  if (directive !== undefined && directive !== "merge")
    throw patchError(`unknown patch type: ${JSON.stringify(directive)} in map: ${JSON.stringify(patch)}`);

  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys") continue;
    if (k.startsWith("$setElementOrder/")) continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const field = k.slice("$deleteFromPrimitiveList/".length);
      const cur = target[field];
      if (Array.isArray(cur) && Array.isArray(v)) {
        const drop = new Set(v.map((x) => JSON.stringify(x)));
        target[field] = cur.filter((x) => !drop.has(JSON.stringify(x)));
      }
      continue;
    }
    if (v === null) {
      delete target[k];
      continue;
    }
    const sub = [...path, k];
    if (isObject(v)) {
      target[k] = smpObject(isObject(target[k]) ? (target[k] as JsonObject) : {}, v, kind, sub);
      if (v.$patch === "delete") delete target[k];
    } else if (Array.isArray(v)) {
      const mk = mergeKeyFor(kind, sub);
      const order = patch[`$setElementOrder/${k}`];
      if (mk === undefined) target[k] = clone(v).filter((x) => !(isObject(x) && x.$patch !== undefined));
      else
        target[k] = smpList(Array.isArray(target[k]) ? (target[k] as Json[]) : [], v, mk, kind, sub, order);
    } else target[k] = v;
  }
  if (Array.isArray(retain)) {
    for (const k of Object.keys(target)) if (!retain.includes(k)) delete target[k];
  }
  return target;
}

function smpList(
  target: Json[],
  patch: Json[],
  mergeKey: string,
  kind: string,
  path: string[],
  order: Json | undefined,
): Json[] {
  // A {"$patch": "replace"} element replaces the whole list with the other elements.
  if (patch.some((x) => isObject(x) && x.$patch === "replace")) {
    return clone(patch.filter((x) => !(isObject(x) && x.$patch === "replace")));
  }
  if (mergeKey === "") {
    const out = [...target];
    for (const v of patch) if (!out.some((x) => JSON.stringify(x) === JSON.stringify(v))) out.push(clone(v));
    return sortByOrder(out, order, undefined);
  }
  const out = [...target];
  for (const item of patch) {
    if (!isObject(item)) throw patchError(`the list at ${path.join(".")} must contain objects`);
    const key = item[mergeKey];
    if (key === undefined)
      throw patchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    const idx = out.findIndex((x) => isObject(x) && JSON.stringify(x[mergeKey]) === JSON.stringify(key));
    if (item.$patch === "delete") {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = smpObject(out[idx] as JsonObject, item, kind, path);
    else {
      const fresh = smpObject({}, item, kind, path);
      out.push(fresh);
    }
  }
  return sortByOrder(out, order, mergeKey);
}

function sortByOrder(list: Json[], order: Json | undefined, mergeKey: string | undefined): Json[] {
  if (!Array.isArray(order)) return list;
  const keyOf = (x: Json): string => JSON.stringify(mergeKey !== undefined && isObject(x) ? x[mergeKey] : x);
  const rank = new Map(order.map((o, i) => [keyOf(o), i]));
  return [...list].sort((a, b) => (rank.get(keyOf(a)) ?? 1e9) - (rank.get(keyOf(b)) ?? 1e9));
}
