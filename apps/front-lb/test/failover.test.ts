import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import type { Clock } from "@kproxy/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FrontLbOptions, main, type StartedFrontLb, startFrontLb } from "../src/index.js";
import { type Cluster, getVia, kubeconfigVia, metric, startCluster, waitFor } from "./helpers.js";

const run = promisify(execFile);
const KUBECTL = "/usr/bin/kubectl";
const INTERVAL_MS = 500;
const CONNECT_TIMEOUT_MS = 1000;

interface LoopResult {
  ok: number;
  failed: { at: number; error: string }[];
}

/** `n` clients, each doing new-connection requests back to back until stopped. */
function clientLoops(cluster: Cluster, address: string, n: number) {
  let running = true;
  const result: LoopResult = { ok: 0, failed: [] };
  const loops = Array.from({ length: n }, async () => {
    while (running) {
      try {
        const r = await getVia(cluster, address, "/api/v1/namespaces/default", 15_000);
        if (r.status === 200) result.ok++;
        else result.failed.push({ at: Date.now(), error: `status ${r.status}` });
      } catch (err) {
        result.failed.push({ at: Date.now(), error: (err as Error).message });
      }
    }
  });
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

/** A TLS connection through front-lb kept open (as a kubectl watch would be). */
async function holdConnection(
  cluster: Cluster,
  address: string,
): Promise<{ socket: TLSSocket; closed: Promise<number> }> {
  const [host, port] = address.split(":");
  const socket = tlsConnect({
    host,
    port: Number(port),
    ca: cluster.ca.certPem,
    cert: cluster.client.certPem,
    key: cluster.client.keyPem,
    servername: "localhost",
  });
  socket.on("error", () => {});
  await new Promise((r, j) => {
    socket.once("secureConnect", r);
    socket.once("error", j);
  });
  const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now())));
  return { socket, closed };
}

async function connectionsOf(adminUrl: string, endpoint: string): Promise<number> {
  return (await metric(adminUrl, "kproxy_front_lb_connections_total", { endpoint })) ?? 0;
}

describe("failover across three API servers", () => {
  let cluster: Cluster;
  let lb: StartedFrontLb;
  beforeAll(async () => {
    cluster = await startCluster(3);
  });
  afterEach(async () => {
    await lb?.close();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const startLb = (extra: Record<string, unknown> = {}) =>
    startFrontLb({
      listeners: [
        {
          name: "api",
          address: "127.0.0.1:0",
          endpoints: cluster.endpoints,
          connectTimeout: `${CONNECT_TIMEOUT_MS}ms`,
          healthCheck: { interval: `${INTERVAL_MS}ms`, timeout: "400ms", fall: 1, rise: 1, jitter: 0 },
          ...extra,
        },
      ],
      admin: { address: "127.0.0.1:0" },
    });

  it("a failing /readyz moves new connections away within one interval + connect timeout, with no failed request", async () => {
    lb = await startLb({ drainTimeout: "never" });
    const loops = clientLoops(cluster, lb.address, 3);
    await waitFor("traffic on every server", async () => {
      for (const ep of cluster.endpoints) if ((await connectionsOf(lb.adminUrl!, ep)) < 2) return false;
      return true;
    });
    const target = cluster.endpoints[0]!;
    cluster.servers[0]!.setHealth("readyz", false);
    await new Promise((r) => setTimeout(r, INTERVAL_MS + CONNECT_TIMEOUT_MS));
    const frozen = await connectionsOf(lb.adminUrl!, target);
    const othersBefore =
      (await connectionsOf(lb.adminUrl!, cluster.endpoints[1]!)) +
      (await connectionsOf(lb.adminUrl!, cluster.endpoints[2]!));
    await new Promise((r) => setTimeout(r, 1500));
    const othersAfter =
      (await connectionsOf(lb.adminUrl!, cluster.endpoints[1]!)) +
      (await connectionsOf(lb.adminUrl!, cluster.endpoints[2]!));
    expect(await connectionsOf(lb.adminUrl!, target)).toBe(frozen);
    expect(othersAfter).toBeGreaterThan(othersBefore);
    cluster.servers[0]!.setHealth("readyz", true);
    await waitFor(
      "server 0 back in rotation",
      async () => (await connectionsOf(lb.adminUrl!, target)) > frozen,
    );
    const r = await loops.stop();
    expect(r.failed).toEqual([]);
    expect(r.ok).toBeGreaterThan(20);
  });

  it("a stopped server loses only its in-flight requests; new connections go to the others at once", async () => {
    lb = await startLb();
    const n = 3;
    const loops = clientLoops(cluster, lb.address, n);
    await waitFor("traffic", () => loops.result.ok > 15);
    const stoppedAt = Date.now();
    await cluster.servers[1]!.stop();
    await new Promise((r) => setTimeout(r, INTERVAL_MS + CONNECT_TIMEOUT_MS));
    const failuresAfterWindow = loops.result.failed.length;
    const okAfterWindow = loops.result.ok;
    await new Promise((r) => setTimeout(r, 1500));
    const r = await loops.stop();
    // At most one request per client was in flight on the stopped server.
    expect(r.failed.length).toBeLessThanOrEqual(n);
    for (const f of r.failed) expect(f.at - stoppedAt).toBeLessThan(INTERVAL_MS + CONNECT_TIMEOUT_MS);
    expect(r.failed.length).toBe(failuresAfterWindow);
    expect(r.ok).toBeGreaterThan(okAfterWindow);
    expect(
      await metric(lb.adminUrl!, "kproxy_front_lb_endpoint_up", { endpoint: cluster.endpoints[1]! }),
    ).toBe(0);
    await cluster.servers[1]!.restart();
    await waitFor(
      "server 1 up again",
      async () =>
        (await metric(lb.adminUrl!, "kproxy_front_lb_endpoint_up", { endpoint: cluster.endpoints[1]! })) ===
        1,
    );
  });

  it.skipIf(!existsSync(KUBECTL))(
    "real kubectl loops through a server stop without errors after the in-flight ones",
    async () => {
      lb = await startLb();
      const dir = mkdtempSync(join(tmpdir(), "front-lb-kc-"));
      const kc = join(dir, "kubeconfig");
      writeFileSync(kc, kubeconfigVia(cluster, lb.address), { mode: 0o600 });
      let running = true;
      const outcomes: { ok: boolean; at: number; err?: string }[] = [];
      const loop = async () => {
        while (running) {
          try {
            await run(
              KUBECTL,
              ["--kubeconfig", kc, "get", "namespaces", "-o", "name", "--request-timeout=10s"],
              { timeout: 30_000 },
            );
            outcomes.push({ ok: true, at: Date.now() });
          } catch (err) {
            outcomes.push({ ok: false, at: Date.now(), err: (err as Error).message });
          }
        }
      };
      const loops = [loop(), loop()];
      await waitFor("kubectl traffic", () => outcomes.length >= 4, 60_000);
      const stoppedAt = Date.now();
      await cluster.servers[2]!.stop();
      await waitFor(
        "kubectl after the stop",
        () => outcomes.filter((o) => o.at > stoppedAt + INTERVAL_MS + CONNECT_TIMEOUT_MS).length >= 4,
        60_000,
      );
      running = false;
      await Promise.all(loops);
      const failed = outcomes.filter((o) => !o.ok);
      expect(failed.length).toBeLessThanOrEqual(2);
      for (const f of failed) expect(f.at - stoppedAt).toBeLessThan(15_000);
      expect(outcomes.filter((o) => o.ok && o.at > stoppedAt).length).toBeGreaterThanOrEqual(4);
      await cluster.servers[2]!.restart();
    },
  );
});

describe("draining", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(2);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** Holds one connection per server, fails server 0's /readyz, expects only its connection drained. */
  async function drainsTheFailedEndpoint(options: FrontLbOptions = {}): Promise<void> {
    const lb = await startFrontLb(
      {
        listeners: [
          {
            address: "127.0.0.1:0",
            balance: "round-robin",
            endpoints: cluster.endpoints,
            drainTimeout: "1s",
            healthCheck: { interval: "200ms", fall: 1, rise: 1 },
          },
        ],
        admin: { address: "127.0.0.1:0" },
      },
      options,
    );
    try {
      const held = [await holdConnection(cluster, lb.address), await holdConnection(cluster, lb.address)];
      await waitFor(
        "one connection per server",
        async () =>
          (await metric(lb.adminUrl!, "kproxy_front_lb_connections_active", {
            endpoint: cluster.endpoints[0]!,
          })) === 1 &&
          (await metric(lb.adminUrl!, "kproxy_front_lb_connections_active", {
            endpoint: cluster.endpoints[1]!,
          })) === 1,
      );
      cluster.servers[0]!.setHealth("readyz", false);
      const failedAt = Date.now();
      // Bounded: a drain that never happens fails here, not at the test timeout.
      const closedAt = await Promise.race([
        ...held.map((h) => h.closed),
        new Promise<number>((_, reject) =>
          setTimeout(() => reject(new Error("no connection was drained within 20 s")), 20_000),
        ),
      ]);
      expect(closedAt - failedAt).toBeGreaterThanOrEqual(900);
      expect(
        await metric(lb.adminUrl!, "kproxy_front_lb_connections_drained_total", {
          endpoint: cluster.endpoints[0]!,
        }),
      ).toBe(1);
      expect(held.filter((h) => !h.socket.destroyed)).toHaveLength(1);
      expect(
        await metric(lb.adminUrl!, "kproxy_front_lb_connections_active", { endpoint: cluster.endpoints[1]! }),
      ).toBe(1);
      for (const h of held) h.socket.destroy();
    } finally {
      cluster.servers[0]!.setHealth("readyz", true);
      await lb.close();
    }
  }

  it("closes the connections of a failed endpoint after drainTimeout, and keeps the healthy ones", async () => {
    await drainsTheFailedEndpoint();
  });

  it("still drains when the drain timer fires before the clock says the timeout has passed", async () => {
    // Node's timers run on a truncated monotonic clock and may fire up to a millisecond before
    // Date.now() says the delay has passed (a drain that then did nothing hung forever): this
    // clock's timers always fire 5 ms early.
    const early: Clock = {
      now: () => Date.now(),
      setTimeout: (fn, ms) => setTimeout(fn, Math.max(1, ms - 5)),
      clearTimeout: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
    };
    await drainsTheFailedEndpoint({ clock: early });
  });
});

describe("reload (SIGHUP / file change) and SIGTERM through main()", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(2);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("applies a new file without closing healthy connections; drains a removed endpoint; drains on shutdown", async () => {
    const dir = mkdtempSync(join(tmpdir(), "front-lb-reload-"));
    const file = join(dir, "front-lb.yaml");
    const probe = await import("node:net");
    const free = await new Promise<number>((r) => {
      const s = probe.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const adminPort = await new Promise<number>((r) => {
      const s = probe.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const yaml = (endpoints: string[], balance: string) => `
admin: { address: 127.0.0.1:${adminPort} }
shutdownTimeout: 2s
listeners:
  - name: api
    address: 127.0.0.1:${free}
    balance: ${balance}
    drainTimeout: 1s
    endpoints: [${endpoints.join(", ")}]
    healthCheck: { interval: 300ms }
`;
    writeFileSync(file, yaml(cluster.endpoints, "round-robin"));
    let triggerReload: () => void = () => {};
    let stop!: (v: unknown) => void;
    const shutdown = new Promise((r) => {
      stop = r;
    });
    const logs: string[] = [];
    const exited = main(["--config", file], {
      stderr: (t) => logs.push(t),
      shutdown,
      onReload: (fn) => {
        triggerReload = fn;
      },
    });
    const address = `127.0.0.1:${free}`;
    const admin = `http://127.0.0.1:${adminPort}`;
    await waitFor(
      "listening",
      async () => (await fetch(`${admin}/readyz`).catch(() => undefined))?.status === 200,
    );
    const held = [await holdConnection(cluster, address), await holdConnection(cluster, address)];
    await waitFor(
      "held on both",
      async () =>
        (await metric(admin, "kproxy_front_lb_connections_active", { endpoint: cluster.endpoints[0]! })) ===
          1 &&
        (await metric(admin, "kproxy_front_lb_connections_active", { endpoint: cluster.endpoints[1]! })) ===
          1,
    );

    // An invalid file is refused and changes nothing.
    writeFileSync(file, "listeners: [{ address: nope }]\n");
    triggerReload();
    await waitFor(
      "failed reload counted",
      async () => (await metric(admin, "kproxy_front_lb_config_reloads_total", { result: "failure" })) === 1,
    );
    expect(logs.join("")).toMatch(/reload failed: keeping the running configuration/);

    // Remove endpoint 1 and change the strategy: endpoint 0's connection stays, endpoint 1's drains.
    writeFileSync(file, yaml([cluster.endpoints[0]!], "least-connections"));
    const reloadedAt = Date.now();
    triggerReload();
    await waitFor(
      "reloaded",
      async () => (await metric(admin, "kproxy_front_lb_config_reloads_total", { result: "success" })) === 1,
    );
    const status = (await (await fetch(`${admin}/status`)).json()) as {
      listeners: { balance: string; endpoints: { key: string; state: string }[] }[];
    };
    expect(status.listeners[0]!.balance).toBe("least-connections");
    expect(status.listeners[0]!.endpoints.find((e) => e.key === cluster.endpoints[1])?.state).toBe("removed");
    const closedAt = await Promise.race(held.map((h) => h.closed));
    expect(closedAt - reloadedAt).toBeGreaterThanOrEqual(900);
    const survivor = held.find((h) => !h.socket.destroyed)!;
    expect(survivor).toBeDefined();
    // The survivor still carries traffic: speak HTTP over it.
    survivor.socket.write("GET /version HTTP/1.1\r\nHost: x\r\n\r\n");
    const answer = await new Promise<string>((r) =>
      survivor.socket.once("data", (d: Buffer) => r(d.toString())),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect((await getVia(cluster, address, "/version")).status).toBe(200);

    // SIGTERM: stop accepting, let the open connection finish within shutdownTimeout, then exit 0.
    const stoppedAt = Date.now();
    stop("SIGTERM");
    await waitFor(
      "not ready while draining",
      async () => (await fetch(`${admin}/readyz`).catch(() => undefined))?.status !== 200,
    );
    await expect(getVia(cluster, address, "/version", 2000)).rejects.toThrow();
    expect(await exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1500);
    expect(survivor.socket.destroyed || (await survivor.closed) > 0).toBe(true);
  });
});
