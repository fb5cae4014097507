import { Agent, fetch, type RequestInit } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "../src/index.js";

// Two API servers of one cluster, as behind a load balancer: same objects and watches, same port,
// their own addresses, both listed in default/kubernetes.
describe("TestApiServer replicas", () => {
  let primary: TestApiServer;
  let replica: TestApiServer;

  beforeAll(async () => {
    primary = await TestApiServer.start();
    replica = await TestApiServer.start({ replicaOf: primary, host: "127.0.0.2" });
  }, 30_000);

  afterAll(async () => {
    await replica?.close();
    await primary?.close();
  });

  const api = async (server: TestApiServer, path: string, init: RequestInit = {}) => {
    const dispatcher = new Agent({ connect: { ca: server.ca!.certPem } });
    try {
      const res = await fetch(`${server.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${server.adminToken}`, "content-type": "application/json" },
        dispatcher,
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    } finally {
      await dispatcher.close();
    }
  };

  it("listens on the primary's port at its own address, with the same CA and tokens", async () => {
    expect(replica.port).toBe(primary.port);
    expect(replica.url).toBe(`https://127.0.0.2:${primary.port}`);
    expect(replica.adminToken).toBe(primary.adminToken);
    expect((await api(replica, "/api/v1/namespaces/default")).status).toBe(200);
  });

  it("shares objects: what one server creates the other serves", async () => {
    const created = await api(primary, "/api/v1/namespaces/default/configmaps", {
      method: "POST",
      body: JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "shared" },
        data: { a: "1" },
      }),
    });
    expect(created.status).toBe(201);
    const seen = await api(replica, "/api/v1/namespaces/default/configmaps/shared");
    expect(seen.status).toBe(200);
    expect(seen.body.data).toEqual({ a: "1" });
    expect(seen.body.metadata.resourceVersion).toBe(created.body.metadata.resourceVersion);
  });

  it("lists both servers in default/kubernetes", () => {
    const slice = primary.get("discovery.k8s.io/v1", "EndpointSlice", "default", "kubernetes") as unknown as {
      endpoints: { addresses: string[] }[];
      ports: { port: number }[];
    };
    expect(slice.endpoints.flatMap((e) => e.addresses).sort()).toEqual(["127.0.0.1", "127.0.0.2"]);
    expect(slice.ports[0]?.port).toBe(primary.port);
  });

  it("keeps health per server, so one replica can fail /readyz alone", async () => {
    replica.setHealth("readyz", false);
    try {
      const dispatcher = new Agent({ connect: { ca: primary.ca!.certPem } });
      const status = async (s: TestApiServer) => (await fetch(`${s.url}/readyz`, { dispatcher })).status;
      expect(await status(primary)).toBe(200);
      expect(await status(replica)).not.toBe(200);
      await dispatcher.close();
    } finally {
      replica.setHealth("readyz", true);
    }
  });

  it("refuses a replica on the primary's own address", async () => {
    await expect(TestApiServer.start({ replicaOf: primary })).rejects.toThrow(/needs its own address/);
  });
});
