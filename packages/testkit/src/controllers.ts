/**
 * The built-in EndpointSlice controller: for every Service with a selector, the pods it selects
 * become endpoints in slices labelled kubernetes.io/service-name, with ports resolved from
 * targetPort names, ready/serving/terminating conditions, nodeName and zone.
 */
import { findByKind } from "./resources.js";
import { matchesLabels, selectorFromMap } from "./selectors.js";
import type { KObject, Store, StoreEvent } from "./store.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
export const MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by";
export const MANAGED_BY = "endpointslice-controller.k8s.io";
const ZONE_LABEL = "topology.kubernetes.io/zone";

const SERVICE = findByKind("v1", "Service")!;
const POD = findByKind("v1", "Pod")!;
const NODE = findByKind("v1", "Node")!;
const SLICE = findByKind("discovery.k8s.io/v1", "EndpointSlice")!;

interface SlicePort {
  name: string;
  protocol: string;
  port: number;
  appProtocol?: string;
}

function podReady(pod: KObject): boolean {
  const conds =
    isObj(pod.status) && Array.isArray(pod.status.conditions) ? (pod.status.conditions as Obj[]) : [];
  return conds.some((c) => c.type === "Ready" && c.status === "True");
}

function resolvePort(pod: KObject, target: unknown, protocol: string): number | undefined {
  if (typeof target === "number") return target;
  if (typeof target === "string" && /^\d+$/.test(target)) return Number(target);
  if (typeof target !== "string") return undefined;
  const spec = isObj(pod.spec) ? pod.spec : {};
  for (const c of (Array.isArray(spec.containers) ? spec.containers : []) as Obj[]) {
    for (const p of (Array.isArray(c.ports) ? c.ports : []) as Obj[]) {
      if (p.name === target && (p.protocol ?? "TCP") === protocol && typeof p.containerPort === "number")
        return p.containerPort;
    }
  }
  return undefined;
}

export class EndpointSliceController {
  private readonly store: Store;
  private busy = false;

  constructor(store: Store) {
    this.store = store;
    store.onChange((ev) => this.onChange(ev));
  }

  private onChange(ev: StoreEvent): void {
    if (this.busy) return;
    const kind = ev.resource.kind;
    if (kind === "Service") this.syncService(ev.object.metadata.namespace!, ev.object.metadata.name!);
    else if (kind === "Pod") this.syncNamespace(ev.object.metadata.namespace!);
    else if (kind === "Node") this.syncAll();
    else if (kind === "EndpointSlice" && ev.type === "DELETED") {
      // A managed slice deleted by someone else is recreated, as the real controller does.
      const svc = ev.object.metadata.labels?.[SERVICE_NAME_LABEL];
      if (svc && ev.object.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY)
        this.syncService(ev.object.metadata.namespace!, svc);
    }
  }

  /** Reconcile every service (used at start-up and after node changes). */
  syncAll(): void {
    for (const svc of this.store.list(SERVICE).items)
      this.syncService(svc.metadata.namespace!, svc.metadata.name!);
  }

  private syncNamespace(ns: string): void {
    for (const svc of this.store.list(SERVICE, { namespace: ns }).items)
      this.syncService(ns, svc.metadata.name!);
  }

  syncService(ns: string, name: string): void {
    this.busy = true;
    try {
      this.reconcile(ns, name);
    } finally {
      this.busy = false;
    }
  }

  private reconcile(ns: string, name: string): void {
    const existing = this.store
      .list(SLICE, { namespace: ns })
      .items.filter(
        (s) =>
          s.metadata.labels?.[SERVICE_NAME_LABEL] === name &&
          s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY,
      );
    const svc = this.store.tryGet(SERVICE, ns, name);
    const spec = svc && isObj(svc.spec) ? svc.spec : undefined;
    if (
      !svc ||
      !spec ||
      !isObj(spec.selector) ||
      svc.metadata.deletionTimestamp ||
      spec.type === "ExternalName"
    ) {
      for (const s of existing) this.store.delete(SLICE, ns, s.metadata.name!);
      return;
    }
    const selector = selectorFromMap(spec.selector as Record<string, string>);
    const publishNotReady = spec.publishNotReadyAddresses === true;
    const svcPorts = (Array.isArray(spec.ports) ? spec.ports : []) as Obj[];
    const nodes = new Map(this.store.list(NODE).items.map((n) => [n.metadata.name!, n]));

    // Group endpoints by their resolved port set (pods may name ports differently).
    const groups = new Map<string, { ports: SlicePort[]; endpoints: Obj[] }>();
    const pods = this.store
      .list(POD, { namespace: ns })
      .items.filter((p) => matchesLabels(selector, p.metadata.labels));
    for (const pod of pods) {
      const status = isObj(pod.status) ? pod.status : {};
      if (status.phase === "Succeeded" || status.phase === "Failed") continue;
      const ip = typeof status.podIP === "string" && status.podIP !== "" ? status.podIP : undefined;
      if (!ip) continue;
      const ports: SlicePort[] = [];
      for (const sp of svcPorts) {
        const protocol = typeof sp.protocol === "string" ? sp.protocol : "TCP";
        const port = resolvePort(pod, sp.targetPort ?? sp.port, protocol);
        if (port === undefined) continue;
        const p: SlicePort = { name: typeof sp.name === "string" ? sp.name : "", protocol, port };
        if (typeof sp.appProtocol === "string") p.appProtocol = sp.appProtocol;
        ports.push(p);
      }
      const terminating = pod.metadata.deletionTimestamp !== undefined;
      const ready = podReady(pod);
      const podSpec = isObj(pod.spec) ? pod.spec : {};
      const ep: Obj = {
        addresses: [ip],
        conditions: {
          ready: publishNotReady || (ready && !terminating),
          serving: publishNotReady || ready,
          terminating,
        },
        targetRef: { kind: "Pod", namespace: ns, name: pod.metadata.name, uid: pod.metadata.uid },
      };
      if (typeof podSpec.hostname === "string") ep.hostname = podSpec.hostname;
      const nodeName = typeof podSpec.nodeName === "string" ? podSpec.nodeName : undefined;
      if (nodeName) {
        ep.nodeName = nodeName;
        const zone = nodes.get(nodeName)?.metadata.labels?.[ZONE_LABEL];
        if (zone) ep.zone = zone;
      }
      const key = JSON.stringify(ports);
      const g = groups.get(key) ?? { ports, endpoints: [] };
      g.endpoints.push(ep);
      groups.set(key, g);
    }
    if (groups.size === 0) {
      // Like the real controller: one slice with no endpoints, ports from the service when numeric.
      const ports: SlicePort[] = [];
      for (const sp of svcPorts) {
        const protocol = typeof sp.protocol === "string" ? sp.protocol : "TCP";
        const t = sp.targetPort ?? sp.port;
        if (typeof t === "number")
          ports.push({ name: typeof sp.name === "string" ? sp.name : "", protocol, port: t });
      }
      groups.set(JSON.stringify(ports), { ports, endpoints: [] });
    }

    const unused = [...existing];
    for (const g of groups.values()) {
      const desired = {
        addressType: "IPv4",
        endpoints: g.endpoints,
        ports: g.ports,
      };
      const labels: Record<string, string> = {
        ...(svc.metadata.labels ?? {}),
        [SERVICE_NAME_LABEL]: name,
        [MANAGED_BY_LABEL]: MANAGED_BY,
      };
      const idx = unused.findIndex((s) => JSON.stringify(s.ports ?? []) === JSON.stringify(g.ports));
      const reuse = idx >= 0 ? unused.splice(idx, 1)[0]! : unused.shift();
      if (reuse) {
        const same =
          JSON.stringify(reuse.endpoints ?? []) === JSON.stringify(desired.endpoints) &&
          JSON.stringify(reuse.ports ?? []) === JSON.stringify(desired.ports) &&
          JSON.stringify(reuse.metadata.labels ?? {}) === JSON.stringify(labels);
        if (!same)
          this.store.update(SLICE, ns, reuse.metadata.name!, {
            ...reuse,
            ...desired,
            metadata: { ...reuse.metadata, labels },
          });
        continue;
      }
      this.store.create(SLICE, ns, {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          generateName: `${name}-`,
          namespace: ns,
          labels,
          ownerReferences: [
            {
              apiVersion: "v1",
              kind: "Service",
              name,
              uid: svc.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            } as { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean },
          ],
        },
        ...desired,
      });
    }
    for (const s of unused) this.store.delete(SLICE, ns, s.metadata.name!);
  }
}
