import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Sandbox, startSandbox, WORKLOADS } from "../src/index.js";

const run = promisify(execFile);
const KUBECTL = "/usr/bin/kubectl";
const hasKubectl = existsSync(KUBECTL);
if (!hasKubectl) console.warn("SKIPPING kubectl checks of the sandbox: /usr/bin/kubectl is absent");

describe("sandbox", () => {
  let dir: string;
  let sandbox: Sandbox;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kproxy-sandbox-"));
    sandbox = await startSandbox({ dir, podSubnet: 91 });
  }, 60_000);

  afterAll(async () => {
    await sandbox?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs one local HTTP server per pod, each on its own loopback IP", async () => {
    const expected = WORKLOADS.reduce((n, w) => n + w.replicas, 0);
    expect(sandbox.backends).toHaveLength(expected);
    expect(new Set(sandbox.backends.map((b) => b.ip)).size).toBe(expected);
    const b = sandbox.backends[0]!;
    const res = await fetch(`http://${b.ip}:${b.port}/info?x=1`);
    const body = (await res.json()) as { pod: string; path: string; query: string };
    expect(body).toMatchObject({ pod: b.pod, path: "/info", query: "?x=1" });
  });

  it.skipIf(!hasKubectl)(
    "is a cluster the real kubectl can use: services, ready endpoints, exec",
    async () => {
      const kc = sandbox.kubeconfigPath;
      const svc = await run(KUBECTL, ["--kubeconfig", kc, "get", "svc", "web", "-o", "json"]);
      const service = JSON.parse(svc.stdout);
      expect(service.spec.clusterIP).toMatch(/^10\.96\./);
      const slices = await run(KUBECTL, [
        "--kubeconfig",
        kc,
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
      ]);
      const addresses = JSON.parse(slices.stdout)
        .items.flatMap((s: { endpoints: { addresses: string[] }[] }) =>
          s.endpoints.flatMap((e) => e.addresses),
        )
        .sort();
      const webIps = sandbox.backends
        .filter((b) => b.pod.startsWith("web-"))
        .map((b) => b.ip)
        .sort();
      expect(addresses).toEqual(webIps);
      const exec = await run(KUBECTL, ["--kubeconfig", kc, "exec", "web-0", "--", "echo", "hello"]);
      expect(exec.stdout).toBe("hello\n");
    },
    60_000,
  );

  it("serves the cluster through kubectl-proxy, without credentials, as kubectl proxy would", async () => {
    expect(sandbox.kubectlProxy).toBeDefined();
    const res = await fetch(`${sandbox.kubectlProxy!.url}/api/v1/namespaces/demo/services`);
    expect(res.status).toBe(200);
    const list = (await res.json()) as { items: { metadata: { name: string } }[] };
    expect(list.items.map((s) => s.metadata.name).sort()).toEqual(["api", "web"]);
    const denied = await fetch(`${sandbox.kubectlProxy!.url}/api/v1/namespaces/demo/pods/web-0/exec`, {
      method: "POST",
    });
    expect(denied.status).toBe(403);
  });

  it.skipIf(!hasKubectl)(
    "serves the cluster through front-lb, in front of two API servers",
    async () => {
      expect(sandbox.frontLb).toBeDefined();
      const ns = await run(KUBECTL, [
        "--kubeconfig",
        sandbox.frontLb!.kubeconfigPath,
        "get",
        "ns",
        "-o",
        "name",
      ]);
      expect(ns.stdout).toContain("namespace/demo");
      const status = (await (await fetch(`${sandbox.frontLb!.adminUrl}/status`)).json()) as unknown;
      expect(JSON.stringify(status)).toContain("127.0.0.2");
    },
    60_000,
  );

  it("reaches a service through apiserver-proxy, with links rewritten", async () => {
    expect(sandbox.apiserverProxy).toBeDefined();
    const { Agent, fetch: ufetch } = await import("undici");
    const dispatcher = new Agent({ connect: { ca: readFileSync(sandbox.apiserverProxy!.caPath) } });
    try {
      const base = `${sandbox.apiserverProxy!.url}/api/v1/namespaces/demo/services/web:http/proxy`;
      const res = await ufetch(`${base}/`, {
        headers: { authorization: `Bearer ${sandbox.apiserverProxy!.token}` },
        dispatcher,
      });
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(html).toMatch(/Hello from demo\/web-\d/);
      expect(html).toContain('href="/api/v1/namespaces/demo/services/web:http/proxy/info"');
      const anonymous = await ufetch(`${base}/`, { dispatcher });
      expect(anonymous.status).toBe(401);
    } finally {
      await dispatcher.close();
    }
  });
});

describe("sandbox CLI", () => {
  it("prints what to try, and stops cleanly on SIGINT", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kproxy-sandbox-cli-"));
    try {
      const child = spawn(
        process.execPath,
        [
          join(import.meta.dirname, "../dist/cli.js"),
          "--dir",
          dir,
          "--pod-subnet",
          "92",
          "--kubectl-proxy-port",
          "0",
        ],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      const started = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 30_000);
        child.stdout.on("data", () => {
          if (out.includes("Ctrl-C stops everything")) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        child.once("exit", () => resolve(false));
      });
      expect(started, out).toBe(true);
      expect(out).toMatch(new RegExp(`kubeconfig +${join(dir, "kubeconfig")}`));
      expect(out).toContain("kubectl get svc");
      const token = readFileSync(join(dir, "token"), "utf8");
      expect(token.length).toBeGreaterThan(10);
      expect(out).not.toContain(token); // the token is in a file, never printed
      const code = await new Promise<number | null>((resolve) => {
        child.once("exit", (c) => resolve(c));
        child.kill("SIGINT");
      });
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("rejects a bad flag with a one-line error and exit 1", async () => {
    const err = await run(process.execPath, [join(import.meta.dirname, "../dist/cli.js"), "--bogus"]).catch(
      (e) => e,
    );
    expect(err.code).toBe(1);
    expect(err.stderr).toBe("error: unknown flag: --bogus\n");
  });
});
