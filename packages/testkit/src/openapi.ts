/**
 * OpenAPI v3 documents: an index and one document per group version, with the paths and
 * operations of every resource. kubectl reads them to learn that the server validates fields
 * itself (the `fieldValidation` query parameter on PATCH operations of each kind). Schemas are
 * not served, so client-side apply computes strategic merge patches from its built-in types.
 */
import { createHash } from "node:crypto";
import { KUBE_VERSION } from "./discovery.js";
import { groupVersions, RESOURCES, type ResourceInfo } from "./resources.js";

function gvPath(group: string, version: string): string {
  return group === "" ? `api/${version}` : `apis/${group}/${version}`;
}

const QUERY_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "pretty"];

function param(name: string, where: "query" | "path"): Record<string, unknown> {
  const p: Record<string, unknown> = { name, in: where, schema: { type: "string", uniqueItems: true } };
  if (where === "path") p.required = true;
  return p;
}

function operation(
  r: ResourceInfo,
  action: string,
  verb: string,
  extraParams: string[],
): Record<string, unknown> {
  const kindName = `${r.kind}${r.group ? r.group.split(".")[0]!.replace(/^./, (c) => c.toUpperCase()) : ""}`;
  return {
    operationId: `${verb}${r.namespaced ? "Namespaced" : ""}${kindName}`,
    parameters: [...QUERY_PARAMS, ...extraParams].map((n) => param(n, "query")),
    responses: { "200": { description: "OK" } },
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": { group: r.group, version: r.version, kind: r.kind },
  };
}

function gvDocument(group: string, version: string): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const r of RESOURCES.filter((x) => x.group === group && x.version === version && !x.review)) {
    const base = `/${gvPath(group, version)}${r.namespaced ? "/namespaces/{namespace}" : ""}/${r.resource}`;
    const pathParams = r.namespaced ? [param("namespace", "path")] : [];
    const listParams = [
      "labelSelector",
      "fieldSelector",
      "limit",
      "continue",
      "resourceVersion",
      "timeoutSeconds",
      "watch",
    ];
    paths[base] = {
      parameters: pathParams,
      get: operation(r, "list", "list", listParams),
      post: operation(r, "post", "create", []),
    };
    paths[`${base}/{name}`] = {
      parameters: [...pathParams, param("name", "path")],
      get: operation(r, "get", "read", []),
      put: operation(r, "put", "replace", []),
      patch: operation(r, "patch", "patch", ["force"]),
      delete: operation(r, "delete", "delete", ["gracePeriodSeconds", "propagationPolicy"]),
    };
    if (r.subresources.includes("status")) {
      paths[`${base}/{name}/status`] = {
        parameters: [...pathParams, param("name", "path")],
        get: operation(r, "get", "read", []),
        put: operation(r, "put", "replace", []),
      };
    }
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: KUBE_VERSION.gitVersion },
    paths,
    components: { schemas: {} },
  };
}

interface Cached {
  index: Record<string, unknown>;
  docs: Map<string, { hash: string; doc: Record<string, unknown> }>;
}

let cached: Cached | undefined;

function build(): Cached {
  const docs = new Map<string, { hash: string; doc: Record<string, unknown> }>();
  const paths: Record<string, unknown> = {};
  for (const [group, versions] of groupVersions()) {
    for (const v of versions) {
      const doc = gvDocument(group, v);
      const hash = createHash("sha512").update(JSON.stringify(doc)).digest("hex").slice(0, 128).toUpperCase();
      const p = gvPath(group, v);
      docs.set(p, { hash, doc });
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
    }
  }
  return { index: { paths }, docs };
}

/** The response for an /openapi/... path, or undefined when the path is not an OpenAPI one. */
export function openapiResponse(
  path: string,
  _q: URLSearchParams,
): { status: number; body: unknown } | undefined {
  if (!path.startsWith("/openapi/")) return undefined;
  cached ??= build();
  if (path === "/openapi/v3" || path === "/openapi/v3/") return { status: 200, body: cached.index };
  if (path.startsWith("/openapi/v3/")) {
    const d = cached.docs.get(path.slice("/openapi/v3/".length));
    if (d) return { status: 200, body: d.doc };
  }
  return {
    status: 404,
    body: {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "the server could not find the requested resource",
      reason: "NotFound",
      code: 404,
    },
  };
}
