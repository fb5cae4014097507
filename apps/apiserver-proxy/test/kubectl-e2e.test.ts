import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Backend,
  type Cluster,
  pod,
  service,
  startBackend,
  startCluster,
  writeText,
} from "./helpers.js";

const run = promisify(execFile);
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const KUBECTL = "/usr/bin/kubectl";

describe.skipIf(!existsSync(CLI))("the apiserver-proxy binary with real clients", () => {
  let cluster: Cluster;
  let web: Backend;
  let child: ChildProcess;
  let url = "";
  let adminUrl = "";
  let stderr = "";
  let exited: Promise<number | null>;

  beforeAll(async () => {
    cluster = await startCluster();
    cluster.users.set("alice-token", { username: "alice", groups: [] });
    cluster.allow.set("alice", new Set(["services"]));
    web = await startBackend("web", (req, res) => {
      const page = `<!doctype html><html><head><script src="/app.js"></script></head><body><a href="/about">About</a> <a href="other.html">rel</a></body></html>`;
      if (req.url === "/index.html" && /gzip/.test(String(req.headers["accept-encoding"]))) {
        const body = gzipSync(page);
        res.writeHead(200, {
          "Content-Type": "text/html; charset=utf-8",
          "Content-Encoding": "gzip",
          "Content-Length": body.length,
        });
        res.end(body);
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(`hello from ${req.url}\n`);
    });
    cluster.api.create(pod("web-0", "127.0.0.1", web.port, { app: "web" }));
    cluster.api.create(service("web", { app: "web" }));
    const certFile = join(cluster.dir, "tls.crt");
    const keyFile = join(cluster.dir, "tls.key");
    const caFile = join(cluster.dir, "ca.crt");
    await writeText(certFile, cluster.serverCert.certPem);
    await writeText(keyFile, cluster.serverCert.keyPem);
    await writeText(caFile, cluster.ca.certPem);
    child = spawn(
      process.execPath,
      [
        CLI,
        `--kubeconfig=${cluster.kubeconfigPath}`,
        `--tls-cert-file=${certFile}`,
        `--tls-private-key-file=${keyFile}`,
        `--client-ca-file=${caFile}`,
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--admin-bind-address=127.0.0.1",
        "--admin-port=0",
        "--dev-allow-loopback-endpoints",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    let stdout = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start line; stderr: ${stderr}`)), 30_000);
      child.stdout?.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = /Serving securely on [^:]+:(\d+)\n/.exec(stdout);
        const a = /Health and metrics on (\S+)\n/.exec(stdout);
        if (m && a) {
          clearTimeout(timer);
          url = `https://127.0.0.1:${m[1]}`;
          adminUrl = a[1] as string;
          resolve();
        }
      });
      child.once("exit", () => reject(new Error(`exited early: ${stderr}`)));
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await cluster?.close();
    await web?.close();
  });

  it("serves the real kubectl: get --raw through a service", async () => {
    const caFile = join(cluster.dir, "ca.crt");
    const { stdout } = await run(KUBECTL, [
      `--server=${url}`,
      `--certificate-authority=${caFile}`,
      "--token=alice-token",
      "get",
      "--raw",
      "/api/v1/namespaces/default/services/web:http/proxy/",
    ]);
    expect(stdout).toBe("hello from /\n");
    const denied = await run(KUBECTL, [
      `--server=${url}`,
      `--certificate-authority=${caFile}`,
      "--token=wrong",
      "get",
      "--raw",
      "/api/v1/namespaces/default/services/web:http/proxy/",
    ]).catch((err: { stderr: string }) => err);
    expect((denied as { stderr: string }).stderr).toContain("Unauthorized");
  });

  it("rewrites links of a gzip HTML page for a browser-like client", async () => {
    const res = await request(`${url}/api/v1/namespaces/default/services/web:http/proxy/index.html`, {
      dispatcher: cluster.client(),
      headers: {
        authorization: "Bearer alice-token",
        accept: "text/html,application/xhtml+xml",
        "accept-encoding": "gzip, deflate, br",
        "user-agent": "Mozilla/5.0",
      },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-encoding"]).toBe("gzip");
    const html = gunzipSync(Buffer.from(await res.body.arrayBuffer())).toString();
    const prefix = "/api/v1/namespaces/default/services/web:http/proxy";
    expect(html).toBe(
      `<!doctype html><html><head><script src="${prefix}/app.js"></script></head><body><a href="${prefix}/about">About</a> <a href="other.html">rel</a></body></html>`,
    );
  });

  it("serves health and metrics, logs access without secrets, and shuts down gracefully on SIGTERM", async () => {
    expect((await fetch(`${adminUrl}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${adminUrl}/metrics`)).text()).toContain(
      "kproxy_apiserver_proxy_requests_total",
    );
    expect(stderr).toContain('"user":"alice"');
    expect(stderr).not.toContain("alice-token");
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("--workers 2 serves one port from two processes and reports both in /metrics", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createNetServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const w = spawn(
      process.execPath,
      [
        CLI,
        `--kubeconfig=${cluster.kubeconfigPath}`,
        `--tls-cert-file=${join(cluster.dir, "tls.crt")}`,
        `--tls-private-key-file=${join(cluster.dir, "tls.key")}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        "--admin-bind-address=127.0.0.1",
        "--admin-port=0",
        "--access-log=",
        "--workers=2",
        "--dev-allow-loopback-endpoints",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const wExited = new Promise<number | null>((resolve) => w.once("exit", (code) => resolve(code)));
    try {
      let out = "";
      const admin = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no start line")), 30_000);
        w.stdout?.on("data", (d: Buffer) => {
          out += d.toString();
          const a = /Health and metrics on (\S+)\n/.exec(out);
          if (a) {
            clearTimeout(timer);
            resolve(a[1] as string);
          }
        });
      });
      const deadline = Date.now() + 30_000;
      while ((await fetch(`${admin}/readyz`)).status !== 200 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      // New connections are spread by the kernel: after enough of them, both workers have served.
      let metrics = "";
      for (let i = 0; i < 40; i++) {
        const agent = cluster.client();
        const res = await request(
          `https://127.0.0.1:${port}/api/v1/namespaces/default/services/web:http/proxy/w`,
          {
            dispatcher: agent,
            headers: { authorization: "Bearer alice-token" },
          },
        );
        expect(await res.body.text()).toBe("hello from /w\n");
        await agent.close();
        metrics = await (await fetch(`${admin}/metrics`)).text();
        if (/requests_total\{worker="0"/.test(metrics) && /requests_total\{worker="1"/.test(metrics)) break;
      }
      expect(metrics).toMatch(/kproxy_apiserver_proxy_requests_total\{worker="0",kind="service"/);
      expect(metrics).toMatch(/kproxy_apiserver_proxy_requests_total\{worker="1",kind="service"/);
      w.kill("SIGTERM");
      expect(await wExited).toBe(0);
    } finally {
      if (w.exitCode === null) w.kill("SIGKILL");
    }
  });

  it("refuses to start without a TLS certificate, with a clear error", async () => {
    const r = await run(process.execPath, [CLI, `--kubeconfig=${cluster.kubeconfigPath}`]).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect((r as { code: number }).code).toBe(1);
    expect((r as { stderr: string }).stderr).toBe(
      "error: --tls-cert-file and --tls-private-key-file are required: the proxy only serves HTTPS\n",
    );
  });
});
