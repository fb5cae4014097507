import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KproxyError } from "@kproxy/core";
import { isKproxyError, ManualClock } from "@kproxy/core";
import type { ClusterConnection } from "@kproxy/kubeconfig";
import { loadConnection } from "@kproxy/kubeconfig";
import { TestApiServer } from "@kproxy/testkit";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ChangeSet, EndpointsWatcherOptions } from "../src/index.js";
import { EndpointsWatcher, endpointKey, usableEndpoints } from "../src/index.js";

const SLICES = "/apis/discovery.k8s.io/v1/endpointslices";

let server: TestApiServer;
let conn: ClusterConnection;
let dir: string;
const watchers: EndpointsWatcher[] = [];
let nsCounter = 0;

beforeAll(async () => {
  server = await TestApiServer.start({ endpointSliceController: false });
  dir = mkdtempSync(join(tmpdir(), "kproxy-endpoints-"));
  await server.writeKubeconfig(join(dir, "config"));
  conn = await loadConnection({ kubeconfig: join(dir, "config"), env: {} });
});

afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
});

afterAll(async () => {
  await conn?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Polls `check` until it returns without throwing (bounded); returns its value. */
async function waitFor<T>(check: () => T, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      return check();
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function watcher(opts: Partial<EndpointsWatcherOptions> = {}): EndpointsWatcher {
  const w = new EndpointsWatcher({
    kubeConfig: conn.kubeConfig,
    backoff: { initialMs: 50, maxMs: 500 },
    ...opts,
  });
  watchers.push(w);
  return w.start();
}

function caught(fn: () => unknown): KproxyError {
  try {
    fn();
  } catch (err) {
    if (isKproxyError(err)) return err;
    throw err;
  }
  throw new Error("expected a KproxyError");
}

function newNamespace(): string {
  const name = `t${++nsCounter}`;
  server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  return name;
}

function createService(ns: string, name: string, ports: Array<{ name: string; port: number }>) {
  return server.create({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns },
    spec: { ports: ports.map((p) => ({ ...p, protocol: "TCP", targetPort: p.port })) },
  });
}

interface Ep {
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

function sliceObject(ns: string, name: string, service: string, portName: string, port: number, eps: Ep[]) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: ns, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ name: portName, port, protocol: "TCP" }],
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      nodeName: "node-a",
      zone: "zone-1",
    })),
  };
}

function putSlice(
  ns: string,
  name: string,
  service: string,
  portName: string,
  port: number,
  eps: Ep[],
): void {
  const obj = sliceObject(ns, name, service, portName, port, eps);
  let existing: { metadata: { resourceVersion?: string } } | undefined;
  try {
    existing = server.get("discovery.k8s.io/v1", "EndpointSlice", ns, name) as typeof existing;
  } catch {
    existing = undefined;
  }
  if (existing)
    server.update({
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: existing.metadata.resourceVersion },
    });
  else server.create(obj);
}

function hosts(w: EndpointsWatcher, ns: string, name: string, port: string): string[] {
  return (w.snapshot().endpointSet(ns, name, port)?.endpoints ?? []).map(endpointKey);
}

function informer(w: EndpointsWatcher, kind: string) {
  const s = w.status().find((i) => i.kind === kind);
  if (!s) throw new Error(`no ${kind} informer`);
  return s;
}

describe("EndpointsWatcher against a test API server", () => {
  it("syncs, resolves without API requests, and emits the changed ServicePortNames", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    const w = watcher();
    const events: ChangeSet[] = [];
    w.onChange((c) => events.push(c));
    await w.waitForSync(30_000);
    expect(w.resolveService(ns, "web", "http").host).toBe("10.0.0.1:8080");
    expect(w.resolveService(ns, "web", 80).host).toBe("10.0.0.1:8080");
    expect(w.snapshot().endpointSet(ns, "web", "http")!.endpoints[0]).toMatchObject({
      nodeName: "node-a",
      zone: "zone-1",
      ready: true,
    });

    events.length = 0;
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }]);
    await waitFor(
      () => expect(hosts(w, ns, "web", "http")).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]),
      "new endpoint",
    );
    expect(events.some((e) => e.servicePorts.has(`${ns}/web:http`))).toBe(true);
    expect(caught(() => w.resolveService(ns, "missing", 80)).details).toMatchObject({ status: 404 });
  });

  it("serves nothing until every informer has synced once", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    // The node list fails once; the restart waits for the (manual) clock.
    const clock = new ManualClock(Date.now());
    server.failNext(1, 500, { method: "GET", pathPrefix: "/api/v1/nodes" });
    const w = watcher({ clock, watch: { services: true, endpointSlices: true, nodes: true } });
    await waitFor(() => {
      expect(informer(w, "Service").synced).toBe(true);
      expect(informer(w, "EndpointSlice").synced).toBe(true);
      expect(informer(w, "Node").failures).toBe(1);
    }, "services and slices synced, nodes failed");
    expect(informer(w, "Node").lastError).toContain("500");
    expect(w.isSynced).toBe(false);
    const err = caught(() => w.resolveService(ns, "web", "http"));
    expect(err.code).toBe("NOT_SYNCED");
    expect(err.details).toMatchObject({ status: 503, reason: "ServiceUnavailable" });
    let settled = false;
    void w.synced.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);

    clock.advance(60_000);
    await w.waitForSync(30_000);
    expect(informer(w, "Node")).toMatchObject({ synced: true, restarts: 1 });
    expect(w.resolveService(ns, "web", "http").host).toBe("10.0.0.1:8080");
  });

  it("follows a slice replaced by two slices without losing endpoints", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }]);
    const w = watcher();
    await w.waitForSync(30_000);
    const seen: string[][] = [];
    w.onChange(() => seen.push(hosts(w, ns, "web", "http")));
    putSlice(ns, "web-2", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    putSlice(ns, "web-3", "web", "http", 8080, [{ ip: "10.0.0.2" }]);
    server.delete("discovery.k8s.io/v1", "EndpointSlice", ns, "web-1");
    await waitFor(
      () => expect(w.snapshot().sliceNames(ns, "web")).toEqual(["web-2", "web-3"]),
      "the two new slices",
    );
    expect(hosts(w, ns, "web", "http")).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    for (const h of seen) expect(h).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
  });

  it("follows endpoints going not-ready and terminating", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }]);
    const w = watcher();
    await w.waitForSync(30_000);
    putSlice(ns, "web-1", "web", "http", 8080, [
      { ip: "10.0.0.1", ready: false, serving: true, terminating: true },
      { ip: "10.0.0.2" },
    ]);
    await waitFor(
      () =>
        expect(w.snapshot().endpointSet(ns, "web", "http")!.endpoints[0]).toMatchObject({
          terminating: true,
        }),
      "terminating endpoint",
    );
    for (let i = 0; i < 20; i++) expect(w.resolveService(ns, "web", "http").host).toBe("10.0.0.2:8080");
    putSlice(ns, "web-1", "web", "http", 8080, [
      { ip: "10.0.0.1", ready: false, serving: true, terminating: true },
      { ip: "10.0.0.2", ready: false, serving: false },
    ]);
    await waitFor(
      () =>
        expect(caught(() => w.resolveService(ns, "web", "http", { id: `web:http` })).code).toBe(
          "NO_ENDPOINTS",
        ),
      "no ready endpoint",
    );
    expect(caught(() => w.resolveService(ns, "web", "http")).message).toBe(
      'no endpoints available for service "web:http"',
    );
    // kube-proxy would still drain to the serving, terminating endpoint.
    expect(usableEndpoints(w.snapshot().endpointSet(ns, "web", "http")).map(endpointKey)).toEqual([
      "10.0.0.1:8080",
    ]);
  });

  it("follows a renamed service port: the number maps to the new name", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    const w = watcher();
    await w.waitForSync(30_000);
    const changed = new Set<string>();
    w.onChange((c) => {
      for (const p of c.servicePorts) changed.add(p);
    });
    const svc = server.get("v1", "Service", ns, "web") as unknown as {
      spec: { ports: Array<{ name: string }> };
    };
    svc.spec.ports[0]!.name = "web";
    server.update(svc);
    putSlice(ns, "web-1", "web", "web", 8080, [{ ip: "10.0.0.1" }]);
    await waitFor(() => expect(w.resolveService(ns, "web", 80).portName).toBe("web"), "renamed port");
    await waitFor(() => expect(hosts(w, ns, "web", "web")).toEqual(["10.0.0.1:8080"]), "slice port renamed");
    expect(caught(() => w.resolveService(ns, "web", "http")).code).toBe("NO_ENDPOINTS");
    expect(changed).toEqual(new Set([`${ns}/web:http`, `${ns}/web:web`]));
  });

  it("resumes after a watch drop without relisting", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    const w = watcher();
    await w.waitForSync(30_000);
    const lists = informer(w, "EndpointSlice").lists;
    server.closeAllWatches();
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.3" }]);
    await waitFor(
      () => expect(hosts(w, ns, "web", "http")).toEqual(["10.0.0.3:8080"]),
      "change after the drop",
    );
    expect(informer(w, "EndpointSlice").lists).toBe(lists);
  });

  it("relists after 410 Gone and sees what changed meanwhile, deletions included", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    createService(ns, "old", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    putSlice(ns, "old-1", "old", "http", 8080, [{ ip: "10.0.0.9" }]);
    const clock = new ManualClock(Date.now());
    const w = watcher({ clock });
    await w.waitForSync(30_000);
    const lists = informer(w, "EndpointSlice").lists;
    // The slice watch drops and cannot come back until the clock moves.
    server.failNext(1, 503, { method: "GET", pathPrefix: SLICES });
    server.closeAllWatches();
    await waitFor(() => expect(informer(w, "EndpointSlice").failures).toBe(1), "the failed re-watch");
    // Meanwhile: changes, and the history the informer would resume from is compacted away.
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.2" }]);
    server.delete("discovery.k8s.io/v1", "EndpointSlice", ns, "old-1");
    server.compact();
    clock.advance(60_000);
    await waitFor(() => {
      expect(hosts(w, ns, "web", "http")).toEqual(["10.0.0.2:8080"]);
      expect(w.snapshot().sliceNames(ns, "old")).toEqual([]);
    }, "state after the relist");
    expect(informer(w, "EndpointSlice").lists).toBe(lists + 1);
    expect(informer(w, "EndpointSlice").restarts).toBe(1);
    expect(caught(() => w.resolveService(ns, "old", "http")).message).toBe(
      'no endpoints available for service "old"',
    );
  });

  it("restarts its informers after the API server is stopped and restarted", async () => {
    const ns = newNamespace();
    createService(ns, "web", [{ name: "http", port: 80 }]);
    putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.1" }]);
    const w = watcher();
    await w.waitForSync(30_000);
    // Note: TestApiServer.stop() can take ~30 s here: a watch that reconnects while it stops is
    // accepted after its socket sweep and holds server.close() until the client's idle timeout.
    await server.stop();
    try {
      await waitFor(() => {
        for (const s of w.status()) expect(s.failures).toBeGreaterThan(0);
      }, "every informer noticed the outage");
      expect(w.resolveService(ns, "web", "http").host).toBe("10.0.0.1:8080"); // the cache is still served
      putSlice(ns, "web-1", "web", "http", 8080, [{ ip: "10.0.0.5" }]);
    } finally {
      await server.restart();
    }
    await waitFor(
      () => expect(hosts(w, ns, "web", "http")).toEqual(["10.0.0.5:8080"]),
      "change made while down",
    );
    await waitFor(() => {
      for (const s of w.status()) expect(s).toMatchObject({ connected: true, failures: 0 });
    }, "watches re-established");
    for (const s of w.status()) expect(s.restarts).toBeGreaterThan(0);
  }, 150_000);

  it("resolves pods and nodes from watched objects", async () => {
    const ns = newNamespace();
    server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "api", namespace: ns },
      spec: { containers: [{ name: "c", image: "x", ports: [{ containerPort: 8443 }] }] },
      status: { phase: "Running", podIP: "10.0.0.7", podIPs: [{ ip: "10.0.0.7" }] },
    });
    server.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `node-${ns}` },
      status: {
        addresses: [
          { type: "InternalIP", address: "10.1.0.7" },
          { type: "Hostname", address: `node-${ns}` },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10255 } },
      },
    });
    const w = watcher({
      watch: { pods: { namespace: ns }, nodes: true },
      preferredAddressTypes: ["InternalIP", "Hostname"],
    });
    await w.waitForSync(30_000);
    expect(w.resolvePod(ns, "api")).toMatchObject({ host: "10.0.0.7:8443" });
    expect(w.resolveNode(`node-${ns}`)).toMatchObject({
      host: "10.1.0.7:10255",
      kubelet: true,
      scheme: "https",
    });
    expect(caught(() => w.resolveService(ns, "web", "http")).code).toBe("RESOURCE_NOT_WATCHED");
    expect(caught(() => w.resolvePod(ns, "nope")).details).toMatchObject({ status: 404, kind: "pods" });
  });

  it("discovers the API server from the default/kubernetes EndpointSlice (namespace + label selector)", async () => {
    const w = watcher({
      watch: {
        endpointSlices: { namespace: "default", labelSelector: "kubernetes.io/service-name=kubernetes" },
      },
    });
    await w.waitForSync(30_000);
    expect(hosts(w, "default", "kubernetes", "https")).toEqual([`127.0.0.1:${server.port}`]);
    expect([...w.snapshot().endpoints.keys()]).toEqual(["default/kubernetes:https"]);
  });

  it("rejects bad options with INVALID_OPTIONS", () => {
    const bad: Array<Partial<EndpointsWatcherOptions>> = [
      { watch: {} },
      { watch: { nodes: { namespace: "x" } } },
      { preferredAddressTypes: ["InternalIp"] },
      { backoff: { initialMs: 0 } },
      { kubeConfig: undefined },
    ];
    bad.push({ kubeConfig: new KubeConfig() });
    for (const opts of bad) {
      const err = caught(() => new EndpointsWatcher({ kubeConfig: conn.kubeConfig, ...opts }));
      expect(err.code).toBe("INVALID_OPTIONS");
    }
  });
});
