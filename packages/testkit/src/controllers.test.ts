import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "./index.js";
import type { KObject } from "./store.js";

let server: TestApiServer;
beforeAll(async () => {
  server = await TestApiServer.start({
    tls: false,
    serviceCidr: "10.0.0.0/29",
    nodePortRange: [30000, 30002],
  });
});
afterAll(async () => {
  await server?.close();
});

const slicesOf = (svc: string, ns = "default"): KObject[] =>
  server.list("discovery.k8s.io/v1", "EndpointSlice", {
    namespace: ns,
    labelSelector: `kubernetes.io/service-name=${svc}`,
  }).items;

function pod(
  name: string,
  opts: {
    ready?: boolean;
    ip?: string;
    node?: string;
    portName?: string;
    port?: number;
    labels?: Record<string, string>;
  } = {},
): KObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: opts.labels ?? { app: "web" } },
    spec: {
      ...(opts.node ? { nodeName: opts.node } : {}),
      containers: [
        {
          name: "c",
          image: "img:1",
          ports: [{ name: opts.portName ?? "http", containerPort: opts.port ?? 8080 }],
        },
      ],
    },
    status: {
      phase: "Running",
      ...(opts.ip ? { podIP: opts.ip } : {}),
      conditions: [{ type: "Ready", status: opts.ready === false ? "False" : "True" }],
    },
  };
}

describe("ClusterIP and NodePort allocation", () => {
  it("allocates from the CIDR, rejects taken or out-of-range IPs, and frees on delete", () => {
    // 10.0.0.0/29: .1 is the kubernetes service, .2-.6 are free.
    const kube = server.get("v1", "Service", "default", "kubernetes") as unknown as {
      spec: { clusterIP: string };
    };
    expect(kube.spec.clusterIP).toBe("10.0.0.1");
    const mk = (name: string, spec: Record<string, unknown> = {}) =>
      server.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace: "default" },
        spec: { ports: [{ port: 80 }], ...spec },
      }) as KObject & { spec: any };
    const a = mk("a");
    expect(a.spec.clusterIP).toBe("10.0.0.2");
    expect(() => mk("dup", { clusterIP: "10.0.0.2" })).toThrow(/already allocated/);
    expect(() => mk("out", { clusterIP: "10.1.0.9" })).toThrow(/not in the valid range/);
    const fixed = mk("fixed", { clusterIP: "10.0.0.6" });
    expect(fixed.spec.clusterIP).toBe("10.0.0.6");
    const headless = mk("headless", { clusterIP: "None" });
    expect(headless.spec.clusterIPs).toEqual(["None"]);
    mk("b");
    mk("c");
    mk("d");
    expect(() => mk("full")).toThrow(/range is full/);
    server.delete("v1", "Service", "default", "b");
    expect(mk("reuse").spec.clusterIP).toBe("10.0.0.3");
    for (const n of ["a", "fixed", "headless", "c", "d", "reuse"])
      server.delete("v1", "Service", "default", n);
  });

  it("allocates node ports in range, keeps them on update, rejects conflicts, and releases on type change", () => {
    const np = server.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "np", namespace: "default" },
      spec: {
        type: "NodePort",
        ports: [
          { name: "a", port: 80 },
          { name: "b", port: 81, nodePort: 30002 },
        ],
      },
    }) as KObject & { spec: any };
    expect(np.spec.ports.map((p: { nodePort: number }) => p.nodePort)).toEqual([30000, 30002]);
    expect(np.spec.externalTrafficPolicy).toBe("Cluster");
    expect(() =>
      server.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "np2", namespace: "default" },
        spec: { type: "NodePort", ports: [{ port: 80, nodePort: 30002 }] },
      }),
    ).toThrow(/provided port is already allocated/);
    expect(() =>
      server.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "np3", namespace: "default" },
        spec: { type: "NodePort", ports: [{ port: 80, nodePort: 31000 }] },
      }),
    ).toThrow(/not in the valid range/);
    // An update that omits nodePorts keeps the allocated ones (like kubectl apply does).
    const upd = server.patch("v1", "Service", "default", "np", {
      spec: {
        ports: [
          { name: "a", port: 80 },
          { name: "b", port: 81 },
        ],
      },
    }) as KObject & { spec: any };
    expect(upd.spec.ports.map((p: { nodePort: number }) => p.nodePort)).toEqual([30000, 30002]);
    server.patch("v1", "Service", "default", "np", { spec: { type: "ClusterIP" } });
    const again = server.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "np4", namespace: "default" },
      spec: { type: "NodePort", ports: [{ port: 80, nodePort: 30002 }] },
    }) as KObject & { spec: any };
    expect(again.spec.ports[0].nodePort).toBe(30002);
    server.delete("v1", "Service", "default", "np");
    server.delete("v1", "Service", "default", "np4");
  });

  it("clusterIP is immutable", () => {
    server.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "imm", namespace: "default" },
      spec: { ports: [{ port: 80 }] },
    });
    expect(() =>
      server.patch("v1", "Service", "default", "imm", { spec: { clusterIP: "10.0.0.5" } }),
    ).toThrow(/may not change once set/);
    server.delete("v1", "Service", "default", "imm");
  });
});

describe("EndpointSlice controller", () => {
  it("turns selected pods into a slice with resolved ports, conditions, nodeName and zone", () => {
    server.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1", labels: { "topology.kubernetes.io/zone": "zone-a" } },
    });
    server.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "default" },
      spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
    });
    expect(slicesOf("web")).toHaveLength(1);
    expect(slicesOf("web")[0]!.endpoints).toEqual([]);
    server.create(pod("ready", { ip: "10.244.0.1", node: "n1" }));
    server.create(pod("notready", { ip: "10.244.0.2", ready: false }));
    server.create(pod("noip"));
    server.create(pod("other", { ip: "10.244.0.3", labels: { app: "other" } }));
    const slices = slicesOf("web");
    expect(slices).toHaveLength(1);
    const s = slices[0]! as KObject & { endpoints: any[]; ports: unknown[] };
    expect(s.metadata.labels).toMatchObject({
      "kubernetes.io/service-name": "web",
      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    });
    expect(s.metadata.ownerReferences?.[0]).toMatchObject({ kind: "Service", name: "web", controller: true });
    expect(s.ports).toEqual([{ name: "http", protocol: "TCP", port: 8080 }]);
    const byName = Object.fromEntries(s.endpoints.map((e) => [e.targetRef.name, e]));
    expect(Object.keys(byName).sort()).toEqual(["notready", "ready"]);
    expect(byName.ready).toMatchObject({
      addresses: ["10.244.0.1"],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: "n1",
      zone: "zone-a",
    });
    expect(byName.notready.conditions).toEqual({ ready: false, serving: false, terminating: false });
  });

  it("marks terminating pods, groups pods by resolved port, and removes slices with the service", () => {
    server.patch("v1", "Pod", "default", "ready", { metadata: { finalizers: ["example.com/hold"] } });
    server.delete("v1", "Pod", "default", "ready");
    const ep = (slicesOf("web")[0] as any).endpoints.find((e: any) => e.targetRef.name === "ready");
    expect(ep.conditions).toEqual({ ready: false, serving: true, terminating: true });
    server.create(pod("alt", { ip: "10.244.0.9", port: 9090 }));
    const slices = slicesOf("web") as any[];
    expect(slices).toHaveLength(2);
    expect(slices.map((x) => x.ports[0].port).sort()).toEqual([8080, 9090]);
    server.patch("v1", "Pod", "default", "ready", { metadata: { finalizers: null } });
    server.delete("v1", "Service", "default", "web");
    expect(slicesOf("web")).toEqual([]);
  });
});
