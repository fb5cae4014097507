import { isKproxyError, type KproxyError } from "@kproxy/core";
import { describe, expect, it } from "vitest";
import { node, pod, slice, svc } from "./fixtures.test-helpers.js";
import {
  checkProxyableHost,
  isProxyableIP,
  lookupService,
  resolveNode,
  resolvePod,
  resolveService,
  splitSchemeNamePort,
} from "./resolve.js";
import { ChangeTracker, type Snapshot } from "./snapshot.js";
import { backoffDelayMs } from "./watcher.js";

function caught(fn: () => unknown): KproxyError {
  try {
    fn();
  } catch (err) {
    if (isKproxyError(err)) return err;
    throw err;
  }
  throw new Error("expected a KproxyError");
}

async function caughtAsync(fn: () => Promise<unknown>): Promise<KproxyError> {
  try {
    await fn();
  } catch (err) {
    if (isKproxyError(err)) return err;
    throw err;
  }
  throw new Error("expected a KproxyError");
}

function cluster(): Snapshot {
  const t = new ChangeTracker();
  t.upsert(
    "Service",
    svc("web", [
      { name: "http", port: 80, targetPort: "http" },
      { name: "metrics", port: 9100 },
    ]),
  );
  t.upsert(
    "EndpointSlice",
    slice(
      "web-1",
      "web",
      [
        { name: "http", port: 8080 },
        { name: "metrics", port: 9100 },
      ],
      [{ ip: "10.0.0.1" }, { ip: "10.0.0.2", ready: false, serving: true, terminating: true }],
    ),
  );
  t.upsert("Service", svc("single", [{ port: 80, targetPort: 8000 }]));
  t.upsert("EndpointSlice", slice("single-x", "single", [{ name: "", port: 8000 }], [{ ip: "10.0.1.1" }]));
  t.upsert("Service", svc("empty", [{ name: "http", port: 80 }]));
  t.upsert("Service", svc("down", [{ name: "http", port: 80 }]));
  t.upsert(
    "EndpointSlice",
    slice("down-1", "down", [{ name: "http", port: 80 }], [{ ip: "10.0.2.1", ready: false }]),
  );
  // Dual-stack: the Service's primary family is IPv6.
  t.upsert("Service", svc("dual", [{ name: "", port: 80 }], { ipFamilies: ["IPv6", "IPv4"] }));
  t.upsert("EndpointSlice", slice("dual-v4", "dual", [{ name: "", port: 80 }], [{ ip: "10.0.3.1" }]));
  t.upsert(
    "EndpointSlice",
    slice("dual-v6", "dual", [{ name: "", port: 80 }], [{ ip: "fd00::1" }], { addressType: "IPv6" }),
  );
  t.upsert("Pod", pod("api", ["10.0.0.1", "fd00::1"], [[], [{ name: "http", containerPort: 8080 }]]));
  t.upsert("Pod", pod("noport", ["fd00::7"]));
  t.upsert("Pod", pod("hostnet-lo", ["127.0.0.1"]));
  t.upsert("Pod", pod("pending", []));
  t.upsert(
    "Node",
    node(
      "n1",
      [
        ["InternalIP", "10.1.0.1"],
        ["Hostname", "n1.example"],
      ],
      { kubeletPort: 10255 },
    ),
  );
  t.upsert("Node", node("bare", [["ExternalIP", "203.0.113.9"]]));
  t.upsert(
    "Node",
    node("none", [
      ["InternalIP", "10.1.0.2"],
      ["ExternalIP", "203.0.113.2"],
    ]),
  );
  return t.snapshot();
}

describe("splitSchemeNamePort", () => {
  it("splits name, name:port and scheme:name:port", () => {
    expect(splitSchemeNamePort("web")).toEqual({ scheme: "", name: "web", port: "" });
    expect(splitSchemeNamePort("web:8080")).toEqual({ scheme: "", name: "web", port: "8080" });
    expect(splitSchemeNamePort("https:web:metrics")).toEqual({
      scheme: "https",
      name: "web",
      port: "metrics",
    });
    expect(splitSchemeNamePort("https:web:")).toEqual({ scheme: "https", name: "web", port: "" });
  });

  it("rejects an empty name, a bad scheme or too many parts with 400 invalid <kind> request", () => {
    for (const [id, kind] of [
      [":80", "service"],
      ["ftp:web:80", "pod"],
      ["a:b:c:d", "node"],
    ] as const) {
      const err = caught(() => splitSchemeNamePort(id, kind));
      expect(err.code).toBe("INVALID_PROXY_ID");
      expect(err.message).toBe(`invalid ${kind} request "${id}"`);
      expect(err.details).toMatchObject({ status: 400, reason: "BadRequest" });
    }
  });
});

describe("service resolution", () => {
  const s = cluster();

  it("resolves a port name to a ready endpoint and the slice's port", () => {
    const r = resolveService(s, "default", "web", "http");
    expect(r).toMatchObject({ host: "10.0.0.1:8080", portName: "http" });
    expect(r.endpoint.ready).toBe(true);
  });

  it("maps a port number to the service port's name (the service port, not the targetPort)", () => {
    expect(lookupService(s, "default", "web", "80").portName).toBe("http");
    expect(lookupService(s, "default", "web", 9100).candidates.map((e) => e.port)).toEqual([9100]);
    const err = caught(() => lookupService(s, "default", "web", "8080"));
    expect(err.code).toBe("SERVICE_PORT_NOT_FOUND");
    expect(err.message).toBe('no service port 8080 found for service "web"');
    expect(err.details).toMatchObject({ status: 503, reason: "ServiceUnavailable" });
  });

  it("an empty port means the unnamed port only", () => {
    expect(resolveService(s, "default", "single").host).toBe("10.0.1.1:8000");
    expect(resolveService(s, "default", "single", "80").host).toBe("10.0.1.1:8000");
    const err = caught(() => lookupService(s, "default", "web", ""));
    expect(err.message).toBe('no endpoints available for service "web"');
  });

  it("a numeric port needs the Service: 404 services not found", () => {
    const err = caught(() => lookupService(s, "default", "nope", "80"));
    expect(err.code).toBe("SERVICE_NOT_FOUND");
    expect(err.message).toBe('services "nope" not found');
    expect(err.details).toEqual({ status: 404, reason: "NotFound", kind: "services", name: "nope" });
  });

  it("no slices: 503 quoting the name; no ready endpoint on the port: 503 quoting the full id", () => {
    const none = caught(() => lookupService(s, "default", "empty", "http", { id: "https:empty:http" }));
    expect(none.code).toBe("NO_ENDPOINTS");
    expect(none.message).toBe('no endpoints available for service "empty"');
    expect(none.details).toMatchObject({ status: 503, reason: "ServiceUnavailable" });
    const down = caught(() => lookupService(s, "default", "down", "http", { id: "https:down:http" }));
    expect(down.message).toBe('no endpoints available for service "https:down:http"');
    const wrongName = caught(() => lookupService(s, "default", "web", "nope"));
    expect(wrongName.message).toBe('no endpoints available for service "web:nope"');
    expect(caught(() => lookupService(s, "other", "web", "http")).code).toBe("NO_ENDPOINTS");
  });

  it("never picks a not-ready endpoint, whatever the random source says", () => {
    for (const r of [0, 0.5, 0.999999])
      expect(resolveService(s, "default", "web", "http", { random: () => r }).host).toBe("10.0.0.1:8080");
  });

  it("prefers endpoints of the Service's primary IP family", () => {
    const hosts = new Set(
      [0, 0.3, 0.6, 0.99].map((r) => resolveService(s, "default", "dual", "", { random: () => r }).host),
    );
    expect([...hosts]).toEqual(["[fd00::1]:80"]);
  });
});

describe("pod resolution", () => {
  const s = cluster();

  it("uses the first pod IP and the first port of the first container that declares one", () => {
    expect(resolvePod(s, "default", "api")).toMatchObject({
      address: "10.0.0.1",
      port: "8080",
      host: "10.0.0.1:8080",
    });
  });

  it("uses a requested port as given, named ports unresolved", () => {
    expect(resolvePod(s, "default", "api", "9000").host).toBe("10.0.0.1:9000");
    expect(resolvePod(s, "default", "api", "http").host).toBe("10.0.0.1:http");
  });

  it("brackets an IPv6 pod IP, with or without a port", () => {
    expect(resolvePod(s, "default", "noport")).toMatchObject({ port: "", host: "[fd00::7]" });
    expect(resolvePod(s, "default", "noport", "80").host).toBe("[fd00::7]:80");
  });

  it("refuses loopback or missing pod IPs with 400 address not allowed, and unknown pods with 404", () => {
    for (const name of ["hostnet-lo", "pending"]) {
      const err = caught(() => resolvePod(s, "default", name));
      expect(err.code).toBe("ADDRESS_NOT_ALLOWED");
      expect(err.message).toBe("address not allowed");
      expect(err.details).toMatchObject({ status: 400, reason: "BadRequest" });
    }
    const err = caught(() => resolvePod(s, "default", "ghost"));
    expect(err.message).toBe('pods "ghost" not found');
    expect(err.details).toMatchObject({ status: 404, kind: "pods", name: "ghost" });
  });
});

describe("node resolution", () => {
  const s = cluster();

  it("picks the address by type preference and the kubelet port from daemonEndpoints", () => {
    expect(resolveNode(s, "n1")).toMatchObject({
      address: "n1.example",
      addressType: "Hostname",
      kubeletPort: 10255,
      kubelet: true,
      scheme: "https",
      host: "n1.example:10255",
    });
    const r = resolveNode(s, "n1", "", { preferredAddressTypes: ["InternalIP", "ExternalIP", "Hostname"] });
    expect(r.host).toBe("10.1.0.1:10255");
    expect(resolveNode(s, "bare").host).toBe("203.0.113.9:10250");
  });

  it("goes to the kubelet (https) for no port or the kubelet port, else to the port with the requested scheme", () => {
    expect(resolveNode(s, "n1", "10255", { scheme: "http" })).toMatchObject({
      kubelet: true,
      scheme: "https",
    });
    expect(resolveNode(s, "n1", "9100")).toMatchObject({ kubelet: false, scheme: "http", port: "9100" });
    expect(resolveNode(s, "n1", "9100", { scheme: "https" }).scheme).toBe("https");
  });

  it("fails like the API server when no address has a preferred type or the node is unknown", () => {
    const err = caught(() => resolveNode(s, "none", "", { preferredAddressTypes: ["Hostname"] }));
    expect(err.code).toBe("NO_PREFERRED_ADDRESS");
    expect(err.message).toBe(
      "no preferred addresses found; known addresses: [{InternalIP 10.1.0.2} {ExternalIP 203.0.113.2}]",
    );
    expect(err.details).toMatchObject({ status: 500, reason: "" });
    expect(caught(() => resolveNode(s, "ghost")).message).toBe('nodes "ghost" not found');
  });
});

describe("proxyable addresses", () => {
  it("allows global unicast (private ranges included) and refuses the rest, like Go's IsGlobalUnicast", () => {
    const allowed = [
      "10.0.0.1",
      "192.168.1.1",
      "8.8.8.8",
      "0.0.0.1",
      "fd00::1",
      "2001:db8::1",
      "::ffff:10.0.0.1",
    ];
    const refused = [
      "127.0.0.1",
      "0.0.0.0",
      "169.254.1.1",
      "224.0.0.1",
      "255.255.255.255",
      "::",
      "::1",
      "fe80::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "not-an-ip",
      "",
    ];
    for (const ip of allowed) expect(isProxyableIP(ip), ip).toBe(true);
    for (const ip of refused) expect(isProxyableIP(ip), ip).toBe(false);
  });

  it("checks every address a node hostname resolves to", async () => {
    const lookup = async (host: string) =>
      host === "good"
        ? [{ address: "10.0.0.1" }]
        : host === "mixed"
          ? [{ address: "10.0.0.1" }, { address: "127.0.0.1" }]
          : [];
    await expect(checkProxyableHost("good", { lookup })).resolves.toBeUndefined();
    expect((await caughtAsync(() => checkProxyableHost("mixed", { lookup }))).message).toBe(
      "address not allowed",
    );
    expect((await caughtAsync(() => checkProxyableHost("empty", { lookup }))).message).toBe(
      "no addresses for hostname",
    );
    const failing = async () => {
      throw new Error("getaddrinfo ENOTFOUND x");
    };
    const err = await caughtAsync(() => checkProxyableHost("x", { lookup: failing }));
    expect(err.details).toMatchObject({ status: 400 });
    expect(err.message).toContain("ENOTFOUND");
    expect((await caughtAsync(() => checkProxyableHost("::1"))).message).toBe("address not allowed");
  });
});

describe("backoffDelayMs", () => {
  it("grows exponentially up to the cap, with jitter on top", () => {
    const b = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelayMs(n, b, () => 0))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffDelayMs(1, b, () => 1)).toBe(300);
    expect(backoffDelayMs(10, b, () => 1)).toBe(1500);
  });
});
