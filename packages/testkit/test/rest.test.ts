/** The REST API over plain HTTP: CRUD semantics, watch, Status errors for bad input, faults. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "../src/index.js";
import { call, openWatch, until } from "./helpers.js";

let server: TestApiServer;

beforeAll(async () => {
  server = await TestApiServer.start({ tls: false, bookmarkIntervalMs: 200 });
});
afterAll(async () => {
  await server?.close();
});

const cm = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, ...extra },
  data: { k: "v" },
});

function expectStatus(r: { status: number; json: any }, code: number, reason?: string): void {
  expect(r.status).toBe(code);
  expect(r.json).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", code });
  if (reason) expect(r.json.reason).toBe(reason);
}

describe("discovery and public endpoints", () => {
  it("serves /version, health checks without auth, and discovery with auth", async () => {
    const v = await call(server, "GET", "/version", { token: null });
    expect(v.json).toMatchObject({ major: "1", minor: "32" });
    for (const p of ["/healthz", "/livez", "/readyz"]) {
      const h = await call(server, "GET", p, { token: null });
      expect(h.status).toBe(200);
      expect(h.text).toBe("ok");
    }
    expectStatus(await call(server, "GET", "/api", { token: null }), 401, "Unauthorized");
    expectStatus(await call(server, "GET", "/api", { token: "wrong" }), 401, "Unauthorized");
    const api = await call(server, "GET", "/api");
    expect(api.json).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    const groups = await call(server, "GET", "/apis");
    expect(groups.json.groups.map((g: { name: string }) => g.name).sort()).toEqual([
      "authentication.k8s.io",
      "authorization.k8s.io",
      "coordination.k8s.io",
      "discovery.k8s.io",
    ]);
    const v1 = await call(server, "GET", "/api/v1");
    const names = v1.json.resources.map((r: { name: string }) => r.name);
    for (const n of [
      "namespaces",
      "services",
      "services/status",
      "endpoints",
      "pods",
      "pods/status",
      "pods/exec",
      "nodes",
      "events",
      "configmaps",
    ])
      expect(names).toContain(n);
    const svc = v1.json.resources.find((r: { name: string }) => r.name === "services");
    expect(svc).toMatchObject({ kind: "Service", namespaced: true, shortNames: ["svc"] });
    const slices = await call(server, "GET", "/apis/discovery.k8s.io/v1");
    expect(slices.json.resources[0]).toMatchObject({ name: "endpointslices", kind: "EndpointSlice" });
  });

  it("health checks can be made to fail and recover", async () => {
    server.setHealth("readyz", false);
    const bad = await call(server, "GET", "/readyz", { token: null });
    expect(bad.status).toBe(500);
    expect(bad.text).toContain("readyz check failed");
    expect((await call(server, "GET", "/livez", { token: null })).status).toBe(200);
    server.setHealth("readyz", true);
    expect((await call(server, "GET", "/readyz", { token: null })).status).toBe(200);
  });
});

describe("create, get, update, delete", () => {
  it("create sets uid, timestamps and resourceVersion; generateName picks a name", async () => {
    const r = await call(server, "POST", "/api/v1/namespaces/default/configmaps", {
      body: { apiVersion: "v1", kind: "ConfigMap", metadata: { generateName: "gen-" } },
    });
    expect(r.status).toBe(201);
    expect(r.json.metadata.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(r.json.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.json.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Number(r.json.metadata.resourceVersion)).toBeGreaterThan(0);
    expect(r.json.metadata.namespace).toBe("default");
    const got = await call(server, "GET", `/api/v1/namespaces/default/configmaps/${r.json.metadata.name}`);
    expect(got.json).toEqual(r.json);
  });

  it("update succeeds on the current resourceVersion and 409s on a stale one", async () => {
    const created = (await call(server, "POST", "/api/v1/namespaces/default/configmaps", { body: cm("upd") }))
      .json;
    const path = "/api/v1/namespaces/default/configmaps/upd";
    const ok = await call(server, "PUT", path, { body: { ...created, data: { k: "2" } } });
    expect(ok.status).toBe(200);
    expect(Number(ok.json.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.metadata.resourceVersion),
    );
    const stale = await call(server, "PUT", path, { body: { ...created, data: { k: "3" } } });
    expectStatus(stale, 409, "Conflict");
    expect(stale.json.message).toContain("the object has been modified");
    expect((await call(server, "GET", path)).json.data).toEqual({ k: "2" });
    expectStatus(
      await call(server, "POST", "/api/v1/namespaces/default/configmaps", { body: cm("upd") }),
      409,
      "AlreadyExists",
    );
  });

  it("delete with a finalizer sets deletionTimestamp; removing the finalizer deletes", async () => {
    await call(server, "POST", "/api/v1/namespaces/default/configmaps", {
      body: cm("fin", { finalizers: ["example.com/hold"] }),
    });
    const path = "/api/v1/namespaces/default/configmaps/fin";
    const w = openWatch(
      server,
      "/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dfin",
    );
    await until("initial ADDED", () => w.events.length === 1);
    const del = await call(server, "DELETE", path);
    expect(del.status).toBe(202);
    expect(del.json.metadata.deletionTimestamp).toBeDefined();
    const still = await call(server, "GET", path);
    expect(still.json.metadata.deletionTimestamp).toBeDefined();
    const patched = await call(server, "PATCH", path, {
      raw: JSON.stringify({ metadata: { finalizers: null } }),
      contentType: "application/merge-patch+json",
    });
    expect(patched.status).toBe(200);
    expectStatus(await call(server, "GET", path), 404, "NotFound");
    await until("DELETED", () => w.events.some((e) => e.type === "DELETED"));
    expect(w.events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    await w.stop();
  });

  it("deleting a namespace deletes its contents", async () => {
    await call(server, "POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "doomed" } },
    });
    await call(server, "POST", "/api/v1/namespaces/doomed/configmaps", { body: cm("x") });
    expect((await call(server, "DELETE", "/api/v1/namespaces/doomed")).status).toBe(200);
    expectStatus(await call(server, "GET", "/api/v1/namespaces/doomed"), 404);
    expectStatus(await call(server, "GET", "/api/v1/namespaces/doomed/configmaps/x"), 404);
    expectStatus(
      await call(server, "POST", "/api/v1/namespaces/doomed/configmaps", { body: cm("y") }),
      404,
      "NotFound",
    );
  });

  it("the status subresource changes only status, the main resource never status", async () => {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p1", labels: { app: "x" } },
      spec: { containers: [{ name: "c", image: "busybox" }] },
    };
    const created = (await call(server, "POST", "/api/v1/namespaces/default/pods", { body: pod })).json;
    expect(created.status.phase).toBe("Pending");
    expect(created.spec.containers[0].imagePullPolicy).toBe("Always");
    const main = await call(server, "PATCH", "/api/v1/namespaces/default/pods/p1", {
      raw: JSON.stringify({ status: { phase: "Running" } }),
      contentType: "application/merge-patch+json",
    });
    expect(main.json.status.phase).toBe("Pending");
    const st = await call(server, "PATCH", "/api/v1/namespaces/default/pods/p1/status", {
      raw: JSON.stringify({ status: { phase: "Running" }, spec: { nodeName: "n1" } }),
      contentType: "application/merge-patch+json",
    });
    expect(st.json.status.phase).toBe("Running");
    expect(st.json.spec.nodeName).toBeUndefined();
  });
});

describe("patch", () => {
  it("strategic merge patch merges containers by name; JSON patch applies operations", async () => {
    await call(server, "POST", "/api/v1/namespaces/default/pods", {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "smp" },
        spec: {
          containers: [
            { name: "a", image: "img:1" },
            { name: "b", image: "img:1" },
          ],
        },
      },
    });
    const r = await call(server, "PATCH", "/api/v1/namespaces/default/pods/smp", {
      raw: JSON.stringify({
        spec: { containers: [{ name: "b", image: "img:2" }] },
        metadata: { labels: { x: "1" } },
      }),
      contentType: "application/strategic-merge-patch+json",
    });
    expect(r.status).toBe(200);
    expect(
      r.json.spec.containers.map((c: { name: string; image: string }) => `${c.name}=${c.image}`),
    ).toEqual(["a=img:1", "b=img:2"]);
    const j = await call(server, "PATCH", "/api/v1/namespaces/default/pods/smp", {
      raw: JSON.stringify([
        { op: "test", path: "/metadata/labels/x", value: "1" },
        { op: "replace", path: "/metadata/labels/x", value: "2" },
        { op: "add", path: "/metadata/annotations", value: { note: "hi" } },
      ]),
      contentType: "application/json-patch+json",
    });
    expect(j.json.metadata.labels).toEqual({ x: "2" });
    expect(j.json.metadata.annotations).toEqual({ note: "hi" });
  });
});

describe("bad input gets a Status with the right code", () => {
  const cms = "/api/v1/namespaces/default/configmaps";
  it("400: malformed JSON, wrong kind, wrong apiVersion, namespace mismatch, bad selectors, strict validation", async () => {
    expectStatus(await call(server, "POST", cms, { raw: "{not json" }), 400, "BadRequest");
    expectStatus(await call(server, "POST", cms, { raw: "" }), 400, "BadRequest");
    const wrongKind = await call(server, "POST", cms, {
      body: { apiVersion: "v1", kind: "Secret", metadata: { name: "s" } },
    });
    expectStatus(wrongKind, 400, "BadRequest");
    expect(wrongKind.json.message).toContain("does not match the expected kind");
    expectStatus(await call(server, "POST", cms, { body: { ...cm("v"), apiVersion: "v2" } }), 400);
    expectStatus(await call(server, "POST", cms, { body: cm("n", { namespace: "kube-system" }) }), 400);
    const badLabel = await call(server, "GET", `${cms}?labelSelector=${encodeURIComponent("a in (b")}`);
    expectStatus(badLabel, 400, "BadRequest");
    const badField = await call(server, "GET", `${cms}?fieldSelector=spec.nope%3Dx`);
    expectStatus(badField, 400);
    expect(badField.json.message).toBe("field label not supported: spec.nope");
    const strict = await call(server, "POST", `${cms}?fieldValidation=Strict`, {
      body: { ...cm("strict"), bogus: 1 },
    });
    expectStatus(strict, 400);
    expect(strict.json.message).toContain('unknown field "bogus"');
    const warn = await call(server, "POST", `${cms}?fieldValidation=Warn`, {
      body: { ...cm("warned"), bogus: 1 },
    });
    expect(warn.status).toBe(201);
    expect(warn.headers.get("warning")).toContain('unknown field \\"bogus\\"');
    expectStatus(await call(server, "GET", "/api/v1/namespaces/default/pods/p1/exec?command=ls"), 400);
  });

  it("404 unknown resource or group; 405 wrong method; 406 protobuf-only Accept", async () => {
    expectStatus(await call(server, "GET", "/api/v1/widgets"), 404, "NotFound");
    expectStatus(await call(server, "GET", "/apis/apps/v1"), 404, "NotFound");
    expectStatus(await call(server, "GET", "/nothing/here"), 404);
    expectStatus(await call(server, "GET", `${cms}/missing`), 404, "NotFound");
    expectStatus(await call(server, "POST", `${cms}/x`, { body: cm("x") }), 405, "MethodNotAllowed");
    expectStatus(await call(server, "PUT", cms, { body: cm("x") }), 405, "MethodNotAllowed");
    expectStatus(await call(server, "GET", cms, { accept: "application/vnd.kubernetes.protobuf" }), 406);
  });

  it("415 unsupported media types; 422 invalid objects and bad patches", async () => {
    await call(server, "POST", cms, { body: cm("target") });
    expectStatus(
      await call(server, "POST", cms, { raw: "a: b", contentType: "text/plain" }),
      415,
      "UnsupportedMediaType",
    );
    expectStatus(
      await call(server, "PATCH", `${cms}/target`, { raw: "{}", contentType: "application/json" }),
      415,
    );
    expectStatus(
      await call(server, "POST", cms, { body: { apiVersion: "v1", kind: "ConfigMap", metadata: {} } }),
      422,
      "Invalid",
    );
    expectStatus(await call(server, "POST", cms, { body: cm("Not_Valid!") }), 422, "Invalid");
    const badPatch = await call(server, "PATCH", `${cms}/target`, {
      raw: JSON.stringify([{ op: "remove", path: "/data/nope" }]),
      contentType: "application/json-patch+json",
    });
    expectStatus(badPatch, 422, "Invalid");
    expectStatus(
      await call(server, "PATCH", `${cms}/target`, {
        raw: "[1,",
        contentType: "application/merge-patch+json",
      }),
      400,
    );
    const svc = await call(server, "POST", "/api/v1/namespaces/default/services", {
      body: { apiVersion: "v1", kind: "Service", metadata: { name: "noports" }, spec: {} },
    });
    expectStatus(svc, 422, "Invalid");
    expect(svc.json.details.causes[0].field).toBe("spec.ports");
  });

  it("400 for a malformed protobuf body or a malformed HTTP request; 415 for protobuf of other kinds", async () => {
    const bad = await call(server, "POST", "/api/v1/namespaces", {
      raw: "k8s\u0000\u000a\u00ff",
      contentType: "application/vnd.kubernetes.protobuf",
    });
    expectStatus(bad, 400, "BadRequest");
    // runtime.Unknown{typeMeta: {apiVersion: "v1", kind: "Pod"}}
    const typeMeta = Buffer.from([0x0a, 0x02, 0x76, 0x31, 0x12, 0x03, 0x50, 0x6f, 0x64]);
    const envelope = Buffer.concat([
      Buffer.from("k8s\u0000", "latin1"),
      Buffer.from([0x0a, typeMeta.length]),
      typeMeta,
    ]);
    const res = await fetch(`${server.url}/api/v1/namespaces/default/pods`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        "content-type": "application/vnd.kubernetes.protobuf",
      },
      body: envelope,
    });
    expect(res.status).toBe(415);
    const { connect } = await import("node:net");
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(server.port, "127.0.0.1", () => sock.write("THIS IS NOT HTTP\r\n\r\n"));
      let data = "";
      sock.on("data", (d) => {
        data += d.toString();
      });
      sock.on("end", () => resolve(data));
      sock.on("error", reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect(raw).toContain('"kind":"Status"');
    expect((await call(server, "GET", "/api")).status).toBe(200);
  });

  it("410 for a watch from a compacted resourceVersion, as an ERROR event", async () => {
    const before = (await call(server, "GET", cms)).json.metadata.resourceVersion;
    await call(server, "POST", cms, { body: cm("after-compact-1") });
    server.compact();
    const w = openWatch(server, `${cms}?watch=true&resourceVersion=${before}`);
    await w.done;
    expect(w.status).toBe(200);
    expect(w.events).toHaveLength(1);
    expect(w.events[0]!.type).toBe("ERROR");
    expect(w.events[0]!.object).toMatchObject({ kind: "Status", code: 410, reason: "Expired" });
    const cur = (await call(server, "GET", cms)).json.metadata.resourceVersion;
    const ok = openWatch(server, `${cms}?watch=true&resourceVersion=${cur}&timeoutSeconds=1`);
    await ok.done;
    expect(ok.events.filter((e) => e.type === "ERROR")).toEqual([]);
  });
});

describe("list and watch", () => {
  it("lists with label and field selectors and paginates with limit/continue", async () => {
    await call(server, "POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "sel" } },
    });
    for (const [name, tier] of [
      ["s1", "web"],
      ["s2", "db"],
      ["s3", "web"],
    ])
      await call(server, "POST", "/api/v1/namespaces/sel/configmaps", {
        body: cm(name!, { labels: { tier } }),
      });
    const web = await call(server, "GET", "/api/v1/namespaces/sel/configmaps?labelSelector=tier%3Dweb");
    expect(web.json.kind).toBe("ConfigMapList");
    expect(web.json.items.map((i: any) => i.metadata.name)).toEqual(["s1", "s3"]);
    const notin = await call(
      server,
      "GET",
      `/api/v1/namespaces/sel/configmaps?labelSelector=${encodeURIComponent("tier notin (web)")}`,
    );
    expect(notin.json.items.map((i: any) => i.metadata.name)).toEqual(["s2"]);
    const byName = await call(
      server,
      "GET",
      "/api/v1/configmaps?fieldSelector=metadata.name%3Ds2,metadata.namespace%3Dsel",
    );
    expect(byName.json.items.map((i: any) => i.metadata.name)).toEqual(["s2"]);
    const page1 = await call(server, "GET", "/api/v1/namespaces/sel/configmaps?limit=2");
    expect(page1.json.items).toHaveLength(2);
    expect(page1.json.metadata.continue).toBeTruthy();
    const page2 = await call(
      server,
      "GET",
      `/api/v1/namespaces/sel/configmaps?limit=2&continue=${page1.json.metadata.continue}`,
    );
    expect(page2.json.items.map((i: any) => i.metadata.name)).toEqual(["s3"]);
    expect(page2.json.metadata.continue).toBeUndefined();
  });

  it("watch streams ADDED/MODIFIED/DELETED from a resourceVersion, filtered by labels, with bookmarks", async () => {
    const list = await call(server, "GET", "/api/v1/namespaces/default/configmaps");
    const rv = list.json.metadata.resourceVersion;
    const w = openWatch(
      server,
      `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}&labelSelector=w%3D1&allowWatchBookmarks=true`,
    );
    await call(server, "POST", "/api/v1/namespaces/default/configmaps", {
      body: cm("w1", { labels: { w: "1" } }),
    });
    await call(server, "POST", "/api/v1/namespaces/default/configmaps", {
      body: cm("w2", { labels: { w: "2" } }),
    });
    await call(server, "PATCH", "/api/v1/namespaces/default/configmaps/w1", {
      raw: JSON.stringify({ data: { k: "changed" } }),
      contentType: "application/merge-patch+json",
    });
    // Relabelling w1 out of the selector is a DELETED for this watch.
    await call(server, "PATCH", "/api/v1/namespaces/default/configmaps/w1", {
      raw: JSON.stringify({ metadata: { labels: { w: "3" } } }),
      contentType: "application/merge-patch+json",
    });
    await until("bookmark", () => w.events.some((e) => e.type === "BOOKMARK"));
    const typed = w.events
      .filter((e) => e.type !== "BOOKMARK")
      .map((e) => `${e.type} ${e.object.metadata.name}`);
    expect(typed).toEqual(["ADDED w1", "MODIFIED w1", "DELETED w1"]);
    const bm = w.events.find((e) => e.type === "BOOKMARK")!;
    expect(bm.object.kind).toBe("ConfigMap");
    expect(Number(bm.object.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(rv) + 4);
    await w.stop();
  });

  it("sendInitialEvents streams the current state, then a BOOKMARK marking its end", async () => {
    const w = openWatch(
      server,
      "/api/v1/namespaces/sel/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan",
    );
    await until("initial-events-end bookmark", () => w.events.some((e) => e.type === "BOOKMARK"));
    const first = w.events.findIndex((e) => e.type === "BOOKMARK");
    expect(w.events.slice(0, first).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      "ADDED s1",
      "ADDED s2",
      "ADDED s3",
    ]);
    expect(w.events[first]!.object.metadata.annotations).toEqual({ "k8s.io/initial-events-end": "true" });
    await w.stop();
    const bad = await call(
      server,
      "GET",
      "/api/v1/namespaces/sel/configmaps?watch=true&sendInitialEvents=true",
    );
    expectStatus(bad, 422, "Invalid");
  });

  it("watch ends after timeoutSeconds", async () => {
    const w = openWatch(server, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1");
    await until("watch end", () => w.ended, 15_000);
    expect(w.status).toBe(200);
    // no resourceVersion: the current state comes first as ADDED events
    expect(w.events.length).toBeGreaterThan(0);
    expect(w.events.every((e) => e.type === "ADDED")).toBe(true);
  });

  it("get with Accept as=Table returns the real server's columns", async () => {
    const t = await call(server, "GET", "/api/v1/namespaces", {
      accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    });
    expect(t.json.kind).toBe("Table");
    expect(t.json.columnDefinitions.map((c: { name: string }) => c.name)).toEqual(["Name", "Status", "Age"]);
    expect(t.json.rows.find((r: any) => r.cells[0] === "default").cells[1]).toBe("Active");
  });
});

describe("faults", () => {
  it("failNext fails the next N matching requests, then recovers", async () => {
    server.failNext(2, 503, { method: "GET", pathPrefix: "/api/v1/namespaces/default/configmaps" });
    expect((await call(server, "GET", "/api/v1/namespaces")).status).toBe(200);
    const f1 = await call(server, "GET", "/api/v1/namespaces/default/configmaps");
    expectStatus(f1, 503, "ServiceUnavailable");
    expectStatus(await call(server, "GET", "/api/v1/namespaces/default/configmaps"), 503);
    expect((await call(server, "GET", "/api/v1/namespaces/default/configmaps")).status).toBe(200);
  });

  it("setLatency delays responses", async () => {
    server.setLatency(300);
    const t0 = Date.now();
    await call(server, "GET", "/api");
    const elapsed = Date.now() - t0;
    server.setLatency(0);
    expect(elapsed).toBeGreaterThanOrEqual(250);
  });

  it("closeAllWatches ends open watches", async () => {
    const w = openWatch(server, "/api/v1/namespaces/default/configmaps?watch=true");
    await until("initial events", () => w.events.length > 0);
    server.closeAllWatches();
    await until("watch end", () => w.ended);
  });

  it("restart keeps the port and the data, and drops connections", async () => {
    const port = server.port;
    await call(server, "POST", "/api/v1/namespaces/default/configmaps", { body: cm("survivor") });
    const w = openWatch(server, "/api/v1/namespaces/default/configmaps?watch=true");
    await until("initial events", () => w.events.length > 0);
    await server.stop();
    await until("watch end", () => w.ended);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    await server.restart();
    expect(server.port).toBe(port);
    expect((await call(server, "GET", "/api/v1/namespaces/default/configmaps/survivor")).status).toBe(200);
  });
});
