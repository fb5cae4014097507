/** Hand-made Kubernetes objects for unit tests (not part of the package's API). */
import type { EndpointSliceObject, NodeObject, PodObject, ServiceObject } from "./objects.js";

export interface EpSpec {
  ip: string;
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
  node?: string;
  zone?: string;
  pod?: string;
  zoneHints?: string[];
}

export function svc(
  name: string,
  ports: Array<{ name?: string; port: number; protocol?: string; targetPort?: number | string }>,
  extra: { namespace?: string; ipFamilies?: string[]; clusterIP?: string; rv?: string; type?: string } = {},
): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: extra.namespace ?? "default",
      uid: `uid-${name}`,
      resourceVersion: extra.rv ?? "1",
    },
    spec: {
      type: extra.type ?? "ClusterIP",
      clusterIP: extra.clusterIP ?? "10.96.0.10",
      ipFamilies: extra.ipFamilies ?? ["IPv4"],
      ports: ports.map((p) => ({ protocol: "TCP", targetPort: p.port, ...p })),
    },
  };
}

export function slice(
  name: string,
  service: string | undefined,
  ports: Array<{ name?: string | null; port?: number | null; protocol?: string }>,
  endpoints: EpSpec[],
  extra: { namespace?: string; addressType?: string; rv?: string } = {},
): EndpointSliceObject {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: extra.namespace ?? "default",
      resourceVersion: extra.rv ?? "1",
      labels: service === undefined ? {} : { "kubernetes.io/service-name": service },
    },
    addressType: extra.addressType ?? "IPv4",
    ports: ports.map((p) => ({ protocol: "TCP", ...p })) as EndpointSliceObject["ports"],
    endpoints: endpoints.map((e) => {
      const conditions: Record<string, boolean | null> = {};
      if (e.ready !== undefined) conditions.ready = e.ready;
      if (e.serving !== undefined) conditions.serving = e.serving;
      if (e.terminating !== undefined) conditions.terminating = e.terminating;
      const ep: NonNullable<EndpointSliceObject["endpoints"]>[number] = { addresses: [e.ip], conditions };
      if (e.node) ep.nodeName = e.node;
      if (e.zone) ep.zone = e.zone;
      if (e.pod) ep.targetRef = { kind: "Pod", namespace: extra.namespace ?? "default", name: e.pod };
      if (e.zoneHints) ep.hints = { forZones: e.zoneHints.map((z) => ({ name: z })) };
      return ep;
    }),
  };
}

export function pod(
  name: string,
  ips: string[],
  containers: Array<Array<{ name?: string; containerPort: number }>> = [],
  extra: { namespace?: string; ready?: boolean; node?: string } = {},
): PodObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: extra.namespace ?? "default", uid: `uid-${name}` },
    spec: {
      ...(extra.node ? { nodeName: extra.node } : {}),
      containers: containers.map((ports, i) => ({ name: `c${i}`, ports })),
    },
    status: {
      phase: "Running",
      podIPs: ips.map((ip) => ({ ip })),
      conditions: [{ type: "Ready", status: extra.ready === false ? "False" : "True" }],
    },
  };
}

export function node(
  name: string,
  addresses: Array<[string, string]>,
  extra: { kubeletPort?: number; zone?: string; heartbeat?: string } = {},
): NodeObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: extra.zone ? { "topology.kubernetes.io/zone": extra.zone } : {} },
    status: {
      addresses: addresses.map(([type, address]) => ({ type, address })),
      ...(extra.kubeletPort !== undefined
        ? { daemonEndpoints: { kubeletEndpoint: { Port: extra.kubeletPort } } }
        : {}),
      conditions: [
        { type: "Ready", status: "True", ...(extra.heartbeat ? { lastHeartbeatTime: extra.heartbeat } : {}) },
      ] as Array<{ type?: string; status?: string }>,
    },
  };
}
