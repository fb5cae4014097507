/**
 * The Kubernetes objects this package reads, typed by the fields it reads (raw API JSON, as list and
 * watch return it), and their conversion into the small, frozen infos that snapshots hold.
 * Conversion never throws: a malformed field is treated as absent.
 */
import type { AddressType, Endpoint, EndpointTargetRef, Protocol } from "@kproxy/core";

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: unknown;
}

/** Any Kubernetes object (what the tracker accepts). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface ServiceObject extends KubeObject {
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[];
    externalName?: string;
    externalIPs?: string[];
    loadBalancerSourceRanges?: string[];
    loadBalancerClass?: string;
    ports?: Array<{
      name?: string;
      protocol?: string;
      port?: number;
      targetPort?: number | string;
      nodePort?: number;
      appProtocol?: string;
    }>;
    selector?: Record<string, string>;
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    externalTrafficPolicy?: string;
    internalTrafficPolicy?: string;
    healthCheckNodePort?: number;
    publishNotReadyAddresses?: boolean;
    trafficDistribution?: string;
  };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string; ipMode?: string }> } };
}

export interface EndpointSliceObject extends KubeObject {
  addressType?: string;
  endpoints?: Array<{
    addresses?: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    hostname?: string;
    nodeName?: string;
    zone?: string;
    targetRef?: { kind?: string; namespace?: string; name?: string; uid?: string };
    hints?: { forZones?: Array<{ name?: string }>; forNodes?: Array<{ name?: string }> };
  }>;
  ports?: Array<{ name?: string | null; protocol?: string; port?: number | null; appProtocol?: string }>;
}

export interface PodObject extends KubeObject {
  spec?: {
    nodeName?: string;
    containers?: Array<{
      name?: string;
      ports?: Array<{ name?: string; containerPort?: number; protocol?: string }>;
    }>;
  };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip?: string }>;
    conditions?: Array<{ type?: string; status?: string }>;
  };
}

export interface NodeObject extends KubeObject {
  spec?: { unschedulable?: boolean; podCIDRs?: string[] };
  status?: {
    addresses?: Array<{ type?: string; address?: string }>;
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
    conditions?: Array<{ type?: string; status?: string }>;
  };
}

/** Label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
/** Node label for the zone (topology-aware routing). */
export const ZONE_LABEL = "topology.kubernetes.io/zone";
/** The kubelet port when the Node does not report one (`status.daemonEndpoints.kubeletEndpoint.Port`). */
export const DEFAULT_KUBELET_PORT = 10250;

export interface ServicePortInfo {
  /** "" for an unnamed port. */
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly targetPort?: number | string;
  readonly nodePort?: number;
  readonly appProtocol?: string;
}

export interface LoadBalancerIngress {
  readonly ip?: string;
  readonly hostname?: string;
  readonly ipMode?: string;
}

export interface ServiceInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** ClusterIP (default), NodePort, LoadBalancer or ExternalName. */
  readonly type: string;
  /** `spec.clusterIPs`, or `[spec.clusterIP]` when only that is set; empty for "None". */
  readonly clusterIPs: readonly string[];
  /** True when `spec.clusterIP` is "None". */
  readonly headless: boolean;
  readonly ipFamilies: readonly string[];
  readonly externalName?: string;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIngress: readonly LoadBalancerIngress[];
  readonly loadBalancerSourceRanges: readonly string[];
  readonly loadBalancerClass?: string;
  readonly ports: readonly ServicePortInfo[];
  readonly selector?: Readonly<Record<string, string>>;
  /** "None" or "ClientIP". */
  readonly sessionAffinity: string;
  /** `sessionAffinityConfig.clientIP.timeoutSeconds` (10800 when ClientIP and unset); 0 when no affinity. */
  readonly sessionAffinityTimeoutSeconds: number;
  /** "Cluster" or "Local". */
  readonly externalTrafficPolicy: string;
  /** "Cluster" or "Local". */
  readonly internalTrafficPolicy: string;
  readonly healthCheckNodePort?: number;
  readonly publishNotReadyAddresses: boolean;
  readonly trafficDistribution?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** The parts of one EndpointSlice the merge uses. */
export interface SliceInfo {
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly addressType: AddressType | undefined;
  readonly ports: readonly { readonly name: string; readonly protocol: Protocol; readonly port: number }[];
  readonly endpoints: readonly Omit<Endpoint, "port">[];
}

export interface ContainerPortInfo {
  readonly container: string;
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
}

export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** `status.podIPs[].ip` in order (`[status.podIP]` when podIPs is absent). */
  readonly podIPs: readonly string[];
  readonly nodeName?: string;
  readonly phase?: string;
  /** The Ready condition is True. */
  readonly ready: boolean;
  /** deletionTimestamp is set. */
  readonly terminating: boolean;
  /** Every declared container port, in spec order (init and ephemeral containers excluded). */
  readonly ports: readonly ContainerPortInfo[];
  /** The first port of the first container that declares any (the API server's default proxy port). */
  readonly defaultPort?: number;
}

export interface NodeAddress {
  readonly type: string;
  readonly address: string;
}

export interface NodeInfo {
  readonly name: string;
  readonly uid?: string;
  /** `status.addresses` in order. */
  readonly addresses: readonly NodeAddress[];
  /** `status.daemonEndpoints.kubeletEndpoint.Port` when above 0, else 10250. */
  readonly kubeletPort: number;
  readonly zone?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly unschedulable: boolean;
  /** The Ready condition is True. */
  readonly ready: boolean;
  /** deletionTimestamp is set. */
  readonly terminating: boolean;
  readonly podCIDRs: readonly string[];
}

// ------------------------------------------------------------------ helpers

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
/** The value as a record of unknowns ({} when it is not an object). */
const rec = (v: unknown): Record<string, unknown> => (isObj(v) ? v : {});
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const nonEmpty = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const int = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) ? v : undefined;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] =>
  arr(v).filter((s): s is string => typeof s === "string" && s !== "");

function stringMap(v: unknown): Readonly<Record<string, string>> {
  if (!isObj(v)) return Object.freeze({});
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) {
    const val = v[k];
    if (typeof val === "string") out[k] = val;
  }
  return Object.freeze(out);
}

export function toProtocol(v: unknown): Protocol {
  return v === "UDP" || v === "SCTP" ? v : "TCP";
}

function addressType(v: unknown): AddressType | undefined {
  return v === "IPv4" || v === "IPv6" || v === "FQDN" ? v : undefined;
}

/** Deep-freezes a plain JSON-like value (arrays and objects) and returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** Strips undefined-valued keys so that equal infos compare equal field by field. */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function conditionTrue(conditions: unknown, type: string): boolean {
  return arr(conditions).some((c) => isObj(c) && c.type === type && c.status === "True");
}

/** `namespace/name` */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

// ------------------------------------------------------------------ conversions

export function toServiceInfo(obj: ServiceObject): ServiceInfo | undefined {
  const o = rec(obj);
  const meta = rec(o.metadata);
  const name = nonEmpty(meta.name);
  if (!name) return undefined;
  const spec = rec(o.spec);
  const clusterIP = str(spec.clusterIP);
  const headless = clusterIP === "None";
  let clusterIPs = strings(spec.clusterIPs).filter((ip) => ip !== "None");
  if (clusterIPs.length === 0 && clusterIP && !headless) clusterIPs = [clusterIP];
  const ports: ServicePortInfo[] = [];
  for (const p of arr(spec.ports)) {
    if (!isObj(p)) continue;
    const port = int(p.port);
    if (port === undefined) continue;
    const targetPort = int(p.targetPort) ?? nonEmpty(p.targetPort);
    ports.push(
      compact({
        name: str(p.name) ?? "",
        protocol: toProtocol(p.protocol),
        port,
        targetPort,
        nodePort: int(p.nodePort) || undefined,
        appProtocol: nonEmpty(p.appProtocol),
      }),
    );
  }
  const sessionAffinity = spec.sessionAffinity === "ClientIP" ? "ClientIP" : "None";
  const clientIP = rec(rec(spec.sessionAffinityConfig).clientIP);
  const ingress: LoadBalancerIngress[] = [];
  const lb = rec(rec(o.status).loadBalancer);
  for (const i of arr(lb.ingress)) {
    if (!isObj(i)) continue;
    const entry = compact({ ip: nonEmpty(i.ip), hostname: nonEmpty(i.hostname), ipMode: nonEmpty(i.ipMode) });
    if (entry.ip || entry.hostname) ingress.push(entry);
  }
  const selector = isObj(spec.selector) ? stringMap(spec.selector) : undefined;
  const info: ServiceInfo = compact({
    namespace: str(meta.namespace) ?? "default",
    name,
    uid: nonEmpty(meta.uid),
    type: nonEmpty(spec.type) ?? "ClusterIP",
    clusterIPs,
    headless,
    ipFamilies: strings(spec.ipFamilies),
    externalName: nonEmpty(spec.externalName),
    externalIPs: strings(spec.externalIPs),
    loadBalancerIngress: ingress,
    loadBalancerSourceRanges: strings(spec.loadBalancerSourceRanges).map((s) => s.trim()),
    loadBalancerClass: nonEmpty(spec.loadBalancerClass),
    ports,
    selector,
    sessionAffinity,
    sessionAffinityTimeoutSeconds:
      sessionAffinity === "ClientIP" ? (int(clientIP.timeoutSeconds) ?? 10800) : 0,
    externalTrafficPolicy: spec.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
    internalTrafficPolicy: spec.internalTrafficPolicy === "Local" ? "Local" : "Cluster",
    healthCheckNodePort: int(spec.healthCheckNodePort) || undefined,
    publishNotReadyAddresses: spec.publishNotReadyAddresses === true,
    trafficDistribution: nonEmpty(spec.trafficDistribution),
    labels: stringMap(meta.labels),
    annotations: stringMap(meta.annotations),
  });
  return deepFreeze(info);
}

/** The Service an EndpointSlice belongs to, from its `kubernetes.io/service-name` label. */
export function sliceServiceName(obj: EndpointSliceObject): string | undefined {
  return nonEmpty(rec(rec(rec(obj).metadata).labels)[SERVICE_NAME_LABEL]);
}

/**
 * The merge-relevant parts of an EndpointSlice, or undefined when it has no service-name label,
 * name or namespace (kube-proxy ignores those). Like kube-proxy, ports without a name (nil) or with
 * a nil/0 port are dropped, as are endpoints without addresses; endpoints are ordered by address.
 */
export function toSliceInfo(obj: EndpointSliceObject): SliceInfo | undefined {
  const o = rec(obj);
  const meta = rec(o.metadata);
  const name = nonEmpty(meta.name);
  const namespace = nonEmpty(meta.namespace);
  const service = sliceServiceName(obj);
  if (!name || !namespace || !service) return undefined;
  const ports: { name: string; protocol: Protocol; port: number }[] = [];
  for (const p of arr(o.ports)) {
    if (!isObj(p) || typeof p.name !== "string") continue;
    const port = int(p.port);
    if (port === undefined || port === 0) continue;
    ports.push({ name: p.name, protocol: toProtocol(p.protocol), port });
  }
  ports.sort((a, b) => a.port - b.port || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const type = addressType(o.addressType);
  const endpoints: Omit<Endpoint, "port">[] = [];
  for (const e of arr(o.endpoints)) {
    if (!isObj(e)) continue;
    const address = strings(e.addresses)[0];
    if (!address) continue;
    const c = rec(e.conditions);
    const ref = isObj(e.targetRef) ? e.targetRef : undefined;
    const targetRef: EndpointTargetRef | undefined =
      ref && nonEmpty(ref.name)
        ? compact({
            kind: str(ref.kind) ?? "",
            namespace: nonEmpty(ref.namespace),
            name: ref.name as string,
            uid: nonEmpty(ref.uid),
          })
        : undefined;
    const hints = rec(e.hints);
    const hintNames = (v: unknown): string[] | undefined => {
      const names = arr(v)
        .map((h) => (isObj(h) ? nonEmpty(h.name) : undefined))
        .filter((n): n is string => n !== undefined)
        .sort();
      return names.length > 0 ? names : undefined;
    };
    endpoints.push(
      compact({
        address,
        addressType: type ?? (address.includes(":") ? "IPv6" : /^[\d.]+$/.test(address) ? "IPv4" : "FQDN"),
        ready: c.ready === undefined || c.ready === null || c.ready === true,
        serving: c.serving === undefined || c.serving === null || c.serving === true,
        terminating: c.terminating === true,
        nodeName: nonEmpty(e.nodeName),
        zone: nonEmpty(e.zone),
        hostname: nonEmpty(e.hostname),
        targetRef,
        zoneHints: hintNames(hints.forZones),
        nodeHints: hintNames(hints.forNodes),
      }),
    );
  }
  endpoints.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return deepFreeze({ name, namespace, service, addressType: type, ports, endpoints });
}

export function toPodInfo(obj: PodObject): PodInfo | undefined {
  const o = rec(obj);
  const meta = rec(o.metadata);
  const name = nonEmpty(meta.name);
  if (!name) return undefined;
  const spec = rec(o.spec);
  const status = rec(o.status);
  let podIPs = arr(status.podIPs)
    .map((p) => (isObj(p) ? nonEmpty(p.ip) : undefined))
    .filter((ip): ip is string => ip !== undefined);
  const podIP = nonEmpty(status.podIP);
  if (podIPs.length === 0 && podIP) podIPs = [podIP];
  const ports: ContainerPortInfo[] = [];
  let defaultPort: number | undefined;
  for (const c of arr(spec.containers)) {
    if (!isObj(c)) continue;
    const declared = arr(c.ports).filter(isObj);
    // Upstream takes Ports[0] of the first container with any port, whatever its value.
    if (defaultPort === undefined && declared.length > 0) defaultPort = int(declared[0]?.containerPort) ?? 0;
    for (const p of declared) {
      const containerPort = int(p.containerPort);
      if (containerPort === undefined) continue;
      ports.push(
        compact({
          container: str(c.name) ?? "",
          name: nonEmpty(p.name),
          containerPort,
          protocol: toProtocol(p.protocol),
        }),
      );
    }
  }
  return deepFreeze(
    compact({
      namespace: str(meta.namespace) ?? "default",
      name,
      uid: nonEmpty(meta.uid),
      podIPs,
      nodeName: nonEmpty(spec.nodeName),
      phase: nonEmpty(status.phase),
      ready: conditionTrue(status.conditions, "Ready"),
      terminating: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
      ports,
      defaultPort,
    }),
  );
}

export function toNodeInfo(obj: NodeObject): NodeInfo | undefined {
  const o = rec(obj);
  const meta = rec(o.metadata);
  const name = nonEmpty(meta.name);
  if (!name) return undefined;
  const spec = rec(o.spec);
  const status = rec(o.status);
  const addresses: NodeAddress[] = [];
  for (const a of arr(status.addresses)) {
    if (!isObj(a)) continue;
    const type = str(a.type);
    const address = str(a.address);
    if (type !== undefined && address !== undefined) addresses.push({ type, address });
  }
  const port = int(rec(rec(status.daemonEndpoints).kubeletEndpoint).Port);
  const labels = stringMap(meta.labels);
  return deepFreeze(
    compact({
      name,
      uid: nonEmpty(meta.uid),
      addresses,
      kubeletPort: port !== undefined && port > 0 ? port : DEFAULT_KUBELET_PORT,
      zone: nonEmpty(labels[ZONE_LABEL]),
      labels,
      unschedulable: spec.unschedulable === true,
      ready: conditionTrue(status.conditions, "Ready"),
      terminating: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
      podCIDRs: strings(spec.podCIDRs),
    }),
  );
}
