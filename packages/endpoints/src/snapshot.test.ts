import { describe, expect, it } from "vitest";
import { node, pod, slice, svc } from "./fixtures.test-helpers.js";
import { toServiceInfo, toSliceInfo } from "./objects.js";
import {
  ChangeTracker,
  diffSnapshots,
  endpointKey,
  mergeEndpointSlices,
  parseServicePortName,
  servicePortName,
  usableEndpoints,
} from "./snapshot.js";

const addrs = (t: ChangeTracker, name: string, port: string, ns = "default"): string[] =>
  (t.snapshot().endpointSet(ns, name, port)?.endpoints ?? []).map((e) => endpointKey(e));

describe("names", () => {
  it("formats and parses ServicePortNames like kube-proxy, keeping the colon of an unnamed port", () => {
    expect(servicePortName("ns", "web", "http")).toBe("ns/web:http");
    expect(servicePortName("ns", "web", "")).toBe("ns/web:");
    expect(parseServicePortName("ns/web:")).toEqual({ namespace: "ns", service: "web", portName: "" });
    expect(parseServicePortName("ns/web:http")).toEqual({
      namespace: "ns",
      service: "web",
      portName: "http",
    });
    expect(parseServicePortName("web:http")).toBeUndefined();
    expect(endpointKey({ address: "fd00::1", port: 80 })).toBe("[fd00::1]:80");
  });
});

describe("mergeEndpointSlices", () => {
  const info = (o: Parameters<typeof toSliceInfo>[0]) => toSliceInfo(o)!;

  it("merges every slice of a service, each endpoint taking its own slice's port, sorted by address:port", () => {
    const a = info(
      slice("web-a", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.2" }, { ip: "10.0.0.1" }]),
    );
    const b = info(slice("web-b", "web", [{ name: "http", port: 9090 }], [{ ip: "10.0.0.3" }]));
    const sets = mergeEndpointSlices("default", "web", [b, a]);
    const set = sets.get("http")!;
    expect(set.servicePortName).toBe("default/web:http");
    expect(set.endpoints.map(endpointKey)).toEqual(["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:9090"]);
  });

  it("dedupes an address:port present in two slices, preferring the non-terminating endpoint", () => {
    const old = info(
      slice(
        "web-a",
        "web",
        [{ name: "", port: 80 }],
        [{ ip: "10.0.0.1", ready: false, terminating: true, pod: "old" }],
      ),
    );
    const fresh = info(
      slice("web-b", "web", [{ name: "", port: 80 }], [{ ip: "10.0.0.1", ready: true, pod: "new" }]),
    );
    for (const order of [
      [old, fresh],
      [fresh, old],
    ]) {
      const set = mergeEndpointSlices("default", "web", order).get("")!;
      expect(set.endpoints).toHaveLength(1);
      expect(set.endpoints[0]).toMatchObject({
        address: "10.0.0.1",
        port: 80,
        ready: true,
        terminating: false,
      });
      expect(set.endpoints[0]!.targetRef?.name).toBe("new");
    }
  });

  it("reads conditions like kube-proxy: unset ready/serving mean true, unset terminating means false", () => {
    const s = info(
      slice(
        "x",
        "web",
        [{ name: "p", port: 1 }],
        [
          { ip: "10.0.0.1" },
          { ip: "10.0.0.2", ready: null, serving: null, terminating: null },
          {
            ip: "10.0.0.3",
            ready: false,
            serving: true,
            terminating: true,
            node: "n1",
            zone: "z1",
            zoneHints: ["z1"],
          },
        ],
      ),
    );
    const eps = mergeEndpointSlices("default", "web", [s]).get("p")!.endpoints;
    expect(eps.map((e) => [e.ready, e.serving, e.terminating])).toEqual([
      [true, true, false],
      [true, true, false],
      [false, true, true],
    ]);
    expect(eps[2]).toMatchObject({ nodeName: "n1", zone: "z1", zoneHints: ["z1"], addressType: "IPv4" });
  });

  it("ignores ports without a name or with port 0, endpoints without addresses and unlabelled slices", () => {
    const s = slice(
      "x",
      "web",
      [
        { name: null, port: 80 },
        { name: "zero", port: 0 },
        { name: "nil", port: null },
        { name: "ok", port: 81 },
      ],
      [{ ip: "10.0.0.1" }],
    );
    s.endpoints!.push({ addresses: [], conditions: {} });
    const sets = mergeEndpointSlices("default", "web", [info(s)]);
    expect([...sets.keys()]).toEqual(["ok"]);
    expect(sets.get("ok")!.endpoints).toHaveLength(1);
    expect(
      toSliceInfo(slice("y", undefined, [{ name: "a", port: 1 }], [{ ip: "10.0.0.9" }])),
    ).toBeUndefined();
  });

  it("takes a port name's endpoints from the protocol the Service declares for it", () => {
    const s = info(
      slice(
        "dns",
        "dns",
        [
          { name: "dns", port: 53, protocol: "TCP" },
          { name: "dns", port: 5353, protocol: "UDP" },
        ],
        [{ ip: "10.0.0.1" }],
      ),
    );
    const udpService = svc("dns", [{ name: "dns", port: 53, protocol: "UDP" }]);
    const withService = mergeEndpointSlices("default", "dns", [s], toServiceInfo(udpService)).get("dns")!;
    expect(withService.protocol).toBe("UDP");
    expect(withService.endpoints[0]!.port).toBe(5353);
    expect(mergeEndpointSlices("default", "dns", [s]).get("dns")!.protocol).toBe("TCP");
  });
});

describe("ChangeTracker and snapshots", () => {
  it("a slice replaced by two slices keeps the same endpoints, and reports no change for the service port", () => {
    const t = new ChangeTracker();
    t.upsert("Service", svc("web", [{ name: "http", port: 80 }]));
    t.upsert(
      "EndpointSlice",
      slice("web-1", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }]),
    );
    const before = t.snapshot();
    // Endpoints move into two new slices; for a moment they are in both: still deduplicated.
    const c1 = t.upsert(
      "EndpointSlice",
      slice("web-2", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.1" }]),
    );
    const c2 = t.upsert(
      "EndpointSlice",
      slice("web-3", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.2" }]),
    );
    const c3 = t.delete("EndpointSlice", { metadata: { namespace: "default", name: "web-1" } });
    expect([c1, c2, c3].map((c) => c.servicePorts.size)).toEqual([0, 0, 0]);
    const after = t.snapshot();
    expect(after.sliceNames("default", "web")).toEqual(["web-2", "web-3"]);
    expect(addrs(t, "web", "http")).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    // The EndpointSet did not change, so it is the very same frozen object.
    expect(after.endpointSet("default", "web", "http")).toBe(before.endpointSet("default", "web", "http"));
    expect(diffSnapshots(before, after).servicePorts.size).toBe(0);
  });

  it("reports the service ports whose endpoints change, and snapshots never change afterwards", () => {
    const t = new ChangeTracker();
    t.upsert("Service", svc("web", [{ name: "http", port: 80 }]));
    t.upsert("EndpointSlice", slice("web-1", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.1" }]));
    const s1 = t.snapshot();
    expect(s1.version).toBe(1);
    expect([...s1.changes.servicePorts]).toEqual(["default/web:http"]);

    const change = t.upsert(
      "EndpointSlice",
      slice(
        "web-1",
        "web",
        [{ name: "http", port: 8080 }],
        [{ ip: "10.0.0.1", ready: false, terminating: true }],
        {
          rv: "2",
        },
      ),
    );
    expect([...change.servicePorts]).toEqual(["default/web:http"]);
    expect([...change.services]).toEqual(["default/web"]);
    const s2 = t.snapshot();
    expect(s2.version).toBe(2);
    expect(s1.endpointSet("default", "web", "http")!.endpoints[0]!.ready).toBe(true);
    expect(s2.endpointSet("default", "web", "http")!.endpoints[0]).toMatchObject({
      ready: false,
      terminating: true,
    });

    // Frozen all the way down.
    const set = s2.endpointSet("default", "web", "http")!;
    expect(Object.isFrozen(s2)).toBe(true);
    expect(Object.isFrozen(set.endpoints)).toBe(true);
    expect(Object.isFrozen(set.endpoints[0])).toBe(true);
    expect(() => (set.endpoints as unknown as unknown[]).push({})).toThrow(TypeError);
    expect((s2.endpoints as unknown as { set?: unknown }).set).toBeUndefined();
    expect(Object.isFrozen(s2.service("default", "web")!.ports)).toBe(true);
  });

  it("a no-op update (new resourceVersion, same content) changes nothing and keeps the same snapshot", () => {
    const t = new ChangeTracker();
    t.upsert("Service", svc("web", [{ name: "http", port: 80 }]));
    t.upsert("Node", node("n1", [["InternalIP", "10.1.0.1"]], { heartbeat: "t1" }));
    const s1 = t.snapshot();
    expect(t.upsert("Service", svc("web", [{ name: "http", port: 80 }], { rv: "9" })).empty).toBe(true);
    // A node heartbeat only touches fields that are not tracked.
    expect(t.upsert("Node", node("n1", [["InternalIP", "10.1.0.1"]], { heartbeat: "t2" })).empty).toBe(true);
    expect(t.snapshot()).toBe(s1);
  });

  it("a renamed service port reports the old and the new ServicePortName", () => {
    const t = new ChangeTracker();
    t.upsert("Service", svc("web", [{ name: "http", port: 80 }]));
    t.upsert("EndpointSlice", slice("web-1", "web", [{ name: "http", port: 8080 }], [{ ip: "10.0.0.1" }]));
    t.snapshot();
    t.upsert("Service", svc("web", [{ name: "web", port: 80 }], { rv: "2" }));
    t.upsert(
      "EndpointSlice",
      slice("web-1", "web", [{ name: "web", port: 8080 }], [{ ip: "10.0.0.1" }], { rv: "2" }),
    );
    const s = t.snapshot();
    expect([...s.changes.servicePorts].sort()).toEqual(["default/web:http", "default/web:web"]);
    expect(s.endpointSet("default", "web", "http")).toBeUndefined();
    expect(addrs(t, "web", "web")).toEqual(["10.0.0.1:8080"]);
    expect(s.endpoints.has("default/web:http")).toBe(false);
  });

  it("moves a slice whose service-name label changes from one service to the other", () => {
    const t = new ChangeTracker();
    t.upsert("EndpointSlice", slice("s", "a", [{ name: "", port: 80 }], [{ ip: "10.0.0.1" }]));
    t.snapshot();
    const c = t.upsert(
      "EndpointSlice",
      slice("s", "b", [{ name: "", port: 80 }], [{ ip: "10.0.0.1" }], { rv: "2" }),
    );
    expect([...c.servicePorts].sort()).toEqual(["default/a:", "default/b:"]);
    expect(t.snapshot().sliceNames("default", "a")).toEqual([]);
    expect(addrs(t, "b", "")).toEqual(["10.0.0.1:80"]);
  });

  it("replace() is a relist: objects that are gone are deleted", () => {
    const t = new ChangeTracker();
    t.upsert("EndpointSlice", slice("a", "a", [{ name: "", port: 80 }], [{ ip: "10.0.0.1" }]));
    t.upsert("EndpointSlice", slice("b", "b", [{ name: "", port: 80 }], [{ ip: "10.0.0.2" }]));
    t.snapshot();
    const c = t.replace("EndpointSlice", [slice("b", "b", [{ name: "", port: 80 }], [{ ip: "10.0.0.2" }])]);
    expect([...c.servicePorts]).toEqual(["default/a:"]);
    expect([...t.snapshot().endpoints.keys()]).toEqual(["default/b:"]);
  });

  it("diffSnapshots tells what was added, removed and updated between any two snapshots", () => {
    const t = new ChangeTracker();
    t.upsert("Service", svc("keep", [{ name: "", port: 80 }]));
    t.upsert("Service", svc("gone", [{ name: "", port: 80 }]));
    t.upsert("EndpointSlice", slice("keep", "keep", [{ name: "", port: 80 }], [{ ip: "10.0.0.1" }]));
    t.upsert("Pod", pod("p1", ["10.0.0.1"]));
    const a = t.snapshot();
    t.delete("Service", { metadata: { namespace: "default", name: "gone" } });
    t.upsert("Service", svc("new", [{ name: "dns", port: 53, protocol: "UDP" }]));
    t.upsert(
      "EndpointSlice",
      slice("keep", "keep", [{ name: "", port: 80 }], [{ ip: "10.0.0.2" }], { rv: "2" }),
    );
    t.upsert("Pod", pod("p1", ["10.0.0.9"]));
    t.upsert("Node", node("n1", [["InternalIP", "10.1.0.1"]]));
    const b = t.snapshot();
    const d = diffSnapshots(a, b);
    expect(d.services).toEqual({ added: ["default/new"], removed: ["default/gone"], updated: [] });
    expect(d.endpoints).toEqual({ added: [], removed: [], updated: ["default/keep:"] });
    expect(d.pods.updated).toEqual(["default/p1"]);
    expect(d.nodes.added).toEqual(["n1"]);
    expect([...d.servicePorts].sort()).toEqual(["default/gone:", "default/keep:", "default/new:dns"]);
    expect(d.empty).toBe(false);
    expect(diffSnapshots(b, b).empty).toBe(true);
    // Snapshot b's change set is exactly what happened since a.
    expect([...b.changes.services].sort()).toEqual(["default/gone", "default/keep", "default/new"]);
  });

  it("tracks pods and nodes as the resolvers need them", () => {
    const t = new ChangeTracker();
    t.upsert(
      "Pod",
      pod("p", ["10.0.0.5", "fd00::5"], [[], [{ containerPort: 8080 }, { containerPort: 9090 }]]),
    );
    t.upsert("Node", node("n1", [["Hostname", "n1"]], { kubeletPort: 10255, zone: "z1" }));
    t.upsert("Node", node("n2", [["Hostname", "n2"]]));
    const s = t.snapshot();
    expect(s.pod("default", "p")).toMatchObject({
      podIPs: ["10.0.0.5", "fd00::5"],
      defaultPort: 8080,
      ready: true,
    });
    expect(s.node("n1")).toMatchObject({ kubeletPort: 10255, zone: "z1" });
    expect(s.node("n2")!.kubeletPort).toBe(10250);
  });

  it("usableEndpoints falls back to serving terminating endpoints only when none is ready", () => {
    const t = new ChangeTracker();
    t.upsert(
      "EndpointSlice",
      slice(
        "s",
        "web",
        [{ name: "", port: 80 }],
        [
          { ip: "10.0.0.1", ready: false, serving: true, terminating: true },
          { ip: "10.0.0.2", ready: false, serving: false, terminating: true },
          { ip: "10.0.0.3", ready: true },
        ],
      ),
    );
    expect(usableEndpoints(t.snapshot().endpointSet("default", "web", "")).map((e) => e.address)).toEqual([
      "10.0.0.3",
    ]);
    t.upsert(
      "EndpointSlice",
      slice(
        "s",
        "web",
        [{ name: "", port: 80 }],
        [
          { ip: "10.0.0.1", ready: false, serving: true, terminating: true },
          { ip: "10.0.0.2", ready: false, serving: false, terminating: true },
        ],
        { rv: "2" },
      ),
    );
    expect(usableEndpoints(t.snapshot().endpointSet("default", "web", "")).map((e) => e.address)).toEqual([
      "10.0.0.1",
    ]);
  });
});
