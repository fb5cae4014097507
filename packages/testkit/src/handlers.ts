/** The REST layer: URL routing, content negotiation, list/watch/CRUD, Status error bodies. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "@kproxy/core";
import { apiGroup, apiGroupList, apiResourceList, apiVersions } from "./discovery.js";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from "./patch.js";
import { decodeKubernetesProtobuf } from "./protobuf.js";
import { apiVersionOf, findByResource, type ResourceInfo } from "./resources.js";
import type { Reviews, SubjectAccessReviewSpec } from "./reviews.js";
import {
  type FieldRequirement,
  type LabelSelector,
  parseFieldSelector,
  parseLabelSelector,
} from "./selectors.js";
import { ApiError, badRequest, failureStatus, type Status } from "./status.js";
import type { DeleteOptions, KObject, Store, WatchEvent, WriteOptions } from "./store.js";
import { type IncludeObject, toTable } from "./table.js";
import { unknownFields } from "./validation.js";

export interface UserInfo {
  username: string;
  groups: string[];
}

export interface RestContext {
  store: Store;
  logger: Logger;
  now: () => number;
  /** host:port clients reach the server at (discovery's serverAddressByClientCIDRs). */
  serverAddress: () => string;
  /** Called for an OpenAPI path; returns undefined when not an OpenAPI path. */
  openapi: (path: string, query: URLSearchParams) => { status: number; body: unknown } | undefined;
  /** Registers a watch response so that faults can close it. */
  trackWatch: (res: ServerResponse, close: () => void) => () => void;
  bookmarkIntervalMs: number;
  /** Default watch timeout when the client gives no timeoutSeconds. */
  watchTimeoutMs: number;
  /** Answers TokenReviews and SubjectAccessReviews. */
  reviews?: Reviews;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-cache, private",
    ...headers,
  });
  res.end(text);
}

export function sendStatus(res: ServerResponse, status: Status): void {
  sendJson(res, status.code, status);
}

export function sendError(res: ServerResponse, err: unknown, logger: Logger): void {
  if (err instanceof ApiError) {
    sendStatus(res, err.toStatus());
    return;
  }
  logger.error("internal error handling request", { err });
  sendStatus(
    res,
    failureStatus(
      500,
      "InternalError",
      "Internal error occurred: the test API server failed to handle the request",
    ),
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, "", "Request entity too large: limit is 3145728");
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}

function parseJsonBody(buf: Buffer): unknown {
  const text = buf.toString("utf8");
  if (text.trim() === "") throw badRequest("the body of the request was empty");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`the object provided is unrecognized or malformed JSON: ${(err as Error).message}`);
  }
}

interface Negotiated {
  table: boolean;
}

/** Content negotiation on Accept: JSON (optionally as a meta.k8s.io/v1 Table); protobuf only → 406. */
function negotiate(accept: string | undefined): Negotiated {
  if (!accept || accept.trim() === "") return { table: false };
  let jsonOk = false;
  let table = false;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.split(";").map((s) => s.trim());
    const p = new Map(params.map((x) => x.split("=").map((s) => s.trim()) as [string, string]));
    const t = (type ?? "").toLowerCase();
    if (t !== "application/json" && t !== "*/*" && t !== "application/*") continue;
    if (p.get("as") === "Table") {
      if ((p.get("g") ?? "") === "meta.k8s.io" && (p.get("v") ?? "") === "v1") {
        table = true;
        jsonOk = true;
        break;
      }
      continue;
    }
    if (p.has("as")) continue;
    jsonOk = true;
    break;
  }
  if (!jsonOk)
    throw new ApiError(
      406,
      "NotAcceptable",
      "only the following media types are accepted: application/json, application/yaml",
    );
  return { table };
}

interface Route {
  resource: ResourceInfo;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  watchPath: boolean;
}

/** Route an /api or /apis path. Returns "discovery" docs directly, or a resource route. */
function route(segs: string[]): { doc: unknown } | Route {
  let group = "";
  let version: string | undefined;
  let rest: string[];
  if (segs[0] === "api") {
    if (segs.length === 1) return { doc: "apiVersions" };
    version = segs[1];
    rest = segs.slice(2);
  } else {
    if (segs.length === 1) return { doc: apiGroupList() };
    group = segs[1]!;
    if (segs.length === 2) {
      const g = apiGroup(group);
      if (!g) throw notFoundPath();
      return { doc: g };
    }
    version = segs[2];
    rest = segs.slice(3);
  }
  if (rest.length === 0) {
    const list = apiResourceList(group, version!);
    if (!list) throw notFoundPath();
    return { doc: list };
  }
  let watchPath = false;
  if (rest[0] === "watch") {
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const inner = findByResource(group, version!, rest[2]!);
    if (inner?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  const resource = findByResource(group, version!, rest[0]!);
  if (!resource || rest.length > 3) throw notFoundPath();
  if (resource.namespaced === false && namespace !== undefined) throw notFoundPath();
  const subresource = rest[2];
  if (subresource !== undefined && !resource.subresources.includes(subresource)) throw notFoundPath();
  return { resource, namespace, name: rest[1], subresource, watchPath };
}

export function notFoundPath(): ApiError {
  return new ApiError(404, "NotFound", "the server could not find the requested resource");
}

function methodNotAllowed(): ApiError {
  return new ApiError(
    405,
    "MethodNotAllowed",
    "the server does not allow this method on the requested resource",
  );
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === "true" || v === "1";
}

function selectors(
  r: ResourceInfo,
  q: URLSearchParams,
): { labels: LabelSelector; fields: FieldRequirement[] } {
  return {
    labels: parseLabelSelector(q.get("labelSelector") ?? ""),
    fields: parseFieldSelector(q.get("fieldSelector") ?? "", r.fieldLabels, r.kind),
  };
}

function dryRun(q: URLSearchParams): boolean {
  const v = q.getAll("dryRun");
  for (const x of v)
    if (x !== "All") throw badRequest(`unsupported dry run value "${x}": only "All" is supported`);
  return v.length > 0;
}

function checkKindAndVersion(r: ResourceInfo, body: unknown): KObject {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw badRequest("the object provided is unrecognized or malformed: expected a JSON object");
  const obj = body as KObject;
  if (obj.kind === undefined || obj.kind === "")
    throw badRequest("Object 'Kind' is missing in the request body");
  if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(r))
    throw badRequest(
      `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersionOf(r)})`,
    );
  if (obj.kind !== r.kind)
    throw badRequest(
      `the kind in the data (${String(obj.kind)}) does not match the expected kind (${r.kind})`,
    );
  if (
    obj.metadata !== undefined &&
    (typeof obj.metadata !== "object" || obj.metadata === null || Array.isArray(obj.metadata))
  )
    throw badRequest("the object provided is unrecognized or malformed: metadata must be an object");
  return obj;
}

/** fieldValidation=Strict → 400 on unknown fields; Warn (default for kubectl) → Warning headers. */
function fieldValidation(r: ResourceInfo, q: URLSearchParams, obj: unknown): string[] {
  const mode = q.get("fieldValidation") ?? "Warn";
  if (!["Strict", "Warn", "Ignore"].includes(mode))
    throw badRequest(`fieldValidation parameter unsupported: ${mode}. Expected one of Ignore, Warn, Strict`);
  if (mode === "Ignore") return [];
  const unknown = unknownFields(r.kind, obj);
  if (unknown.length === 0) return [];
  const msgs = unknown.map((f) => `unknown field "${f.slice(1)}"`);
  if (mode === "Strict") throw badRequest(`strict decoding error: ${msgs.join(", ")}`);
  return msgs;
}

function warningHeaders(msgs: string[]): Record<string, string> {
  if (msgs.length === 0) return {};
  return { Warning: msgs.map((m) => `299 - ${JSON.stringify(m)}`).join(", ") };
}

function listKind(r: ResourceInfo): string {
  return `${r.kind}List`;
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString("base64url");
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as ContinueToken;
    if (typeof t.rv === "number" && typeof t.start === "string") return t;
  } catch {
    // fall through
  }
  throw badRequest(
    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
  );
}

const objKey = (o: KObject): string => `${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;

export async function handleRest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: RestContext,
  user: UserInfo,
): Promise<void> {
  const path = url.pathname;
  const q = url.searchParams;
  const method = (req.method ?? "GET").toUpperCase();

  const oa = ctx.openapi(path, q);
  if (oa) {
    if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
    sendJson(res, oa.status, oa.body);
    return;
  }

  const segs = path.split("/").filter((s) => s !== "");
  if (segs[0] !== "api" && segs[0] !== "apis") throw notFoundPath();
  let decoded: string[];
  try {
    decoded = segs.map((s) => decodeURIComponent(s));
  } catch {
    throw badRequest("malformed percent-encoding in the request path");
  }
  const routed = route(decoded);
  if ("doc" in routed) {
    if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
    sendJson(res, 200, routed.doc === "apiVersions" ? apiVersions(ctx.serverAddress()) : routed.doc);
    return;
  }
  const { resource: r, namespace, name, subresource } = routed;
  const store = ctx.store;

  if (subresource === "exec" || subresource === "attach" || subresource === "portforward") {
    throw badRequest("Upgrade request required");
  }

  if (r.review) {
    if (method !== "POST" || name !== undefined) throw methodNotAllowed();
    const body = checkKindAndVersion(r, await readObjectBody(req));
    const metadata = { creationTimestamp: store.timestamp() };
    // No authorization in the test server: every authenticated user may do everything.
    const status =
      r.kind === "TokenReview" && ctx.reviews
        ? await ctx.reviews.tokenReview(body as { spec?: { token?: unknown } })
        : r.kind === "SubjectAccessReview" && ctx.reviews
          ? await ctx.reviews.subjectAccessReview(body as { spec?: SubjectAccessReviewSpec })
          : r.kind === "SelfSubjectReview"
            ? { userInfo: { username: user.username, groups: user.groups } }
            : { allowed: true, reason: "the test API server allows every authenticated user" };
    sendJson(res, 201, { apiVersion: apiVersionOf(r), kind: r.kind, metadata, spec: body.spec, status });
    return;
  }

  const isWatch = routed.watchPath || boolParam(q, "watch");
  const writeOpts = (): WriteOptions => ({
    dryRun: dryRun(q),
    ...(subresource === "status" ? { subresource: "status" as const } : {}),
  });

  switch (method) {
    case "GET":
    case "HEAD": {
      const neg = negotiate(req.headers.accept);
      if (name !== undefined && !isWatch) {
        const obj = store.get(r, namespace, name);
        sendJson(
          res,
          200,
          neg.table && !subresource
            ? toTable(r, [obj], {
                now: ctx.now(),
                include: includeParam(q),
                resourceVersion: obj.metadata.resourceVersion,
              })
            : obj,
        );
        return;
      }
      const sel = selectors(r, q);
      if (name !== undefined) sel.fields.push({ field: "metadata.name", op: "=", value: name });
      if (isWatch) {
        watch(req, res, ctx, r, { namespace, ...sel }, q, neg.table);
        return;
      }
      let { items, resourceVersion } = store.list(r, { namespace, ...sel });
      const rvParam = q.get("resourceVersion");
      if (rvParam && rvParam !== "0") {
        if (!/^\d+$/.test(rvParam)) throw badRequest(`invalid resource version: ${JSON.stringify(rvParam)}`);
        if (Number(rvParam) > store.resourceVersion)
          throw new ApiError(
            504,
            "Timeout",
            `Too large resource version: ${rvParam}, current: ${store.resourceVersion}`,
            {
              causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
              retryAfterSeconds: 1,
            },
          );
        if (
          q.get("resourceVersionMatch") === "Exact" &&
          Number(rvParam) < store.oldestWatchableResourceVersion
        )
          throw new ApiError(
            410,
            "Expired",
            `too old resource version: ${rvParam} (${store.oldestWatchableResourceVersion + 1})`,
          );
      }
      const cont = q.get("continue");
      if (cont) {
        const t = decodeContinue(cont);
        if (t.rv < store.oldestWatchableResourceVersion)
          throw new ApiError(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
          );
        items = items.filter((o) => objKey(o) > t.start);
        resourceVersion = String(t.rv);
      }
      const limitRaw = q.get("limit");
      let next: string | undefined;
      if (limitRaw) {
        const limit = Number(limitRaw);
        if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${limitRaw}`);
        if (limit > 0 && items.length > limit) {
          items = items.slice(0, limit);
          next = encodeContinue({ rv: Number(resourceVersion), start: objKey(items[items.length - 1]!) });
        }
      }
      if (neg.table) {
        sendJson(
          res,
          200,
          toTable(r, items, { now: ctx.now(), include: includeParam(q), resourceVersion, continue: next }),
        );
        return;
      }
      const metadata: Record<string, unknown> = { resourceVersion };
      if (next) metadata.continue = next;
      sendJson(res, 200, { kind: listKind(r), apiVersion: apiVersionOf(r), metadata, items });
      return;
    }
    case "POST": {
      if (name !== undefined) throw methodNotAllowed();
      const body = checkKindAndVersion(r, await readObjectBody(req));
      const warnings = fieldValidation(r, q, body);
      const created = store.create(r, namespace, body, { dryRun: dryRun(q) });
      sendJson(res, 201, created, warningHeaders(warnings));
      return;
    }
    case "PUT": {
      if (name === undefined) throw methodNotAllowed();
      const body = checkKindAndVersion(r, await readObjectBody(req));
      const warnings = fieldValidation(r, q, body);
      const updated = store.update(r, namespace, name, body, writeOpts());
      sendJson(res, 200, updated, warningHeaders(warnings));
      return;
    }
    case "PATCH": {
      if (name === undefined) throw methodNotAllowed();
      const type = mediaType(req.headers["content-type"]);
      const patchTypes = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
      ];
      if (!patchTypes.includes(type))
        throw new ApiError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: ${patchTypes.join(", ")}`,
        );
      const patch = parseJsonBody(await readBody(req));
      if (type === "application/apply-patch+yaml") {
        if (!q.get("fieldManager"))
          throw badRequest("PATCH /apply: fieldManager is required for apply requests");
        const body = checkKindAndVersion(r, patch);
        const warnings = fieldValidation(r, q, body);
        const existing = store.tryGet(r, namespace, name);
        if (!existing) {
          const created = store.create(
            r,
            namespace,
            { ...body, metadata: { ...body.metadata, name } },
            { dryRun: dryRun(q) },
          );
          sendJson(res, 201, created, warningHeaders(warnings));
          return;
        }
        const updated = store.modify(
          r,
          namespace,
          name,
          (cur) => applyMergePatch(cur, body) as KObject,
          writeOpts(),
        );
        sendJson(res, 200, updated, warningHeaders(warnings));
        return;
      }
      if (
        type !== "application/json-patch+json" &&
        (typeof patch !== "object" || patch === null || Array.isArray(patch))
      )
        throw badRequest("the body of the request must be a JSON object for this patch type");
      const warnings = type === "application/json-patch+json" ? [] : fieldValidation(r, q, patch);
      const updated = store.modify(
        r,
        namespace,
        name,
        (cur) => {
          let next: unknown;
          if (type === "application/json-patch+json") next = applyJsonPatch(cur, patch);
          else if (type === "application/merge-patch+json") next = applyMergePatch(cur, patch);
          else next = applyStrategicMergePatch(cur, patch, r.kind);
          if (typeof next !== "object" || next === null || Array.isArray(next))
            throw new ApiError(422, "Invalid", "the patch produced something that is not an object");
          const n = next as KObject;
          if (n.kind !== r.kind || n.apiVersion !== apiVersionOf(r))
            throw badRequest(
              `the kind or apiVersion of the object may not be changed by a patch (${String(n.apiVersion)}, ${String(n.kind)})`,
            );
          return n;
        },
        writeOpts(),
      );
      sendJson(res, 200, updated, warningHeaders(warnings));
      return;
    }
    case "DELETE": {
      if (subresource) throw methodNotAllowed();
      const raw = await readBody(req);
      const opts: DeleteOptions = { dryRun: dryRun(q) };
      if (raw.toString("utf8").trim() !== "") {
        const body = parseJsonBody(raw);
        if (typeof body !== "object" || body === null || Array.isArray(body))
          throw badRequest("DeleteOptions must be an object");
        const d = body as Record<string, unknown>;
        if (d.kind !== undefined && d.kind !== "DeleteOptions")
          throw badRequest(
            `the kind in the data (${String(d.kind)}) does not match the expected kind (DeleteOptions)`,
          );
        if (Array.isArray(d.dryRun) && d.dryRun.length > 0) opts.dryRun = true;
        if (typeof d.propagationPolicy === "string")
          opts.propagationPolicy = d.propagationPolicy as DeleteOptions["propagationPolicy"];
        if (typeof d.preconditions === "object" && d.preconditions !== null)
          opts.preconditions = d.preconditions as DeleteOptions["preconditions"];
      }
      const pp = q.get("propagationPolicy");
      if (pp) opts.propagationPolicy = pp as DeleteOptions["propagationPolicy"];
      if (opts.propagationPolicy && !["Orphan", "Background", "Foreground"].includes(opts.propagationPolicy))
        throw new ApiError(
          422,
          "Invalid",
          `propagationPolicy: Unsupported value: "${opts.propagationPolicy}"`,
        );
      if (name === undefined) {
        if (!r.verbs.includes("deletecollection")) throw methodNotAllowed();
        const sel = selectors(r, q);
        const { items } = store.list(r, { namespace, ...sel });
        const deleted: KObject[] = [];
        for (const o of items) {
          try {
            deleted.push(store.delete(r, o.metadata.namespace, o.metadata.name!, opts));
          } catch (err) {
            if (!(err instanceof ApiError && err.code === 404)) throw err;
          }
        }
        sendJson(res, 200, {
          kind: listKind(r),
          apiVersion: apiVersionOf(r),
          metadata: { resourceVersion: String(store.resourceVersion) },
          items: deleted,
        });
        return;
      }
      const gone = store.delete(r, namespace, name, opts);
      const stillThere = store.tryGet(r, namespace, name) !== undefined && !opts.dryRun;
      if (stillThere || ["Pod", "Service", "Namespace", "Node"].includes(r.kind)) {
        sendJson(res, stillThere ? 202 : 200, gone);
        return;
      }
      sendJson(res, 200, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Success",
        details: { name, group: r.group, kind: r.resource, uid: gone.metadata.uid },
      });
      return;
    }
    default:
      throw methodNotAllowed();
  }
}

function includeParam(q: URLSearchParams): IncludeObject {
  const v = q.get("includeObject") ?? "Metadata";
  if (v !== "None" && v !== "Object" && v !== "Metadata")
    throw badRequest(`includeObject: unsupported value "${v}"`);
  return v;
}

/** A POST/PUT body: JSON, or protobuf for the kinds kubectl's typed sub-commands send. */
async function readObjectBody(req: IncomingMessage): Promise<unknown> {
  const t = mediaType(req.headers["content-type"]);
  if (t !== "" && t !== "application/json" && t !== "application/vnd.kubernetes.protobuf")
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf",
    );
  const buf = await readBody(req);
  return t === "application/vnd.kubernetes.protobuf" ? decodeKubernetesProtobuf(buf) : parseJsonBody(buf);
}

function watch(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RestContext,
  r: ResourceInfo,
  filter: { namespace: string | undefined; labels: LabelSelector; fields: FieldRequirement[] },
  q: URLSearchParams,
  table: boolean,
): void {
  const timeoutRaw = q.get("timeoutSeconds");
  let timeoutMs = ctx.watchTimeoutMs;
  if (timeoutRaw !== null) {
    const t = Number(timeoutRaw);
    if (!Number.isInteger(t) || t < 0) throw badRequest(`invalid timeoutSeconds: ${timeoutRaw}`);
    if (t > 0) timeoutMs = t * 1000;
  }
  const bookmarks = boolParam(q, "allowWatchBookmarks");
  const sendInitial = q.get("sendInitialEvents");
  if (sendInitial !== null && q.get("resourceVersionMatch") !== "NotOlderThan")
    throw new ApiError(
      422,
      "Invalid",
      "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
    );
  const include = includeParam(q);
  let rv = q.get("resourceVersion") ?? undefined;
  const initialEvents = sendInitial === "true";
  if (sendInitial === "false" && (rv === undefined || rv === "" || rv === "0"))
    rv = String(ctx.store.resourceVersion);
  if (initialEvents) rv = "0";

  res.writeHead(200, {
    "Content-Type": "application/json",
    "Cache-Control": "no-cache, private",
    "Transfer-Encoding": "chunked",
  });
  res.flushHeaders();
  let first = true;
  let closed = false;
  const write = (ev: WatchEvent): void => {
    if (closed) return;
    let object = ev.object;
    if (table && (ev.type === "ADDED" || ev.type === "MODIFIED" || ev.type === "DELETED")) {
      object = toTable(r, [ev.object as KObject], { now: ctx.now(), include, withColumns: first });
      first = false;
    }
    res.write(`${JSON.stringify({ type: ev.type, object })}\n`);
  };
  const bookmark = (initialEnd: boolean): void => {
    const metadata: Record<string, unknown> = { resourceVersion: String(ctx.store.resourceVersion) };
    if (initialEnd) metadata.annotations = { "k8s.io/initial-events-end": "true" };
    write({ type: "BOOKMARK", object: { kind: r.kind, apiVersion: apiVersionOf(r), metadata } });
  };

  let handle: { stop(): void } | undefined;
  try {
    handle = ctx.store.watch(r, filter, rv, write);
  } catch (err) {
    if (err instanceof ApiError) {
      res.end(`${JSON.stringify({ type: "ERROR", object: err.toStatus() })}\n`);
      return;
    }
    throw err;
  }
  if (initialEvents && bookmarks) bookmark(true);
  const timers: NodeJS.Timeout[] = [];
  const finish = (): void => {
    if (closed) return;
    closed = true;
    handle?.stop();
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    untrack();
    if (!res.writableEnded) res.end();
  };
  const untrack = ctx.trackWatch(res, finish);
  timers.push(setTimeout(finish, timeoutMs));
  if (bookmarks && ctx.bookmarkIntervalMs > 0)
    timers.push(setInterval(() => bookmark(false), ctx.bookmarkIntervalMs));
  res.on("close", finish);
  res.on("error", finish);
}
