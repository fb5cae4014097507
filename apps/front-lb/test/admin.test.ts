import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderStatsPage, type StartedFrontLb, startFrontLb } from "../src/index.js";
import { type Cluster, getVia, startCluster, waitFor } from "./helpers.js";

const run = promisify(execFile);
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const CLI = new URL("../dist/cli.js", import.meta.url).pathname;

describe("admin listener", () => {
  let cluster: Cluster;
  let lb: StartedFrontLb;
  beforeAll(async () => {
    cluster = await startCluster(2);
    lb = await startFrontLb({
      listeners: [
        {
          name: "api",
          address: "127.0.0.1:0",
          endpoints: cluster.endpoints,
          healthCheck: { interval: "300ms", fall: 1 },
        },
      ],
      admin: { address: "127.0.0.1:0" },
    });
    cluster.servers[1]!.setHealth("readyz", false);
    for (let i = 0; i < 3; i++) await getVia(cluster, lb.address, "/version");
    await waitFor("server 1 down", async () => {
      const s = (await (await fetch(`${lb.adminUrl}/status`)).json()) as {
        listeners: { endpoints: { state: string }[] }[];
      };
      return s.listeners[0]!.endpoints[1]!.state === "down";
    });
  });
  afterAll(async () => {
    await lb?.close();
    await cluster?.close();
  });

  it("exposes Prometheus metrics for endpoint state, connections, bytes, checks and their latency", async () => {
    const res = await fetch(`${lb.adminUrl}/metrics`);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    const [a, b] = cluster.endpoints;
    expect(text).toContain(`kproxy_front_lb_endpoint_up{listener="api",endpoint="${a}"} 1`);
    expect(text).toContain(`kproxy_front_lb_endpoint_up{listener="api",endpoint="${b}"} 0`);
    expect(text).toMatch(
      new RegExp(`kproxy_front_lb_connections_total\\{listener="api",endpoint="${a}"\\} [1-9]`),
    );
    expect(text).toMatch(
      /kproxy_front_lb_bytes_total\{listener="api",endpoint="[^"]+",direction="to_upstream"\} [1-9]/,
    );
    expect(text).toMatch(
      new RegExp(
        `kproxy_front_lb_health_checks_total\\{listener="api",endpoint="${b}",result="failure"\\} [1-9]`,
      ),
    );
    expect(text).toMatch(
      /kproxy_front_lb_health_check_duration_seconds_bucket\{listener="api",endpoint="[^"]+",le="\+Inf"\} [1-9]/,
    );
    expect(text).toContain("# TYPE kproxy_front_lb_failovers_total counter");
    expect((await fetch(`${lb.adminUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${lb.adminUrl}/healthz`)).status).toBe(200);
  });

  it("serves /status as JSON with each endpoint's state and last check", async () => {
    const s = (await (await fetch(`${lb.adminUrl}/status`)).json()) as {
      listeners: {
        name: string;
        endpoints: { key: string; state: string; lastCheck: { ok: boolean; status?: number } }[];
      }[];
    };
    expect(s.listeners[0]!.name).toBe("api");
    expect(s.listeners[0]!.endpoints[0]).toMatchObject({ state: "up", lastCheck: { ok: true, status: 200 } });
    expect(s.listeners[0]!.endpoints[1]).toMatchObject({
      state: "down",
      lastCheck: { ok: false, status: 500 },
    });
  });

  it("embeds the status JSON safely in the stats page", () => {
    const html = renderStatsPage({ listeners: [{ name: "</script><script>alert(1)</script>" }] });
    expect(html).not.toContain("</script><script>alert(1)");
    expect(html).toContain("\\u003c/script>");
  });

  it.skipIf(CHROMIUM === undefined)(
    "renders the stats page in a real headless browser (chromium)",
    async () => {
      const profile = mkdtempSync(join(tmpdir(), "front-lb-chromium-"));
      const { stdout } = await run(
        CHROMIUM!,
        [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          `--user-data-dir=${profile}`,
          "--dump-dom",
          `${lb.adminUrl}/stats`,
        ],
        { timeout: 60_000, maxBuffer: 10 * 1024 * 1024 },
      );
      // The rows exist only if the page's script ran and drew the status.
      const [a, b] = cluster.endpoints;
      expect(stdout).toMatch(
        new RegExp(`<tr class="up" data-endpoint="${a}"><td>${a}</td><td class="state">up</td>`),
      );
      expect(stdout).toMatch(
        new RegExp(`<tr class="down" data-endpoint="${b}"><td>${b}</td><td class="state">down</td>`),
      );
      expect(stdout).toContain('<table data-listener="api">');
      expect(stdout).toMatch(/failed 500/);
    },
  );
});
if (CHROMIUM === undefined)
  console.warn("SKIPPED: the stats-page browser test needs chromium (apt-get install -y chromium)");

describe("the front-lb binary", () => {
  it.skipIf(!existsSync(CLI))(
    "exits 1 with a file:line:column message for a bad config, never a stack",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "front-lb-cli-"));
      const file = join(dir, "bad.yaml");
      writeFileSync(
        file,
        "listeners:\n  - address: 127.0.0.1:0\n    endpoints: [10.0.0.1:6443]\n    retries: many\n",
      );
      const err = await run(process.execPath, [CLI, "--config", file]).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect((err as { code: number }).code).toBe(1);
      expect((err as { stderr: string }).stderr).toContain(
        `${file}:4:14: listeners[0].retries: must be an integer from 0 to 100, got "many"`,
      );
      expect((err as { stderr: string }).stderr).not.toMatch(/\n\s+at /);
    },
  );

  it.skipIf(!existsSync(CLI))("reloads on SIGHUP and drains then exits 0 on SIGTERM", async () => {
    const cluster = await startCluster(1);
    const dir = mkdtempSync(join(tmpdir(), "front-lb-cli-"));
    const file = join(dir, "lb.yaml");
    writeFileSync(
      file,
      `listeners:\n  - name: api\n    address: 127.0.0.1:0\n    endpoints: [${cluster.endpoints[0]}]\nadmin: { address: "127.0.0.1:0" }\nshutdownTimeout: 1s\n`,
    );
    const child = spawn(process.execPath, [CLI, "--config", file], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    try {
      await waitFor("listening", () => /admin listening/.test(err));
      writeFileSync(
        file,
        `listeners:\n  - name: api\n    address: 127.0.0.1:0\n    balance: random\n    endpoints: [${cluster.endpoints[0]}]\nadmin: { address: "127.0.0.1:0" }\nshutdownTimeout: 1s\n`,
      );
      child.kill("SIGHUP");
      await waitFor("reloaded", () => /configuration reloaded/.test(err));
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(err).toMatch(/shutting down: draining connections[\s\S]*stopped/);
    } finally {
      child.kill("SIGKILL");
      await cluster.close();
    }
  });
});
