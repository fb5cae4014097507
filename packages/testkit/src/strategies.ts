/** Per-kind defaulting, validation and allocation, as the real API server's registry strategies. */
import type { IpAllocator, PortAllocator } from "./allocators.js";
import { invalid } from "./status.js";
import type { KindHooks, KObject, Store } from "./store.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

interface ServicePort {
  name?: string;
  protocol?: string;
  port?: number;
  targetPort?: number | string;
  nodePort?: number;
  [k: string]: unknown;
}

interface Cause {
  field: string;
  message: string;
  reason?: string;
}

function fail(obj: KObject, causes: Cause[]): never {
  throw invalid(obj.kind, "", obj.metadata.name ?? "", causes);
}

function needsNodePorts(spec: Obj): boolean {
  return (
    spec.type === "NodePort" || (spec.type === "LoadBalancer" && spec.allocateLoadBalancerNodePorts !== false)
  );
}

function serviceIp(spec: Obj): string | undefined {
  const ip = spec.clusterIP;
  return typeof ip === "string" && ip !== "" && ip !== "None" ? ip : undefined;
}

function nodePortsOf(spec: Obj | undefined): number[] {
  if (!spec) return [];
  const out: number[] = [];
  for (const p of (Array.isArray(spec.ports) ? spec.ports : []) as ServicePort[])
    if (typeof p.nodePort === "number") out.push(p.nodePort);
  if (typeof spec.healthCheckNodePort === "number") out.push(spec.healthCheckNodePort);
  return out;
}

export function serviceHooks(ips: IpAllocator, nodePorts: PortAllocator): KindHooks {
  const defaultAndValidate = (svc: KObject, old: KObject | undefined): void => {
    if (!isObj(svc.spec)) svc.spec = {};
    const spec = svc.spec as Obj;
    const oldSpec = old && isObj(old.spec) ? (old.spec as Obj) : undefined;
    spec.type ??= "ClusterIP";
    const causes: Cause[] = [];
    if (!["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].includes(spec.type as string))
      causes.push({
        field: "spec.type",
        message: `Unsupported value: "${String(spec.type)}": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`,
        reason: "FieldValueNotSupported",
      });
    const external = spec.type === "ExternalName";
    if (external && typeof spec.externalName !== "string")
      causes.push({ field: "spec.externalName", message: "Required value", reason: "FieldValueRequired" });
    spec.sessionAffinity ??= "None";
    if (!Array.isArray(spec.ports)) spec.ports = [];
    const ports = spec.ports as ServicePort[];
    const headless = spec.clusterIP === "None";
    if (ports.length === 0 && !headless && !external)
      causes.push({ field: "spec.ports", message: "Required value", reason: "FieldValueRequired" });
    const names = new Set<string>();
    ports.forEach((p, i) => {
      if (!isObj(p)) {
        causes.push({ field: `spec.ports[${i}]`, message: "Invalid value: must be an object" });
        return;
      }
      p.protocol ??= "TCP";
      if (!["TCP", "UDP", "SCTP"].includes(p.protocol))
        causes.push({
          field: `spec.ports[${i}].protocol`,
          message: `Unsupported value: "${p.protocol}"`,
          reason: "FieldValueNotSupported",
        });
      if (!Number.isInteger(p.port) || p.port! < 1 || p.port! > 65535)
        causes.push({
          field: `spec.ports[${i}].port`,
          message: `Invalid value: ${JSON.stringify(p.port)}: must be between 1 and 65535, inclusive`,
        });
      if (ports.length > 1 && !p.name)
        causes.push({
          field: `spec.ports[${i}].name`,
          message: "Required value",
          reason: "FieldValueRequired",
        });
      if (p.name) {
        if (names.has(p.name))
          causes.push({
            field: `spec.ports[${i}].name`,
            message: `Duplicate value: "${p.name}"`,
            reason: "FieldValueDuplicate",
          });
        names.add(p.name);
      }
      if (!external) p.targetPort ??= p.port;
      if (!needsNodePorts(spec)) delete p.nodePort;
    });
    if (causes.length > 0) fail(svc, causes);
    if (external) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    } else {
      spec.internalTrafficPolicy ??= "Cluster";
      spec.ipFamilies ??= ["IPv4"];
      spec.ipFamilyPolicy ??= "SingleStack";
    }
    if (spec.type === "NodePort" || spec.type === "LoadBalancer") spec.externalTrafficPolicy ??= "Cluster";
    else delete spec.externalTrafficPolicy;
    if (spec.type === "LoadBalancer") spec.allocateLoadBalancerNodePorts ??= true;
    if (!isObj(svc.status)) svc.status = { loadBalancer: {} };

    // ClusterIP: kept across updates (the real server copies the allocated value when unset).
    if (!external) {
      const oldIp = oldSpec ? serviceIp(oldSpec) : undefined;
      if (
        (spec.clusterIP === undefined || spec.clusterIP === "") &&
        oldSpec?.clusterIP !== undefined &&
        oldSpec.type !== "ExternalName"
      )
        spec.clusterIP = oldSpec.clusterIP;
      if (oldSpec && oldSpec.type !== "ExternalName" && spec.clusterIP !== oldSpec.clusterIP)
        fail(svc, [
          {
            field: "spec.clusterIPs[0]",
            message: `Invalid value: ${JSON.stringify(spec.clusterIP)}: may not change once set`,
          },
        ]);
      const ip = spec.clusterIP;
      if (ip === "None") spec.clusterIPs = ["None"];
      else if (typeof ip === "string" && ip !== "") {
        if (ip !== oldIp) {
          if (!ips.contains(ip))
            fail(svc, [
              {
                field: "spec.clusterIPs",
                message: `Invalid value: []string{"${ip}"}: failed to allocate IP ${ip}: provided IP (${ip}) is not in the valid range. The range of valid IPs is ${ips.cidr}`,
              },
            ]);
          if (!ips.allocateSpecific(ip))
            fail(svc, [
              {
                field: "spec.clusterIPs",
                message: `Invalid value: []string{"${ip}"}: failed to allocate IP ${ip}: provided IP is already allocated`,
              },
            ]);
        }
        spec.clusterIPs = [ip];
      } else {
        const got = ips.allocateNext();
        if (!got) fail(svc, [{ field: "spec.clusterIPs", message: "Internal error: range is full" }]);
        spec.clusterIP = got;
        spec.clusterIPs = [got];
      }
    }

    // NodePorts: keep those already allocated for the same port/protocol, allocate the rest.
    const held = new Set(nodePortsOf(oldSpec));
    const taken: number[] = [];
    const undo = (): void => {
      for (const p of taken) nodePorts.release(p);
      const ip = serviceIp(spec);
      if (ip && ip !== (oldSpec ? serviceIp(oldSpec) : undefined)) ips.release(ip);
    };
    if (needsNodePorts(spec)) {
      const oldPorts = (oldSpec && Array.isArray(oldSpec.ports) ? oldSpec.ports : []) as ServicePort[];
      for (const [i, p] of ports.entries()) {
        if (p.nodePort === undefined || p.nodePort === 0) {
          const prev = oldPorts.find((o) => o.port === p.port && (o.protocol ?? "TCP") === p.protocol);
          if (prev?.nodePort !== undefined && held.has(prev.nodePort)) p.nodePort = prev.nodePort;
        }
        if (typeof p.nodePort === "number" && p.nodePort !== 0) {
          if (held.has(p.nodePort) || taken.includes(p.nodePort)) continue;
          if (!nodePorts.contains(p.nodePort)) {
            undo();
            fail(svc, [
              {
                field: `spec.ports[${i}].nodePort`,
                message: `Invalid value: ${p.nodePort}: provided port is not in the valid range. The range of valid ports is ${nodePorts.min}-${nodePorts.max}`,
              },
            ]);
          }
          if (!nodePorts.allocateSpecific(p.nodePort)) {
            undo();
            fail(svc, [
              {
                field: `spec.ports[${i}].nodePort`,
                message: `Invalid value: ${p.nodePort}: provided port is already allocated`,
              },
            ]);
          }
          taken.push(p.nodePort);
        } else {
          const got = nodePorts.allocateNext();
          if (got === undefined) {
            undo();
            fail(svc, [{ field: `spec.ports[${i}].nodePort`, message: "Internal error: range is full" }]);
          }
          p.nodePort = got;
          taken.push(got);
        }
      }
    }
    if (spec.type === "LoadBalancer" && spec.externalTrafficPolicy === "Local") {
      if (typeof spec.healthCheckNodePort !== "number") {
        const prev = oldSpec?.healthCheckNodePort;
        if (typeof prev === "number") spec.healthCheckNodePort = prev;
        else {
          const got = nodePorts.allocateNext();
          if (got !== undefined) spec.healthCheckNodePort = got;
        }
      } else if (
        !held.has(spec.healthCheckNodePort) &&
        !nodePorts.allocateSpecific(spec.healthCheckNodePort)
      ) {
        undo();
        fail(svc, [
          {
            field: "spec.healthCheckNodePort",
            message: `Invalid value: ${spec.healthCheckNodePort}: provided port is already allocated`,
          },
        ]);
      }
    } else delete spec.healthCheckNodePort;
  };
  return {
    prepareCreate: (svc) => {
      if (isObj(svc.spec)) delete (svc.spec as Obj).clusterIPs;
      defaultAndValidate(svc, undefined);
    },
    prepareUpdate: (svc, old) => defaultAndValidate(svc, old),
    release: (gone, kept) => {
      const spec = isObj(gone.spec) ? (gone.spec as Obj) : {};
      const keptSpec = kept && isObj(kept.spec) ? (kept.spec as Obj) : undefined;
      const ip = serviceIp(spec);
      if (ip && (!keptSpec || serviceIp(keptSpec) !== ip)) ips.release(ip);
      const keep = new Set(nodePortsOf(keptSpec));
      for (const p of nodePortsOf(spec)) if (!keep.has(p)) nodePorts.release(p);
    },
  };
}

function defaultContainer(c: Obj): void {
  c.terminationMessagePath ??= "/dev/termination-log";
  c.terminationMessagePolicy ??= "File";
  if (c.imagePullPolicy === undefined && typeof c.image === "string") {
    const tag = c.image.includes("@") ? "digest" : (c.image.split("/").pop() ?? "").split(":")[1];
    c.imagePullPolicy = tag === undefined || tag === "latest" ? "Always" : "IfNotPresent";
  }
  c.resources ??= {};
  if (Array.isArray(c.ports)) for (const p of c.ports) if (isObj(p)) p.protocol ??= "TCP";
}

export function podHooks(): KindHooks {
  return {
    prepareCreate: (pod) => {
      if (!isObj(pod.spec)) pod.spec = {};
      const spec = pod.spec as Obj;
      const containers = Array.isArray(spec.containers) ? (spec.containers as Obj[]) : [];
      const causes: Cause[] = [];
      if (containers.length === 0)
        causes.push({ field: "spec.containers", message: "Required value", reason: "FieldValueRequired" });
      containers.forEach((c, i) => {
        if (!isObj(c) || typeof c.name !== "string" || c.name === "")
          causes.push({
            field: `spec.containers[${i}].name`,
            message: "Required value",
            reason: "FieldValueRequired",
          });
        if (!isObj(c) || typeof c.image !== "string" || c.image === "")
          causes.push({
            field: `spec.containers[${i}].image`,
            message: "Required value",
            reason: "FieldValueRequired",
          });
      });
      if (causes.length > 0) fail(pod, causes);
      for (const c of containers) defaultContainer(c);
      spec.restartPolicy ??= "Always";
      spec.terminationGracePeriodSeconds ??= 30;
      spec.dnsPolicy ??= "ClusterFirst";
      spec.serviceAccountName ??= "default";
      spec.schedulerName ??= "default-scheduler";
      spec.securityContext ??= {};
      spec.enableServiceLinks ??= true;
      spec.priority ??= 0;
      spec.preemptionPolicy ??= "PreemptLowerPriority";
      // Deviation from the real server, for tests: a status given on create is kept.
      if (!isObj(pod.status)) pod.status = {};
      const status = pod.status as Obj;
      status.phase ??= "Pending";
      status.qosClass ??= "BestEffort";
    },
    prepareUpdate: (pod, old) => {
      const strip = (s: unknown): string => {
        if (!isObj(s)) return JSON.stringify(s);
        const c = structuredClone(s);
        for (const k of ["containers", "initContainers"])
          if (Array.isArray(c[k])) for (const x of c[k] as Obj[]) if (isObj(x)) delete x.image;
        delete c.activeDeadlineSeconds;
        delete c.tolerations;
        delete c.terminationGracePeriodSeconds;
        return JSON.stringify(c);
      };
      if (isObj(pod.spec)) {
        for (const k of ["containers", "initContainers"]) {
          const list = (pod.spec as Obj)[k];
          if (Array.isArray(list)) for (const c of list) if (isObj(c)) defaultContainer(c);
        }
      }
      if (strip(pod.spec) !== strip(old.spec))
        fail(pod, [
          {
            field: "spec",
            message:
              "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            reason: "FieldValueForbidden",
          },
        ]);
    },
  };
}

export function namespaceHooks(): KindHooks {
  const apply = (ns: KObject): void => {
    ns.metadata.labels = { ...(ns.metadata.labels ?? {}), "kubernetes.io/metadata.name": ns.metadata.name! };
    if (!isObj(ns.spec)) ns.spec = {};
    (ns.spec as Obj).finalizers ??= ["kubernetes"];
  };
  return {
    prepareCreate: (ns) => {
      apply(ns);
      ns.status = { phase: "Active" };
    },
    prepareUpdate: (ns) => apply(ns),
  };
}

export function endpointSliceHooks(): KindHooks {
  const check = (s: KObject): void => {
    const t = s.addressType;
    if (t === undefined)
      fail({ ...s, kind: "EndpointSlice.discovery.k8s.io" }, [
        { field: "addressType", message: "Required value", reason: "FieldValueRequired" },
      ]);
    if (!["IPv4", "IPv6", "FQDN"].includes(t as string))
      fail({ ...s, kind: "EndpointSlice.discovery.k8s.io" }, [
        {
          field: "addressType",
          message: `Unsupported value: "${String(t)}"`,
          reason: "FieldValueNotSupported",
        },
      ]);
    if (!Array.isArray(s.endpoints)) s.endpoints = [];
    if (!Array.isArray(s.ports) && s.ports !== undefined) s.ports = [];
  };
  return {
    prepareCreate: check,
    prepareUpdate: (s, old) => {
      check(s);
      if (s.addressType !== old.addressType)
        fail({ ...s, kind: "EndpointSlice.discovery.k8s.io" }, [
          { field: "addressType", message: "Invalid value: field is immutable" },
        ]);
    },
  };
}

export function installHooks(store: Store, ips: IpAllocator, nodePorts: PortAllocator): void {
  store.setHooks("Service", serviceHooks(ips, nodePorts));
  store.setHooks("Pod", podHooks());
  store.setHooks("Namespace", namespaceHooks());
  store.setHooks("EndpointSlice", endpointSliceHooks());
}
