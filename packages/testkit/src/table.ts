/** meta.k8s.io/v1 Table rendering with the real server's columns for the common kinds. */
import type { ResourceInfo } from "./resources.js";
import type { KObject } from "./store.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v.filter(isObj) as Obj[]) : []);

export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = "None" | "Object" | "Metadata";

/** Go's duration.HumanDuration, as kubectl's AGE column shows it. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (h < 24 * 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

function col(name: string, type = "string", priority = 0, format = ""): TableColumn {
  return { name, type, format, description: name, priority };
}

function age(o: KObject, now: number): string {
  const ts = o.metadata.creationTimestamp;
  return ts ? humanDuration(now - Date.parse(ts)) : "<unknown>";
}

function podRow(p: KObject, now: number): unknown[] {
  const spec = isObj(p.spec) ? p.spec : {};
  const st = isObj(p.status) ? p.status : {};
  const containers = arr(spec.containers);
  const statuses = arr(st.containerStatuses);
  const ready = statuses.filter((c) => c.ready === true).length;
  const restarts = statuses.reduce(
    (n, c) => n + (typeof c.restartCount === "number" ? c.restartCount : 0),
    0,
  );
  let reason =
    typeof st.reason === "string" ? st.reason : typeof st.phase === "string" ? st.phase : "Unknown";
  for (const c of statuses) {
    const state = isObj(c.state) ? c.state : {};
    const w = isObj(state.waiting) ? state.waiting : undefined;
    const t = isObj(state.terminated) ? state.terminated : undefined;
    if (w && typeof w.reason === "string") reason = w.reason;
    else if (t && typeof t.reason === "string") reason = t.reason;
  }
  if (p.metadata.deletionTimestamp) reason = "Terminating";
  const gates = arr(spec.readinessGates);
  return [
    p.metadata.name,
    `${ready}/${containers.length}`,
    reason,
    restarts,
    age(p, now),
    typeof st.podIP === "string" ? st.podIP : "<none>",
    typeof spec.nodeName === "string" ? spec.nodeName : "<none>",
    typeof st.nominatedNodeName === "string" ? st.nominatedNodeName : "<none>",
    gates.length === 0 ? "<none>" : `0/${gates.length}`,
  ];
}

function servicePorts(spec: Obj): string {
  const ports = arr(spec.ports);
  if (ports.length === 0) return "<none>";
  return ports
    .map((p) => `${p.port}${typeof p.nodePort === "number" ? `:${p.nodePort}` : ""}/${p.protocol ?? "TCP"}`)
    .join(",");
}

function serviceRow(s: KObject, now: number): unknown[] {
  const spec = isObj(s.spec) ? s.spec : {};
  const st = isObj(s.status) ? s.status : {};
  const lb = isObj(st.loadBalancer) ? arr(st.loadBalancer.ingress) : [];
  let external = "<none>";
  const externalIPs = Array.isArray(spec.externalIPs) ? (spec.externalIPs as string[]) : [];
  if (spec.type === "ExternalName") external = String(spec.externalName ?? "<none>");
  else if (spec.type === "LoadBalancer") {
    const ips = [...lb.map((i) => String(i.ip ?? i.hostname ?? "")), ...externalIPs].filter((x) => x);
    external = ips.length > 0 ? ips.join(",") : "<pending>";
  } else if (externalIPs.length > 0) external = externalIPs.join(",");
  const selector = isObj(spec.selector)
    ? Object.entries(spec.selector)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(",")
    : "<none>";
  return [
    s.metadata.name,
    spec.type ?? "ClusterIP",
    typeof spec.clusterIP === "string" && spec.clusterIP !== "" ? spec.clusterIP : "<none>",
    external,
    servicePorts(spec),
    age(s, now),
    selector || "<none>",
  ];
}

function nodeRow(n: KObject, now: number): unknown[] {
  const spec = isObj(n.spec) ? n.spec : {};
  const st = isObj(n.status) ? n.status : {};
  const ready = arr(st.conditions).find((c) => c.type === "Ready");
  let status = ready?.status === "True" ? "Ready" : ready ? "NotReady" : "Unknown";
  if (spec.unschedulable === true) status += ",SchedulingDisabled";
  const roles = Object.keys(n.metadata.labels ?? {})
    .filter((k) => k.startsWith("node-role.kubernetes.io/"))
    .map((k) => k.slice("node-role.kubernetes.io/".length))
    .join(",");
  const info = isObj(st.nodeInfo) ? st.nodeInfo : {};
  const addr = (t: string): string =>
    String(arr(st.addresses).find((a) => a.type === t)?.address ?? "<none>");
  return [
    n.metadata.name,
    status,
    roles || "<none>",
    age(n, now),
    info.kubeletVersion ?? "",
    addr("InternalIP"),
    addr("ExternalIP"),
    info.osImage ?? "<unknown>",
    info.kernelVersion ?? "<unknown>",
    info.containerRuntimeVersion ?? "<unknown>",
  ];
}

function endpointsRow(e: KObject, now: number): unknown[] {
  const list: string[] = [];
  for (const s of arr(e.subsets))
    for (const a of arr(s.addresses)) for (const p of arr(s.ports)) list.push(`${a.ip}:${p.port}`);
  const shown = list.slice(0, 3).join(",") + (list.length > 3 ? ` + ${list.length - 3} more...` : "");
  return [e.metadata.name, list.length === 0 ? "<none>" : shown, age(e, now)];
}

function sliceRow(s: KObject, now: number): unknown[] {
  const ports = arr(s.ports).map((p) => String(p.port));
  const eps = arr(s.endpoints).flatMap((e) => (Array.isArray(e.addresses) ? (e.addresses as string[]) : []));
  const shown = eps.slice(0, 3).join(",") + (eps.length > 3 ? ` + ${eps.length - 3} more...` : "");
  return [
    s.metadata.name,
    s.addressType ?? "",
    ports.length === 0 ? "<unset>" : ports.join(","),
    eps.length === 0 ? "<unset>" : shown,
    age(s, now),
  ];
}

interface TableSpec {
  columns: TableColumn[];
  row(o: KObject, now: number): unknown[];
}

const NAME = { ...col("Name"), format: "name" };

const SPECS: Record<string, TableSpec> = {
  Pod: {
    columns: [
      NAME,
      col("Ready"),
      col("Status"),
      col("Restarts", "string"),
      col("Age"),
      col("IP", "string", 1),
      col("Node", "string", 1),
      col("Nominated Node", "string", 1),
      col("Readiness Gates", "string", 1),
    ],
    row: podRow,
  },
  Service: {
    columns: [
      NAME,
      col("Type"),
      col("Cluster-IP"),
      col("External-IP"),
      col("Port(s)"),
      col("Age"),
      col("Selector", "string", 1),
    ],
    row: serviceRow,
  },
  Namespace: {
    columns: [NAME, col("Status"), col("Age")],
    row: (n, now) => [
      n.metadata.name,
      (isObj(n.status) ? n.status.phase : undefined) ?? "Active",
      age(n, now),
    ],
  },
  Node: {
    columns: [
      NAME,
      col("Status"),
      col("Roles"),
      col("Age"),
      col("Version"),
      col("Internal-IP", "string", 1),
      col("External-IP", "string", 1),
      col("OS-Image", "string", 1),
      col("Kernel-Version", "string", 1),
      col("Container-Runtime", "string", 1),
    ],
    row: nodeRow,
  },
  ConfigMap: {
    columns: [NAME, col("Data", "integer"), col("Age")],
    row: (c, now) => [
      c.metadata.name,
      Object.keys(isObj(c.data) ? c.data : {}).length +
        Object.keys(isObj(c.binaryData) ? c.binaryData : {}).length,
      age(c, now),
    ],
  },
  Endpoints: { columns: [NAME, col("Endpoints"), col("Age")], row: endpointsRow },
  EndpointSlice: {
    columns: [NAME, col("AddressType"), col("Ports"), col("Endpoints"), col("Age")],
    row: sliceRow,
  },
  Lease: {
    columns: [NAME, col("Holder"), col("Age")],
    row: (l, now) => [
      l.metadata.name,
      (isObj(l.spec) ? l.spec.holderIdentity : undefined) ?? "",
      age(l, now),
    ],
  },
  Event: {
    columns: [col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Message")],
    row: (e, now) => {
      const io = isObj(e.involvedObject) ? e.involvedObject : {};
      const last = typeof e.lastTimestamp === "string" ? e.lastTimestamp : e.metadata.creationTimestamp;
      return [
        last ? humanDuration(now - Date.parse(last)) : "<unknown>",
        e.type ?? "",
        e.reason ?? "",
        `${String(io.kind ?? "").toLowerCase()}/${String(io.name ?? "")}`,
        e.message ?? "",
      ];
    },
  },
};

function rowObject(o: KObject, include: IncludeObject): unknown {
  if (include === "None") return undefined;
  if (include === "Object") return o;
  return { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata };
}

/** Render objects as a Table; `withColumns` false omits columnDefinitions (later watch events). */
export function toTable(
  r: ResourceInfo,
  objects: KObject[],
  opts: {
    now: number;
    include: IncludeObject;
    resourceVersion?: string;
    continue?: string;
    withColumns?: boolean;
  },
): Record<string, unknown> {
  const spec = SPECS[r.kind] ?? {
    columns: [NAME, col("Age")],
    row: (o: KObject, now: number) => [o.metadata.name, age(o, now)],
  };
  const metadata: Record<string, unknown> = {};
  if (opts.resourceVersion !== undefined) metadata.resourceVersion = opts.resourceVersion;
  if (opts.continue) metadata.continue = opts.continue;
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata,
    columnDefinitions: opts.withColumns === false ? null : spec.columns,
    rows: objects.map((o) => {
      const row: Record<string, unknown> = { cells: spec.row(o, opts.now) };
      const obj = rowObject(o, opts.include);
      if (obj !== undefined) row.object = obj;
      return row;
    }),
  };
}
