import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StartedFrontLb, startFrontLb } from "../src/index.js";
import { type Cluster, getVia, startCluster, waitFor } from "./helpers.js";

interface Status {
  listeners: {
    endpoints: { key: string; source: string }[];
    discovery?: { source: string; endpoints: string[]; connected: boolean; lastError?: string };
  }[];
}

const statusOf = async (lb: StartedFrontLb) =>
  (await (await fetch(`${lb.adminUrl}/status`)).json()) as Status;

describe("endpoints discovered from default/kubernetes EndpointSlices", () => {
  let cluster: Cluster;
  let dir: string;
  let config: Record<string, unknown>;
  beforeAll(async () => {
    cluster = await startCluster(2);
    dir = mkdtempSync(join(tmpdir(), "front-lb-disc-"));
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, cluster.servers[0]!.kubeconfig(), { mode: 0o600 });
    config = {
      listeners: [
        {
          name: "api",
          address: "127.0.0.1:0",
          discovery: { kubeconfig, cacheFile: join(dir, "cache", "api.json"), debounce: "200ms" },
          healthCheck: { interval: "300ms", fall: 1 },
        },
      ],
      admin: { address: "127.0.0.1:0" },
    };
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("follows the slices, saves the list, and starts from the saved list when the cluster is down", async () => {
    const [a, b] = cluster.endpoints as [string, string];
    const lb = await startFrontLb(config);
    try {
      await waitFor("server A discovered", async () => {
        const s = await statusOf(lb);
        return s.listeners[0]!.endpoints.map((e) => e.key).join() === a;
      });
      // A second API server registers itself (another slice of the kubernetes service).
      cluster.servers[0]!.create({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: "kubernetes-b",
          namespace: "default",
          labels: { "kubernetes.io/service-name": "kubernetes" },
        },
        addressType: "IPv4",
        endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }],
        ports: [{ name: "https", port: Number(b.split(":")[1]), protocol: "TCP" }],
      });
      await waitFor(
        "server B discovered",
        async () => (await statusOf(lb)).listeners[0]!.endpoints.length === 2,
      );
      const s = await statusOf(lb);
      expect(s.listeners[0]!.endpoints.map((e) => e.source)).toEqual(["discovered", "discovered"]);
      expect(s.listeners[0]!.discovery).toMatchObject({ source: "cluster", connected: true });
      await waitFor("cache written", () => {
        try {
          return (
            (JSON.parse(readFileSync(join(dir, "cache", "api.json"), "utf8")) as { endpoints: string[] })
              .endpoints.length === 2
          );
        } catch {
          return false;
        }
      });
      expect(
        (
          JSON.parse(readFileSync(join(dir, "cache", "api.json"), "utf8")) as { endpoints: string[] }
        ).endpoints.sort(),
      ).toEqual([a, b].sort());
      // An empty list (every API server gone from the slices) is refused: the last list stays.
      cluster.servers[0]!.delete("discovery.k8s.io/v1", "EndpointSlice", "default", "kubernetes-b");
      cluster.servers[0]!.delete("discovery.k8s.io/v1", "EndpointSlice", "default", "kubernetes");
      await new Promise((r) => setTimeout(r, 800));
      expect((await statusOf(lb)).listeners[0]!.endpoints).toHaveLength(2);
    } finally {
      await lb.close();
    }

    // The cluster (server A, the kubeconfig's) goes away: a restart uses the saved list.
    await cluster.servers[0]!.stop();
    const again = await startFrontLb(config);
    try {
      const s = await statusOf(again);
      expect(s.listeners[0]!.endpoints.map((e) => e.key).sort()).toEqual([a, b].sort());
      expect(s.listeners[0]!.endpoints.every((e) => e.source === "cache")).toBe(true);
      expect(s.listeners[0]!.discovery?.source).toBe("cache");
      // Server B still serves: clients get through (A refuses, the connect is retried on B).
      for (let i = 0; i < 3; i++) expect((await getVia(cluster, again.address, "/version")).status).toBe(200);
    } finally {
      await again.close();
      await cluster.servers[0]!.restart();
    }
  });
});
