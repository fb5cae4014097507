import type { Logger } from "@kproxy/core";
import type { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningApiserverProxy } from "../src/index.js";
import {
  type Backend,
  type Cluster,
  call,
  pod,
  service,
  slice,
  startBackend,
  startCluster,
} from "./helpers.js";

const TOKEN = "t";

function capture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m) => warnings.push(m),
    error: () => {},
    child: () => logger,
  };
  return { logger, warnings };
}

describe("never an open proxy: hostile objects", () => {
  let cluster: Cluster;
  let strict: RunningApiserverProxy;
  let dev: RunningApiserverProxy;
  let client: Agent;
  let live: Backend;
  const devLog = capture();

  beforeAll(async () => {
    cluster = await startCluster();
    cluster.users.set(TOKEN, { username: "alice", groups: [] });
    cluster.allow.set("alice", new Set(["services", "pods", "nodes"]));
    live = await startBackend("live");
    const api = cluster.api;
    for (const [name, addresses] of [
      ["loop", ["127.0.0.1"]],
      ["metadata", ["169.254.169.254"]],
      ["zero", ["0.0.0.0"]],
      ["multicast", ["224.0.0.1"]],
      ["mixed", ["127.0.0.1", "169.254.169.254"]],
    ] as const) {
      api.create(service(name, undefined));
      api.create(slice(name, [...addresses], live.port));
    }
    api.create(service("fqdn", undefined));
    api.create({
      ...slice("fqdn", [], live.port),
      addressType: "FQDN",
      endpoints: [{ addresses: ["example.com"] }],
    });
    api.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "external", namespace: "default" },
      spec: { type: "ExternalName", externalName: "example.com" },
    });
    api.create(pod("lo", "127.0.0.1", live.port, { app: "lo" }));
    api.create(pod("linklocal", "169.254.10.10", 80, { app: "ll" }));
    api.create(pod("v6lo", "::1", live.port, { app: "v6" }));
    api.create({ ...pod("noip", "", 80, { app: "noip" }), status: { phase: "Pending" } });
    api.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "lonode" },
      status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }] },
    });
    api.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "localhost-node" },
      status: { addresses: [{ type: "Hostname", address: "localhost" }] },
    });
    strict = await cluster.startProxy();
    dev = await cluster.startProxy({ devAllowLoopbackEndpoints: true, logger: devLog.logger });
    client = cluster.client();
  });

  afterAll(async () => {
    await cluster?.close();
    await live?.close();
  });

  const notAllowed = { code: 400, reason: "BadRequest", message: "address not allowed" };

  it("refuses loopback, link-local, unspecified, multicast and DNS-name endpoints with 400 address not allowed", async () => {
    const paths = [
      "/api/v1/namespaces/default/services/loop:http/proxy/",
      "/api/v1/namespaces/default/services/metadata:http/proxy/",
      "/api/v1/namespaces/default/services/zero:http/proxy/",
      "/api/v1/namespaces/default/services/multicast:http/proxy/",
      "/api/v1/namespaces/default/services/mixed:http/proxy/",
      "/api/v1/namespaces/default/services/fqdn:http/proxy/",
      "/api/v1/namespaces/default/pods/lo/proxy/",
      `/api/v1/namespaces/default/pods/lo:${live.port}/proxy/`,
      "/api/v1/namespaces/default/pods/linklocal/proxy/",
      "/api/v1/namespaces/default/pods/v6lo/proxy/",
      "/api/v1/namespaces/default/pods/noip/proxy/",
      "/api/v1/nodes/lonode/proxy/",
      `/api/v1/nodes/lonode:${live.port}/proxy/`,
      "/api/v1/nodes/localhost-node/proxy/",
    ];
    for (const path of paths) {
      const r = await call(client, `${strict.url}${path}`, { token: TOKEN });
      expect({ path, ...r.json }).toMatchObject({ path, ...notAllowed });
    }
    expect(live.seen).toHaveLength(0);
  });

  it("has nothing to dial for an ExternalName service", async () => {
    const r = await call(client, `${strict.url}/api/v1/namespaces/default/services/external/proxy/`, {
      token: TOKEN,
    });
    expect(r.json).toMatchObject({ code: 503, message: 'no endpoints available for service "external"' });
  });

  it("in development mode allows loopback only, never link-local, and warns", async () => {
    expect(devLog.warnings.some((w) => w.includes("--dev-allow-loopback-endpoints"))).toBe(true);
    for (let i = 0; i < 20; i++) {
      const r = await call(client, `${dev.url}/api/v1/namespaces/default/services/mixed:http/proxy/x`, {
        token: TOKEN,
      });
      expect(r.json).toMatchObject({ backend: "live" });
    }
    expect(
      (await call(client, `${dev.url}/api/v1/namespaces/default/pods/lo/proxy/`, { token: TOKEN })).status,
    ).toBe(200);
    const ll = await call(client, `${dev.url}/api/v1/namespaces/default/pods/linklocal/proxy/`, {
      token: TOKEN,
    });
    expect(ll.json).toMatchObject(notAllowed);
    const md = await call(client, `${dev.url}/api/v1/namespaces/default/services/metadata:http/proxy/`, {
      token: TOKEN,
    });
    expect(md.json).toMatchObject(notAllowed);
  });

  it("AlwaysAllow skips SubjectAccessReviews and warns at start", async () => {
    const { logger, warnings } = capture();
    const open = await cluster.startProxy({
      authorizationMode: "AlwaysAllow",
      devAllowLoopbackEndpoints: true,
      logger,
    });
    expect(warnings.some((w) => w.includes("AlwaysAllow"))).toBe(true);
    cluster.users.set("nobody-token", { username: "nobody", groups: [] });
    const before = cluster.api.reviewCounts.subjectAccessReviews;
    const r = await call(client, `${open.url}/api/v1/namespaces/default/pods/lo/proxy/`, {
      token: "nobody-token",
    });
    expect(r.status).toBe(200);
    expect(cluster.api.reviewCounts.subjectAccessReviews).toBe(before);
    // Authentication still applies.
    expect((await call(client, `${open.url}/api/v1/namespaces/default/pods/lo/proxy/`)).status).toBe(401);
  });
});
