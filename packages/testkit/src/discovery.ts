/** Discovery documents: /api, /apis, group and group-version resource lists. */
import { groupVersions, RESOURCES, type ResourceInfo } from "./resources.js";

export const KUBE_VERSION = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-kproxy-testkit",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2025-01-01T00:00:00Z",
  goVersion: "go1.23.0",
  compiler: "gc",
  platform: "linux/amd64",
};

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

function groupDoc(group: string, versions: string[]): Record<string, unknown> {
  const gv = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: gv, preferredVersion: gv[0] };
}

export function apiGroupList(): Record<string, unknown> {
  const groups: Record<string, unknown>[] = [];
  for (const [g, vs] of groupVersions()) if (g !== "") groups.push(groupDoc(g, vs));
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function apiGroup(group: string): Record<string, unknown> | undefined {
  const vs = groupVersions().get(group);
  if (!vs || group === "") return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...groupDoc(group, vs) };
}

function resourceEntries(r: ResourceInfo): Record<string, unknown>[] {
  const main: Record<string, unknown> = {
    name: r.resource,
    singularName: r.singular,
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: r.verbs,
  };
  if (r.shortNames.length > 0) main.shortNames = r.shortNames;
  if (r.categories.length > 0) main.categories = r.categories;
  const out = [main];
  for (const sub of r.subresources) {
    if (sub === "status")
      out.push({
        name: `${r.resource}/status`,
        singularName: "",
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ["get", "patch", "update"],
      });
    else
      out.push({
        name: `${r.resource}/${sub}`,
        singularName: "",
        namespaced: r.namespaced,
        kind:
          sub === "exec" ? "PodExecOptions" : sub === "attach" ? "PodAttachOptions" : "PodPortForwardOptions",
        verbs: ["create", "get"],
      });
  }
  return out;
}

export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const rs = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (rs.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group === "" ? version : `${group}/${version}`,
    resources: rs.flatMap(resourceEntries),
  };
}
