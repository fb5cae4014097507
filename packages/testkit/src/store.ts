/**
 * The object store: objects by resource, a single global resourceVersion counter (like etcd),
 * a bounded event history for watches, compaction, and per-kind hooks (defaulting, allocation,
 * validation).
 */
import { randomUUID } from "node:crypto";
import { apiVersionOf, RESOURCES, type ResourceInfo } from "./resources.js";
import { type FieldRequirement, type LabelSelector, matchesFields, matchesLabels } from "./selectors.js";
import { ApiError, alreadyExists, conflict, invalid, notFound } from "./status.js";

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  [k: string]: unknown;
}

/** A Kubernetes object as stored: apiVersion, kind, metadata and anything else. */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  rv: number;
  type: EventType;
  resource: ResourceInfo;
  object: KObject;
  /** The object before this change (MODIFIED and DELETED). */
  previous: KObject | undefined;
}

export interface WriteOptions {
  dryRun?: boolean;
  /** "status" writes only .status; undefined writes everything but .status (for kinds with status). */
  subresource?: "status";
}

export interface DeleteOptions {
  dryRun?: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: "Orphan" | "Background" | "Foreground";
}

/** Per-kind behaviour: defaulting, validation, allocation. Throw ApiError to reject. */
export interface KindHooks {
  prepareCreate?(obj: KObject, ctx: HookContext): void;
  prepareUpdate?(obj: KObject, old: KObject, ctx: HookContext): void;
  /** Undo what prepareCreate/prepareUpdate allocated (dry run, failed write, deletion). */
  release?(obj: KObject, kept: KObject | undefined): void;
}

export interface HookContext {
  store: Store;
  dryRun: boolean;
}

export interface WatchFilter {
  namespace: string | undefined;
  labels: LabelSelector;
  fields: FieldRequirement[];
}

export interface WatchEvent {
  type: EventType | "BOOKMARK" | "ERROR";
  object: KObject | Record<string, unknown>;
}

export interface WatchHandle {
  stop(): void;
}

export interface StoreOptions {
  now?: () => number;
  /** Events kept for watches before the oldest are compacted away. Default 10000. */
  historyLimit?: number;
}

function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

function validateName(r: ResourceInfo, name: string): string | undefined {
  if (r.kind === "Service") {
    if (name.length > 63 || !DNS1035_LABEL.test(name))
      return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
  } else if (r.kind === "Namespace") {
    if (name.length > 63 || !DNS1123_LABEL.test(name))
      return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
  } else if (r.kind === "Event" || r.kind === "Lease" || r.kind === "ConfigMap") {
    if (name.length > 253 || !/^[-._a-zA-Z0-9]+$/.test(name) || name === "." || name === "..")
      return "a valid name may only contain letters, digits, '-', '_' and '.'";
  } else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

function randomSuffix(): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  let s = "";
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

/** Put apiVersion, kind, metadata first, like the real server's output. */
function normalize(obj: KObject): KObject {
  const { apiVersion, kind, metadata, ...rest } = obj;
  const { managedFields: _mf, selfLink: _sl, ...meta } = metadata ?? {};
  return { apiVersion, kind, metadata: meta, ...rest };
}

/** Kinds whose metadata.generation the real server maintains. */
const GENERATION_KINDS = new Set(["EndpointSlice"]);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class Store {
  private rv = 0;
  private compactedRv = 0;
  private history: StoreEvent[] = [];
  private readonly objects = new Map<ResourceInfo, Map<string, KObject>>();
  private readonly watchers = new Set<{
    resource: ResourceInfo;
    filter: WatchFilter;
    send: (ev: WatchEvent) => void;
  }>();
  private readonly listeners: ((ev: StoreEvent) => void)[] = [];
  private readonly hooks = new Map<string, KindHooks>();
  private readonly now: () => number;
  private readonly historyLimit: number;

  constructor(opts: StoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.historyLimit = opts.historyLimit ?? 10000;
    for (const r of RESOURCES) this.objects.set(r, new Map());
  }

  setHooks(kind: string, hooks: KindHooks): void {
    this.hooks.set(kind, hooks);
  }

  /** Called synchronously after every committed change (controllers use it). */
  onChange(fn: (ev: StoreEvent) => void): void {
    this.listeners.push(fn);
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get oldestWatchableResourceVersion(): number {
    return this.compactedRv;
  }

  timestamp(): string {
    return formatTime(this.now());
  }

  private key(ns: string | undefined, name: string): string {
    return `${ns ?? ""}/${name}`;
  }

  private bucket(r: ResourceInfo): Map<string, KObject> {
    return this.objects.get(r)!;
  }

  private checkNamespace(r: ResourceInfo, ns: string | undefined, forCreate: boolean): void {
    if (!r.namespaced) return;
    if (!ns) throw new ApiError(400, "BadRequest", "the namespace of the object is required");
    const nsRes = RESOURCES.find((x) => x.kind === "Namespace")!;
    const nsObj = this.bucket(nsRes).get(this.key(undefined, ns));
    if (!nsObj) throw notFound({ group: "", resource: "namespaces" }, ns);
    if (forCreate && nsObj.metadata.deletionTimestamp)
      throw new ApiError(
        403,
        "Forbidden",
        `${r.resource} "${""}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
      );
  }

  get(r: ResourceInfo, ns: string | undefined, name: string): KObject {
    const o = this.bucket(r).get(this.key(r.namespaced ? ns : undefined, name));
    if (!o) throw notFound(r, name);
    return structuredClone(o);
  }

  tryGet(r: ResourceInfo, ns: string | undefined, name: string): KObject | undefined {
    const o = this.bucket(r).get(this.key(r.namespaced ? ns : undefined, name));
    return o ? structuredClone(o) : undefined;
  }

  list(r: ResourceInfo, filter: Partial<WatchFilter> = {}): { items: KObject[]; resourceVersion: string } {
    const items: KObject[] = [];
    for (const o of this.bucket(r).values()) {
      if (
        this.matches(r, o, {
          namespace: filter.namespace,
          labels: filter.labels ?? [],
          fields: filter.fields ?? [],
        })
      )
        items.push(structuredClone(o));
    }
    items.sort((a, b) =>
      this.key(a.metadata.namespace, a.metadata.name ?? "").localeCompare(
        this.key(b.metadata.namespace, b.metadata.name ?? ""),
      ),
    );
    return { items, resourceVersion: String(this.rv) };
  }

  private matches(r: ResourceInfo, o: KObject, f: WatchFilter): boolean {
    if (r.namespaced && f.namespace && o.metadata.namespace !== f.namespace) return false;
    if (!matchesLabels(f.labels, o.metadata.labels)) return false;
    return matchesFields(f.fields, o as unknown as Record<string, unknown>);
  }

  private commit(type: EventType, r: ResourceInfo, obj: KObject, previous: KObject | undefined): StoreEvent {
    const k = this.key(r.namespaced ? obj.metadata.namespace : undefined, obj.metadata.name!);
    if (type === "DELETED") {
      this.bucket(r).delete(k);
      // The DELETED event carries the final state with a fresh resourceVersion.
      this.rv++;
      obj.metadata.resourceVersion = String(this.rv);
    } else {
      this.rv++;
      obj.metadata.resourceVersion = String(this.rv);
      this.bucket(r).set(k, obj);
    }
    const ev: StoreEvent = { rv: this.rv, type, resource: r, object: obj, previous };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRv = dropped[dropped.length - 1]!.rv;
    }
    for (const w of [...this.watchers]) {
      if (w.resource !== r) continue;
      const out = this.translate(ev, w.filter);
      if (out) w.send(out);
    }
    for (const l of this.listeners) l(ev);
    return ev;
  }

  /** The event a watcher with this filter sees for a change, if any. */
  private translate(ev: StoreEvent, f: WatchFilter): WatchEvent | undefined {
    const now = this.matches(ev.resource, ev.object, f);
    const before = ev.previous !== undefined && this.matches(ev.resource, ev.previous, f);
    if (ev.type === "ADDED") return now ? { type: "ADDED", object: structuredClone(ev.object) } : undefined;
    if (ev.type === "DELETED")
      return now || before ? { type: "DELETED", object: structuredClone(ev.object) } : undefined;
    if (now && before) return { type: "MODIFIED", object: structuredClone(ev.object) };
    if (now) return { type: "ADDED", object: structuredClone(ev.object) };
    if (before) return { type: "DELETED", object: structuredClone(ev.object) };
    return undefined;
  }

  create(r: ResourceInfo, ns: string | undefined, input: KObject, opts: WriteOptions = {}): KObject {
    const obj = normalize(structuredClone(input));
    if (!isObj(obj.metadata)) obj.metadata = {};
    const meta = obj.metadata;
    if (r.namespaced) {
      if (meta.namespace && ns && meta.namespace !== ns)
        throw new ApiError(
          400,
          "BadRequest",
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      meta.namespace = ns ?? meta.namespace;
    } else delete meta.namespace;
    this.checkNamespace(r, meta.namespace, true);
    if (!meta.name) {
      if (meta.generateName) {
        for (let i = 0; i < 10; i++) {
          const candidate = `${meta.generateName}${randomSuffix()}`;
          if (!this.bucket(r).has(this.key(meta.namespace, candidate))) {
            meta.name = candidate;
            break;
          }
        }
      } else {
        throw invalid(r.kind, r.group, "", [
          {
            field: "metadata.name",
            message: "Required value: name or generateName is required",
            reason: "FieldValueRequired",
          },
        ]);
      }
    }
    const name = meta.name!;
    const bad = validateName(r, name);
    if (bad)
      throw invalid(r.kind, r.group, name, [
        { field: "metadata.name", message: `Invalid value: "${name}": ${bad}` },
      ]);
    if (this.bucket(r).has(this.key(meta.namespace, name))) throw alreadyExists(r, name);
    meta.uid = randomUUID();
    meta.creationTimestamp = this.timestamp();
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.resourceVersion;
    if (GENERATION_KINDS.has(r.kind)) meta.generation = 1;
    else delete meta.generation;
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    const hooks = this.hooks.get(r.kind);
    hooks?.prepareCreate?.(obj, { store: this, dryRun: opts.dryRun === true });
    if (opts.dryRun) {
      hooks?.release?.(obj, undefined);
      return structuredClone(obj);
    }
    this.commit("ADDED", r, obj, undefined);
    return structuredClone(obj);
  }

  /** PUT semantics: replace, with optimistic concurrency on metadata.resourceVersion when set. */
  update(
    r: ResourceInfo,
    ns: string | undefined,
    name: string,
    input: KObject,
    opts: WriteOptions = {},
  ): KObject {
    const obj = normalize(structuredClone(input));
    if (!isObj(obj.metadata)) obj.metadata = {};
    const k = this.key(r.namespaced ? ns : undefined, name);
    const current = this.bucket(r).get(k);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name)
      throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
    if (r.namespaced && obj.metadata.namespace && obj.metadata.namespace !== ns)
      throw new ApiError(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    if (!current) throw notFound(r, name);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== current.metadata.resourceVersion)
      throw conflict(
        r,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    return this.replace(r, current, obj, opts);
  }

  private replace(r: ResourceInfo, current: KObject, next: KObject, opts: WriteOptions): KObject {
    const old = current;
    const obj = normalize(structuredClone(next));
    const meta = obj.metadata;
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    // Immutable and server-owned metadata.
    meta.name = old.metadata.name;
    if (r.namespaced) meta.namespace = old.metadata.namespace;
    else delete meta.namespace;
    if (meta.uid !== undefined && meta.uid !== old.metadata.uid)
      throw invalid(r.kind, r.group, old.metadata.name!, [
        { field: "metadata.uid", message: "Invalid value: field is immutable" },
      ]);
    meta.uid = old.metadata.uid;
    meta.creationTimestamp = old.metadata.creationTimestamp;
    if (old.metadata.generateName !== undefined) meta.generateName = old.metadata.generateName;
    if (old.metadata.deletionTimestamp) {
      meta.deletionTimestamp = old.metadata.deletionTimestamp;
      meta.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
      const added = (meta.finalizers ?? []).filter((f) => !(old.metadata.finalizers ?? []).includes(f));
      if (added.length > 0)
        throw invalid(r.kind, r.group, old.metadata.name!, [
          {
            field: "metadata.finalizers",
            message: "Forbidden: no new finalizers can be added if the object is being deleted",
            reason: "FieldValueForbidden",
          },
        ]);
    } else {
      delete meta.deletionTimestamp;
      delete meta.deletionGracePeriodSeconds;
    }
    const hasStatus = r.subresources.includes("status");
    if (opts.subresource === "status") {
      const status = obj.status;
      const keepMeta = obj.metadata;
      for (const key of Object.keys(obj)) delete obj[key];
      Object.assign(obj, structuredClone(old));
      obj.metadata = {
        ...structuredClone(old.metadata),
        labels: keepMeta.labels,
        annotations: keepMeta.annotations,
      };
      if (keepMeta.labels === undefined) delete obj.metadata.labels;
      if (keepMeta.annotations === undefined) delete obj.metadata.annotations;
      if (status === undefined) delete obj.status;
      else obj.status = status;
    } else if (hasStatus) {
      if (old.status === undefined) delete obj.status;
      else obj.status = structuredClone(old.status);
    }
    if (old.metadata.generation === undefined) delete meta.generation;
    else {
      const desired = (o: KObject) => JSON.stringify({ ...o, metadata: undefined, status: undefined });
      meta.generation = old.metadata.generation + (desired(obj) !== desired(old) ? 1 : 0);
    }
    const hooks = this.hooks.get(r.kind);
    if (opts.subresource !== "status")
      hooks?.prepareUpdate?.(obj, old, { store: this, dryRun: opts.dryRun === true });
    if (opts.dryRun) {
      if (opts.subresource !== "status") hooks?.release?.(obj, old);
      return structuredClone(obj);
    }
    if (opts.subresource !== "status") hooks?.release?.(old, obj);
    // Unchanged objects keep their resourceVersion and produce no event, like the real server.
    const strip = (o: KObject) =>
      JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
    if (strip(obj) === strip(old)) return structuredClone(old);
    if (meta.deletionTimestamp && (meta.finalizers ?? []).length === 0) {
      this.commit("DELETED", r, obj, old);
      this.afterDelete(r, obj);
      return structuredClone(obj);
    }
    this.commit("MODIFIED", r, obj, old);
    return structuredClone(obj);
  }

  /** Read-modify-write used by PATCH: `mutate` gets a copy of the current object. */
  modify(
    r: ResourceInfo,
    ns: string | undefined,
    name: string,
    mutate: (current: KObject) => KObject,
    opts: WriteOptions = {},
  ): KObject {
    const current = this.bucket(r).get(this.key(r.namespaced ? ns : undefined, name));
    if (!current) throw notFound(r, name);
    const next = mutate(structuredClone(current));
    if (!isObj(next) || !isObj((next as KObject).metadata))
      throw invalid(r.kind, r.group, name, [{ field: "metadata", message: "Required value" }]);
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== current.metadata.resourceVersion)
      throw conflict(
        r,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    if (next.metadata.name !== undefined && next.metadata.name !== name)
      throw invalid(r.kind, r.group, name, [
        { field: "metadata.name", message: "Invalid value: field is immutable" },
      ]);
    return this.replace(r, current, next, opts);
  }

  delete(r: ResourceInfo, ns: string | undefined, name: string, opts: DeleteOptions = {}): KObject {
    const current = this.bucket(r).get(this.key(r.namespaced ? ns : undefined, name));
    if (!current) throw notFound(r, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid)
      throw conflict(
        r,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
      throw conflict(
        r,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    if (opts.dryRun) return structuredClone(current);
    const finalizers = [...(current.metadata.finalizers ?? [])];
    if (opts.propagationPolicy === "Foreground" && !finalizers.includes("foregroundDeletion"))
      finalizers.push("foregroundDeletion");
    if (r.kind === "Namespace") return this.deleteNamespace(r, current);
    if (finalizers.length > 0) {
      if (current.metadata.deletionTimestamp) return structuredClone(current);
      const next = structuredClone(current);
      next.metadata.deletionTimestamp = this.timestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      next.metadata.finalizers = finalizers;
      this.commit("MODIFIED", r, next, current);
      if (opts.propagationPolicy === "Foreground") this.collectDependents(next, opts);
      return structuredClone(next);
    }
    const gone = structuredClone(current);
    this.commit("DELETED", r, gone, current);
    this.afterDelete(r, gone, opts.propagationPolicy === "Orphan");
    return structuredClone(gone);
  }

  private afterDelete(r: ResourceInfo, gone: KObject, orphan = false): void {
    this.hooks.get(r.kind)?.release?.(gone, undefined);
    if (!orphan) this.collectDependents(gone, {});
    const ns = gone.metadata.namespace;
    if (r.namespaced && ns) this.maybeFinishNamespace(ns);
  }

  /** Garbage collection: delete objects whose owner was deleted. */
  private collectDependents(owner: KObject, opts: DeleteOptions): void {
    const uid = owner.metadata.uid;
    for (const r of RESOURCES) {
      for (const o of [...this.bucket(r).values()]) {
        if (!o.metadata.ownerReferences?.some((ref) => ref.uid === uid)) continue;
        if (r.namespaced && owner.metadata.namespace && o.metadata.namespace !== owner.metadata.namespace)
          continue;
        try {
          this.delete(r, o.metadata.namespace, o.metadata.name!, {
            propagationPolicy: opts.propagationPolicy,
          });
        } catch {
          // already gone
        }
      }
    }
    if (owner.metadata.deletionTimestamp && owner.metadata.finalizers?.includes("foregroundDeletion")) {
      const r = RESOURCES.find((x) => apiVersionOf(x) === owner.apiVersion && x.kind === owner.kind);
      const cur = r && this.bucket(r).get(this.key(owner.metadata.namespace, owner.metadata.name!));
      if (r && cur) {
        const next = structuredClone(cur);
        next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== "foregroundDeletion");
        this.replace(r, cur, next, {});
      }
    }
  }

  private deleteNamespace(r: ResourceInfo, current: KObject): KObject {
    const name = current.metadata.name!;
    let ns = current;
    if (!current.metadata.deletionTimestamp) {
      const next = structuredClone(current);
      next.metadata.deletionTimestamp = this.timestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      next.status = { ...(isObj(next.status) ? next.status : {}), phase: "Terminating" };
      this.commit("MODIFIED", r, next, current);
      ns = next;
    }
    // The namespace controller's job: delete everything inside, then drop the namespace.
    for (const res of RESOURCES) {
      if (!res.namespaced) continue;
      for (const o of [...this.bucket(res).values()]) {
        if (o.metadata.namespace !== name || o.metadata.deletionTimestamp) continue;
        try {
          this.delete(res, name, o.metadata.name!);
        } catch {
          // raced with another deletion
        }
      }
    }
    return this.maybeFinishNamespace(name) ?? structuredClone(ns);
  }

  private maybeFinishNamespace(name: string): KObject | undefined {
    const nsRes = RESOURCES.find((x) => x.kind === "Namespace")!;
    const ns = this.bucket(nsRes).get(this.key(undefined, name));
    if (!ns?.metadata.deletionTimestamp) return undefined;
    for (const res of RESOURCES) {
      if (!res.namespaced) continue;
      for (const o of this.bucket(res).values()) if (o.metadata.namespace === name) return undefined;
    }
    if ((ns.metadata.finalizers ?? []).length > 0) return undefined;
    const gone = structuredClone(ns);
    if (isObj(gone.spec)) gone.spec = { ...gone.spec, finalizers: [] };
    this.commit("DELETED", nsRes, gone, ns);
    return structuredClone(gone);
  }

  /**
   * Start a watch. `fromRv` undefined/""/"0": synthetic ADDED events for the current state first;
   * a number: replay history after it, or a 410 Expired error if it was compacted.
   * Returns the handle, or throws the ApiError (410) — callers send it as an ERROR event.
   */
  watch(
    r: ResourceInfo,
    filter: WatchFilter,
    fromRv: string | undefined,
    send: (ev: WatchEvent) => void,
  ): WatchHandle {
    const initial: WatchEvent[] = [];
    if (fromRv === undefined || fromRv === "" || fromRv === "0") {
      for (const o of this.list(r, filter).items) initial.push({ type: "ADDED", object: o });
    } else {
      if (!/^\d+$/.test(fromRv))
        throw new ApiError(400, "BadRequest", `invalid resource version: ${JSON.stringify(fromRv)}`);
      const n = Number(fromRv);
      if (n < this.compactedRv)
        throw new ApiError(410, "Expired", `too old resource version: ${n} (${this.compactedRv + 1})`);
      for (const ev of this.history) {
        if (ev.rv <= n || ev.resource !== r) continue;
        const out = this.translate(ev, filter);
        if (out) initial.push(out);
      }
    }
    for (const ev of initial) send(ev);
    const w = { resource: r, filter, send };
    this.watchers.add(w);
    return { stop: () => this.watchers.delete(w) };
  }

  /** Drop all history: watches from any older resourceVersion now get 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** All objects, for persistence across restarts or seeding. */
  dump(): KObject[] {
    const out: KObject[] = [];
    for (const b of this.objects.values()) for (const o of b.values()) out.push(structuredClone(o));
    return out;
  }
}
