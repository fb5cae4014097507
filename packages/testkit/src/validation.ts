/** Unknown-field detection for the fieldValidation query parameter (Strict / Warn / Ignore). */

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

const META_FIELDS = [
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
];

const TOP_FIELDS: Record<string, string[]> = {
  Namespace: ["spec", "status"],
  Service: ["spec", "status"],
  Pod: ["spec", "status"],
  Node: ["spec", "status"],
  Lease: ["spec"],
  ConfigMap: ["data", "binaryData", "immutable"],
  Endpoints: ["subsets"],
  EndpointSlice: ["addressType", "endpoints", "ports"],
  Event: [
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
  ],
};

/** Fields known inside `spec` (checked for the kinds whose spec shape is stable and small). */
const SPEC_FIELDS: Record<string, string[]> = {
  Service: [
    "ports",
    "selector",
    "clusterIP",
    "clusterIPs",
    "type",
    "externalIPs",
    "sessionAffinity",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "publishNotReadyAddresses",
    "sessionAffinityConfig",
    "ipFamilies",
    "ipFamilyPolicy",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "internalTrafficPolicy",
    "trafficDistribution",
  ],
  Namespace: ["finalizers"],
  Lease: [
    "holderIdentity",
    "leaseDurationSeconds",
    "acquireTime",
    "renewTime",
    "leaseTransitions",
    "strategy",
    "preferredHolder",
  ],
  Node: ["podCIDR", "podCIDRs", "providerID", "unschedulable", "taints", "configSource", "externalID"],
};

/** Paths of fields the schema does not declare, like ".spec.foo". */
export function unknownFields(kind: string, obj: unknown): string[] {
  if (!isObj(obj)) return [];
  const out: string[] = [];
  const top = TOP_FIELDS[kind];
  if (top) {
    for (const k of Object.keys(obj))
      if (k !== "apiVersion" && k !== "kind" && k !== "metadata" && !k.startsWith("$") && !top.includes(k))
        out.push(`.${k}`);
  }
  if (isObj(obj.metadata))
    for (const k of Object.keys(obj.metadata))
      if (!META_FIELDS.includes(k) && !k.startsWith("$")) out.push(`.metadata.${k}`);
  const spec = SPEC_FIELDS[kind];
  if (spec && isObj(obj.spec))
    for (const k of Object.keys(obj.spec))
      if (!spec.includes(k) && !k.startsWith("$")) out.push(`.spec.${k}`);
  return out;
}
