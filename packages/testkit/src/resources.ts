/** The kind table: every resource the test API server serves. */
export interface ResourceInfo {
  group: string;
  version: string;
  kind: string;
  /** Plural resource name, as in URLs. */
  resource: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** Subresources such as "status" (with the main verbs get/patch/update). */
  subresources: string[];
  categories: string[];
  /** Field selector labels accepted besides metadata.name and metadata.namespace. */
  fieldLabels: string[];
  /** Create-only review resources answered from the request (never stored). */
  review?: boolean;
}

const ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

function res(
  r: Omit<ResourceInfo, "verbs" | "subresources" | "categories" | "fieldLabels" | "shortNames"> &
    Partial<ResourceInfo>,
): ResourceInfo {
  return {
    verbs: ALL_VERBS,
    subresources: [],
    categories: [],
    fieldLabels: [],
    shortNames: [],
    ...r,
  };
}

export const RESOURCES: readonly ResourceInfo[] = [
  res({
    group: "",
    version: "v1",
    kind: "Namespace",
    resource: "namespaces",
    singular: "namespace",
    namespaced: false,
    shortNames: ["ns"],
    verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    subresources: ["status"],
    fieldLabels: ["status.phase"],
  }),
  res({
    group: "",
    version: "v1",
    kind: "Service",
    resource: "services",
    singular: "service",
    namespaced: true,
    shortNames: ["svc"],
    subresources: ["status"],
    categories: ["all"],
    fieldLabels: ["spec.clusterIP", "spec.type"],
  }),
  res({
    group: "",
    version: "v1",
    kind: "Endpoints",
    resource: "endpoints",
    singular: "endpoints",
    namespaced: true,
    shortNames: ["ep"],
  }),
  res({
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    resource: "endpointslices",
    singular: "endpointslice",
    namespaced: true,
    fieldLabels: ["addressType"],
  }),
  res({
    group: "",
    version: "v1",
    kind: "Pod",
    resource: "pods",
    singular: "pod",
    namespaced: true,
    shortNames: ["po"],
    subresources: ["status", "exec", "attach", "portforward"],
    categories: ["all"],
    fieldLabels: [
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.nominatedNodeName",
    ],
  }),
  res({
    group: "",
    version: "v1",
    kind: "Node",
    resource: "nodes",
    singular: "node",
    namespaced: false,
    shortNames: ["no"],
    subresources: ["status"],
    fieldLabels: ["spec.unschedulable"],
  }),
  res({
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    resource: "leases",
    singular: "lease",
    namespaced: true,
  }),
  res({
    group: "",
    version: "v1",
    kind: "Event",
    resource: "events",
    singular: "event",
    namespaced: true,
    shortNames: ["ev"],
    fieldLabels: [
      "involvedObject.kind",
      "involvedObject.namespace",
      "involvedObject.name",
      "involvedObject.uid",
      "involvedObject.apiVersion",
      "involvedObject.resourceVersion",
      "involvedObject.fieldPath",
      "reason",
      "reportingComponent",
      "source",
      "type",
    ],
  }),
  res({
    group: "",
    version: "v1",
    kind: "ConfigMap",
    resource: "configmaps",
    singular: "configmap",
    namespaced: true,
    shortNames: ["cm"],
  }),
  res({
    group: "authorization.k8s.io",
    version: "v1",
    kind: "SelfSubjectAccessReview",
    resource: "selfsubjectaccessreviews",
    singular: "selfsubjectaccessreview",
    namespaced: false,
    verbs: ["create"],
    review: true,
  }),
  res({
    group: "authorization.k8s.io",
    version: "v1",
    kind: "SubjectAccessReview",
    resource: "subjectaccessreviews",
    singular: "subjectaccessreview",
    namespaced: false,
    verbs: ["create"],
    review: true,
  }),
  res({
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenReview",
    resource: "tokenreviews",
    singular: "tokenreview",
    namespaced: false,
    verbs: ["create"],
    review: true,
  }),
  res({
    group: "authentication.k8s.io",
    version: "v1",
    kind: "SelfSubjectReview",
    resource: "selfsubjectreviews",
    singular: "selfsubjectreview",
    namespaced: false,
    verbs: ["create"],
    review: true,
  }),
];

export function apiVersionOf(r: ResourceInfo): string {
  return r.group === "" ? r.version : `${r.group}/${r.version}`;
}

export function findByResource(group: string, version: string, resource: string): ResourceInfo | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export function findByKind(apiVersion: string, kind: string): ResourceInfo | undefined {
  return RESOURCES.find((r) => apiVersionOf(r) === apiVersion && r.kind === kind);
}

/** Group versions served, grouped by group name ("" is the legacy core group). */
export function groupVersions(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of RESOURCES) {
    const vs = m.get(r.group) ?? [];
    if (!vs.includes(r.version)) vs.push(r.version);
    m.set(r.group, vs);
  }
  return m;
}
