/**
 * client-node informers against the test API server: they must keep an accurate cache across a
 * dropped watch (re-watch from the last resourceVersion) and across a 410 Gone after compaction
 * (relist).
 */
import { CoreV1Api, KubeConfig, makeInformer, type V1ConfigMap } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "../src/index.js";

async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function configMap(name: string, value: string): V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" }, data: { value } };
}

describe("client-node informer", () => {
  let server: TestApiServer;
  let informer: ReturnType<typeof makeInformer<V1ConfigMap>>;
  let lists = 0;
  const events: string[] = [];

  beforeAll(async () => {
    server = await TestApiServer.start();
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const api = kc.makeApiClient(CoreV1Api);
    informer = makeInformer<V1ConfigMap>(kc, "/api/v1/namespaces/default/configmaps", () => {
      lists++;
      return api.listNamespacedConfigMap({ namespace: "default" });
    });
    informer.on("add", (o) => events.push(`add ${o.metadata?.name}`));
    informer.on("update", (o) => events.push(`update ${o.metadata?.name}=${o.data?.value}`));
    informer.on("delete", (o) => events.push(`delete ${o.metadata?.name}`));
    informer.on("error", (err) => events.push(`error ${String(err)}`));
    server.create(configMap("a", "1"));
    await informer.start();
  });

  afterAll(async () => {
    await informer?.stop();
    await server?.close();
  });

  const names = (): string[] =>
    informer
      .list("default")
      .map((o) => o.metadata!.name!)
      .sort();

  it("lists, then sees watch events", async () => {
    await until("initial list", () => names().includes("a"));
    expect(lists).toBe(1);
    server.create(configMap("b", "1"));
    server.patch("v1", "ConfigMap", "default", "a", { data: { value: "2" } });
    await until("b added and a updated", () => events.includes("add b") && events.includes("update a=2"));
    expect(names()).toEqual(["a", "b"]);
  });

  it("survives a dropped watch: changes made while disconnected arrive without a relist", async () => {
    server.closeAllWatches();
    server.create(configMap("c", "1"));
    server.delete("v1", "ConfigMap", "default", "b");
    await until("c added and b deleted", () => events.includes("add c") && events.includes("delete b"));
    expect(names()).toEqual(["a", "c"]);
    expect(lists).toBe(1);
    expect(events.filter((e) => e.startsWith("error"))).toEqual([]);
  });

  it("survives a 410 Gone after compaction by relisting", async () => {
    server.closeAllWatches();
    server.create(configMap("d", "1"));
    server.delete("v1", "ConfigMap", "default", "a");
    server.compact();
    await until("relist after 410", () => lists >= 2 && names().join() === "c,d", 45_000);
    expect(events).toContain("add d");
    expect(events).toContain("delete a");
    // After the relist the informer watches again: new changes still arrive.
    server.patch("v1", "ConfigMap", "default", "c", { data: { value: "9" } });
    await until("update after relist", () => events.includes("update c=9"));
    expect(events.filter((e) => e.startsWith("error"))).toEqual([]);
  });
});
