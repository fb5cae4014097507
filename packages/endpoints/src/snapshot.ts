/**
 * The pure part: Kubernetes objects in, immutable snapshots out, with change tracking.
 * No I/O here, so that kube-proxy (or a test) can feed a ChangeTracker from its own watch.
 */
import type { Endpoint, EndpointSet, Protocol, ServicePortName } from "@kproxy/core";
import { deepEqual, FrozenMap, FrozenSet } from "./collections.js";
import type {
  EndpointSliceObject,
  KubeObject,
  NodeInfo,
  NodeObject,
  PodInfo,
  PodObject,
  ServiceInfo,
  ServiceObject,
  SliceInfo,
} from "./objects.js";
import { deepFreeze, objectKey, toNodeInfo, toPodInfo, toServiceInfo, toSliceInfo } from "./objects.js";

/** The kinds a ChangeTracker tracks. */
export type TrackedKind = "Service" | "EndpointSlice" | "Pod" | "Node";

// ------------------------------------------------------------------ names and keys

/** kube-proxy's ServicePortName text: `namespace/name:portName` ("" port name keeps the colon). */
export function servicePortName(namespace: string, service: string, portName: string): ServicePortName {
  return `${namespace}/${service}:${portName}`;
}

/** Splits `namespace/name:portName`; undefined when the text is not one. */
export function parseServicePortName(
  text: string,
): { namespace: string; service: string; portName: string } | undefined {
  const slash = text.indexOf("/");
  const colon = text.indexOf(":", slash + 1);
  if (slash <= 0 || colon < 0 || colon === slash + 1) return undefined;
  return {
    namespace: text.slice(0, slash),
    service: text.slice(slash + 1, colon),
    portName: text.slice(colon + 1),
  };
}

/** `address:port` as Go's JoinHostPort writes it (`[::1]:80` for IPv6): kube-proxy's endpoint key. */
export function endpointKey(endpoint: { address: string; port: number }): string {
  return endpoint.address.includes(":")
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

/** The endpoints whose `ready` condition holds. */
export function readyEndpoints(set: EndpointSet | undefined): readonly Endpoint[] {
  return set ? set.endpoints.filter((e) => e.ready) : [];
}

/**
 * kube-proxy's usable endpoints: the ready ones; when there are none, the ones that are serving
 * and terminating (ProxyTerminatingEndpoints), so that traffic drains during rolling updates.
 */
export function usableEndpoints(set: EndpointSet | undefined): readonly Endpoint[] {
  if (!set) return [];
  const ready = set.endpoints.filter((e) => e.ready);
  return ready.length > 0 ? ready : set.endpoints.filter((e) => e.serving && e.terminating);
}

// ------------------------------------------------------------------ merging slices

const PROTOCOL_ORDER: readonly Protocol[] = ["TCP", "UDP", "SCTP"];

/**
 * Merges all EndpointSlices of one service into one EndpointSet per port name, the way kube-proxy
 * does: slice ports are matched by name (and protocol: the Service's port of that name decides it;
 * without a Service, TCP before UDP before SCTP), every endpoint takes the port of its own slice,
 * endpoints are deduplicated by `address:port` across slices, preferring a non-terminating one
 * (an IP reused by a new pod while the old one terminates), and sorted by `address:port`.
 */
export function mergeEndpointSlices(
  namespace: string,
  service: string,
  slices: Iterable<SliceInfo>,
  serviceInfo?: ServiceInfo,
): Map<string, EndpointSet> {
  const ordered = [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // portName -> protocol -> key -> endpoint
  const groups = new Map<string, Map<Protocol, Map<string, Endpoint>>>();
  for (const slice of ordered) {
    for (const port of slice.ports) {
      const byProtocol = groups.get(port.name) ?? new Map<Protocol, Map<string, Endpoint>>();
      groups.set(port.name, byProtocol);
      const set = byProtocol.get(port.protocol) ?? new Map<string, Endpoint>();
      byProtocol.set(port.protocol, set);
      for (const e of slice.endpoints) {
        const endpoint: Endpoint = { ...e, port: port.port };
        const key = endpointKey(endpoint);
        if (!set.has(key) || !endpoint.terminating) set.set(key, endpoint);
      }
    }
  }
  const out = new Map<string, EndpointSet>();
  for (const portName of [...groups.keys()].sort()) {
    const byProtocol = groups.get(portName)!;
    const wanted = serviceInfo?.ports.find((p) => p.name === portName)?.protocol;
    const protocol = wanted ?? PROTOCOL_ORDER.find((p) => byProtocol.has(p));
    const set = protocol && byProtocol.get(protocol);
    if (!protocol || !set) continue;
    const endpoints = [...set.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
    out.set(
      portName,
      deepFreeze({
        servicePortName: servicePortName(namespace, service, portName),
        namespace,
        service,
        portName,
        protocol,
        endpoints,
      }),
    );
  }
  return out;
}

// ------------------------------------------------------------------ change sets

/** What changed: keys are `namespace/name` for services and pods, the name for nodes. */
export interface ChangeSet {
  /** Service ports whose endpoints or service definition changed (both old and new port names). */
  readonly servicePorts: ReadonlySet<ServicePortName>;
  /** Services whose Service object, EndpointSlices or endpoints changed. */
  readonly services: ReadonlySet<string>;
  readonly pods: ReadonlySet<string>;
  readonly nodes: ReadonlySet<string>;
  readonly empty: boolean;
}

class ChangeAccumulator {
  servicePorts = new Set<ServicePortName>();
  services = new Set<string>();
  pods = new Set<string>();
  nodes = new Set<string>();

  get empty(): boolean {
    return this.servicePorts.size + this.services.size + this.pods.size + this.nodes.size === 0;
  }

  addAll(other: ChangeAccumulator): void {
    for (const k of other.servicePorts) this.servicePorts.add(k);
    for (const k of other.services) this.services.add(k);
    for (const k of other.pods) this.pods.add(k);
    for (const k of other.nodes) this.nodes.add(k);
  }

  freeze(): ChangeSet {
    return Object.freeze({
      servicePorts: new FrozenSet(this.servicePorts),
      services: new FrozenSet(this.services),
      pods: new FrozenSet(this.pods),
      nodes: new FrozenSet(this.nodes),
      empty: this.empty,
    });
  }
}

export const EMPTY_CHANGES: ChangeSet = new ChangeAccumulator().freeze();

// ------------------------------------------------------------------ snapshot

const EMPTY_SETS: ReadonlyMap<string, EndpointSet> = new FrozenMap();

interface SnapshotParts {
  version: number;
  changes: ChangeSet;
  services: ReadonlyMap<string, ServiceInfo>;
  endpoints: ReadonlyMap<ServicePortName, EndpointSet>;
  endpointsByService: ReadonlyMap<string, ReadonlyMap<string, EndpointSet>>;
  slicesByService: ReadonlyMap<string, readonly string[]>;
  pods: ReadonlyMap<string, PodInfo>;
  nodes: ReadonlyMap<string, NodeInfo>;
}

/**
 * An immutable view of the cluster at one moment. Snapshots are replaced, never changed: every
 * map, info and endpoint in one is frozen, and an entry that did not change is the same object in
 * the next snapshot (so `===` tells "unchanged" cheaply).
 */
export class Snapshot {
  /** Increases by one with every snapshot a tracker takes; 0 is the empty snapshot. */
  readonly version: number;
  /** What changed since the tracker's previous snapshot. */
  readonly changes: ChangeSet;
  /** Services by `namespace/name`. */
  readonly services: ReadonlyMap<string, ServiceInfo>;
  /** Every EndpointSet by ServicePortName (from EndpointSlices, with or without a Service). */
  readonly endpoints: ReadonlyMap<ServicePortName, EndpointSet>;
  /** EndpointSets by `namespace/name`, then port name. */
  readonly endpointsByService: ReadonlyMap<string, ReadonlyMap<string, EndpointSet>>;
  /** Names of the EndpointSlices of each service (`namespace/name`), sorted. */
  readonly slicesByService: ReadonlyMap<string, readonly string[]>;
  /** Pods by `namespace/name` (empty unless pods are tracked). */
  readonly pods: ReadonlyMap<string, PodInfo>;
  /** Nodes by name (empty unless nodes are tracked). */
  readonly nodes: ReadonlyMap<string, NodeInfo>;

  constructor(parts: SnapshotParts) {
    this.version = parts.version;
    this.changes = parts.changes;
    this.services = parts.services;
    this.endpoints = parts.endpoints;
    this.endpointsByService = parts.endpointsByService;
    this.slicesByService = parts.slicesByService;
    this.pods = parts.pods;
    this.nodes = parts.nodes;
    Object.freeze(this);
  }

  static empty(): Snapshot {
    return EMPTY_SNAPSHOT;
  }

  service(namespace: string, name: string): ServiceInfo | undefined {
    return this.services.get(objectKey(namespace, name));
  }

  /** The EndpointSet of one service port (port name "" for an unnamed port). */
  endpointSet(namespace: string, name: string, portName: string): EndpointSet | undefined {
    return this.endpointsByService.get(objectKey(namespace, name))?.get(portName);
  }

  /** All EndpointSets of a service, ordered by port name. */
  endpointSets(namespace: string, name: string): readonly EndpointSet[] {
    return [...(this.endpointsByService.get(objectKey(namespace, name)) ?? EMPTY_SETS).values()];
  }

  /** Names of the service's EndpointSlices (empty when it has none). */
  sliceNames(namespace: string, name: string): readonly string[] {
    return this.slicesByService.get(objectKey(namespace, name)) ?? [];
  }

  pod(namespace: string, name: string): PodInfo | undefined {
    return this.pods.get(objectKey(namespace, name));
  }

  node(name: string): NodeInfo | undefined {
    return this.nodes.get(name);
  }
}

const EMPTY_SNAPSHOT = new Snapshot({
  version: 0,
  changes: EMPTY_CHANGES,
  services: new FrozenMap(),
  endpoints: new FrozenMap(),
  endpointsByService: new FrozenMap(),
  slicesByService: new FrozenMap(),
  pods: new FrozenMap(),
  nodes: new FrozenMap(),
});

// ------------------------------------------------------------------ diff

export interface KeyDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
}

export interface SnapshotDiff {
  readonly services: KeyDiff;
  readonly endpoints: KeyDiff;
  readonly pods: KeyDiff;
  readonly nodes: KeyDiff;
  /**
   * Every service port to reprogram: EndpointSets added, removed or updated, plus every port (old
   * and new) of a service added, removed or updated.
   */
  readonly servicePorts: ReadonlySet<ServicePortName>;
  readonly empty: boolean;
}

function diffMaps<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V>): KeyDiff {
  const added: string[] = [];
  const removed: string[] = [];
  const updated: string[] = [];
  if (a !== b) {
    for (const [k, v] of b) {
      if (!a.has(k)) added.push(k);
      else {
        const old = a.get(k);
        if (old !== v && !deepEqual(old, v)) updated.push(k);
      }
    }
    for (const k of a.keys()) if (!b.has(k)) removed.push(k);
  }
  return Object.freeze({
    added: Object.freeze(added.sort()),
    removed: Object.freeze(removed.sort()),
    updated: Object.freeze(updated.sort()),
  });
}

/** What differs between two snapshots (of one tracker or not): `prev` → `next`. */
export function diffSnapshots(prev: Snapshot, next: Snapshot): SnapshotDiff {
  const services = diffMaps(prev.services, next.services);
  const endpoints = diffMaps(prev.endpoints, next.endpoints);
  const pods = diffMaps(prev.pods, next.pods);
  const nodes = diffMaps(prev.nodes, next.nodes);
  const ports = new Set<ServicePortName>([...endpoints.added, ...endpoints.removed, ...endpoints.updated]);
  for (const key of [...services.added, ...services.removed, ...services.updated]) {
    for (const info of [prev.services.get(key), next.services.get(key)])
      for (const p of info?.ports ?? []) ports.add(servicePortName(info!.namespace, info!.name, p.name));
  }
  const count = (d: KeyDiff): number => d.added.length + d.removed.length + d.updated.length;
  return Object.freeze({
    services,
    endpoints,
    pods,
    nodes,
    servicePorts: new FrozenSet(ports),
    empty: count(services) + count(endpoints) + count(pods) + count(nodes) === 0,
  });
}

// ------------------------------------------------------------------ tracker

/**
 * Keeps the current objects (as small infos), tells what each update changed (no-op updates, such
 * as a new resourceVersion or a node heartbeat, change nothing) and takes snapshots.
 * Updates are cheap (only the touched service is re-merged); a snapshot copies the maps, and only
 * when something changed since the previous one.
 */
export class ChangeTracker {
  private readonly services = new Map<string, ServiceInfo>();
  /** `namespace/sliceName` -> slice */
  private readonly slices = new Map<string, SliceInfo>();
  /** `namespace/service` -> sliceName -> slice */
  private readonly slicesOf = new Map<string, Map<string, SliceInfo>>();
  private readonly sliceNames = new Map<string, readonly string[]>();
  private readonly setsOf = new Map<string, ReadonlyMap<string, EndpointSet>>();
  private readonly endpoints = new Map<ServicePortName, EndpointSet>();
  private readonly pods = new Map<string, PodInfo>();
  private readonly nodes = new Map<string, NodeInfo>();
  private pending = new ChangeAccumulator();
  private last: Snapshot = EMPTY_SNAPSHOT;

  /** Adds or replaces an object; returns what that changed. */
  upsert(kind: TrackedKind, obj: KubeObject): ChangeSet {
    const c = new ChangeAccumulator();
    switch (kind) {
      case "Service":
        this.setService(obj as ServiceObject, false, c);
        break;
      case "EndpointSlice":
        this.setSlice(obj as EndpointSliceObject, false, c);
        break;
      case "Pod":
        this.setPod(obj as PodObject, false, c);
        break;
      case "Node":
        this.setNode(obj as NodeObject, false, c);
        break;
    }
    return this.commit(c);
  }

  /** Removes an object (only its namespace and name are read); returns what that changed. */
  delete(kind: TrackedKind, obj: KubeObject): ChangeSet {
    const c = new ChangeAccumulator();
    switch (kind) {
      case "Service":
        this.setService(obj as ServiceObject, true, c);
        break;
      case "EndpointSlice":
        this.setSlice(obj as EndpointSliceObject, true, c);
        break;
      case "Pod":
        this.setPod(obj as PodObject, true, c);
        break;
      case "Node":
        this.setNode(obj as NodeObject, true, c);
        break;
    }
    return this.commit(c);
  }

  /** Replaces every object of a kind with `objects` (a relist): missing ones are deleted. */
  replace(kind: TrackedKind, objects: readonly KubeObject[]): ChangeSet {
    const c = new ChangeAccumulator();
    const keep = new Set<string>();
    for (const obj of objects) {
      const meta = obj.metadata ?? {};
      keep.add(kind === "Node" ? (meta.name ?? "") : objectKey(meta.namespace ?? "default", meta.name ?? ""));
      c.addAll(toAccumulator(this.upsert(kind, obj)));
    }
    const existing =
      kind === "Service"
        ? this.services.keys()
        : kind === "EndpointSlice"
          ? this.slices.keys()
          : kind === "Pod"
            ? this.pods.keys()
            : this.nodes.keys();
    for (const key of [...existing]) {
      if (keep.has(key)) continue;
      const slash = key.indexOf("/");
      const metadata =
        kind === "Node" ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
      c.addAll(toAccumulator(this.delete(kind, { metadata })));
    }
    return c.freeze();
  }

  /** What changed since the last snapshot. */
  get pendingChanges(): ChangeSet {
    return this.pending.freeze();
  }

  /**
   * The current state as an immutable snapshot. The same Snapshot object is returned until
   * something changes; a new one carries what changed since the previous one in `changes`.
   */
  snapshot(): Snapshot {
    if (this.pending.empty) return this.last;
    const changes = this.pending.freeze();
    this.pending = new ChangeAccumulator();
    this.last = new Snapshot({
      version: this.last.version + 1,
      changes,
      services: new FrozenMap(new Map(this.services)),
      endpoints: new FrozenMap(new Map(this.endpoints)),
      endpointsByService: new FrozenMap(new Map(this.setsOf)),
      slicesByService: new FrozenMap(new Map(this.sliceNames)),
      pods: new FrozenMap(new Map(this.pods)),
      nodes: new FrozenMap(new Map(this.nodes)),
    });
    return this.last;
  }

  private commit(c: ChangeAccumulator): ChangeSet {
    if (c.empty) return EMPTY_CHANGES;
    this.pending.addAll(c);
    return c.freeze();
  }

  private setService(obj: ServiceObject, remove: boolean, c: ChangeAccumulator): void {
    const meta = obj.metadata ?? {};
    if (!meta.name) return;
    const namespace = meta.namespace ?? "default";
    const key = objectKey(namespace, meta.name);
    const prev = this.services.get(key);
    const next = remove ? undefined : toServiceInfo(obj);
    if (prev === next || deepEqual(prev, next)) return;
    if (next) this.services.set(key, next);
    else this.services.delete(key);
    c.services.add(key);
    for (const info of [prev, next])
      for (const p of info?.ports ?? []) c.servicePorts.add(servicePortName(namespace, meta.name, p.name));
    // The Service decides which protocol a port name's endpoints are taken from.
    this.remerge(namespace, meta.name, c);
  }

  private setSlice(obj: EndpointSliceObject, remove: boolean, c: ChangeAccumulator): void {
    const meta = obj.metadata ?? {};
    if (!meta.name || !meta.namespace) return;
    const key = objectKey(meta.namespace, meta.name);
    const prev = this.slices.get(key);
    const next = remove ? undefined : toSliceInfo(obj);
    if (prev === next || deepEqual(prev, next)) return;
    if (prev) {
      const owner = objectKey(prev.namespace, prev.service);
      const of = this.slicesOf.get(owner);
      of?.delete(prev.name);
      if (of && of.size === 0) this.slicesOf.delete(owner);
    }
    if (next) {
      this.slices.set(key, next);
      const owner = objectKey(next.namespace, next.service);
      const of = this.slicesOf.get(owner) ?? new Map<string, SliceInfo>();
      this.slicesOf.set(owner, of);
      of.set(next.name, next);
    } else this.slices.delete(key);
    if (prev) this.remerge(prev.namespace, prev.service, c);
    if (next && (!prev || prev.service !== next.service)) this.remerge(next.namespace, next.service, c);
  }

  /** Re-merges one service's slices; records the ports whose EndpointSet changed. */
  private remerge(namespace: string, service: string, c: ChangeAccumulator): void {
    const key = objectKey(namespace, service);
    const slices = this.slicesOf.get(key);
    const names = slices ? [...slices.keys()].sort() : [];
    const prevNames = this.sliceNames.get(key) ?? [];
    if (!deepEqual(prevNames, names)) {
      if (names.length > 0) this.sliceNames.set(key, Object.freeze(names));
      else this.sliceNames.delete(key);
      c.services.add(key);
    }
    const merged = mergeEndpointSlices(namespace, service, slices?.values() ?? [], this.services.get(key));
    const prev = this.setsOf.get(key) ?? EMPTY_SETS;
    const result = new Map<string, EndpointSet>();
    let changed = false;
    for (const [portName, set] of merged) {
      const old = prev.get(portName);
      if (old && deepEqual(old, set)) result.set(portName, old);
      else {
        result.set(portName, set);
        this.endpoints.set(set.servicePortName, set);
        c.servicePorts.add(set.servicePortName);
        changed = true;
      }
    }
    for (const [portName, old] of prev) {
      if (merged.has(portName)) continue;
      this.endpoints.delete(old.servicePortName);
      c.servicePorts.add(old.servicePortName);
      changed = true;
    }
    if (!changed) return;
    c.services.add(key);
    if (result.size > 0) this.setsOf.set(key, new FrozenMap(result));
    else this.setsOf.delete(key);
  }

  private setPod(obj: PodObject, remove: boolean, c: ChangeAccumulator): void {
    const meta = obj.metadata ?? {};
    if (!meta.name) return;
    const key = objectKey(meta.namespace ?? "default", meta.name);
    const prev = this.pods.get(key);
    const next = remove ? undefined : toPodInfo(obj);
    if (prev === next || deepEqual(prev, next)) return;
    if (next) this.pods.set(key, next);
    else this.pods.delete(key);
    c.pods.add(key);
  }

  private setNode(obj: NodeObject, remove: boolean, c: ChangeAccumulator): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const prev = this.nodes.get(name);
    const next = remove ? undefined : toNodeInfo(obj);
    if (prev === next || deepEqual(prev, next)) return;
    if (next) this.nodes.set(name, next);
    else this.nodes.delete(name);
    c.nodes.add(name);
  }
}

function toAccumulator(set: ChangeSet): ChangeAccumulator {
  const a = new ChangeAccumulator();
  for (const k of set.servicePorts) a.servicePorts.add(k);
  for (const k of set.services) a.services.add(k);
  for (const k of set.pods) a.pods.add(k);
  for (const k of set.nodes) a.nodes.add(k);
  return a;
}
