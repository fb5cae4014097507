/**
 * Which engine serves when the API server is (or is not) reached through an HTTP proxy, decided
 * by ClusterConnection.proxyUrl() without building an undici dispatcher; and the lean engine's
 * CLI never loads undici.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConnection } from "@kproxy/kubeconfig";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubectlProxy } from "./server.js";

const dir = mkdtempSync(join(tmpdir(), "kproxy-engine-"));
const home = join(dir, "home");

interface Recorder {
  port: number;
  /** Request targets as received: "/path" directly, "http://host/path" through a proxy. */
  targets: string[];
  close(): Promise<void>;
}

/** An HTTP server that answers 200 with its name and records each request's target. */
async function startRecorder(name: string): Promise<Recorder> {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    targets.push(req.url ?? "");
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(name);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    targets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path, agent: false, headers: { host: "localhost" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error("timeout")));
  });
}

const filter = {
  acceptPaths: [/^.*/],
  rejectPaths: [],
  acceptHosts: [/^localhost$/],
  rejectMethods: [],
  keepIPv6Brackets: false,
};

let api: Recorder;
let proxy: Recorder;
const started: KubectlProxy[] = [];

beforeAll(async () => {
  [api, proxy] = await Promise.all([startRecorder("api"), startRecorder("proxy")]);
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.close()));
  await Promise.all([api.close(), proxy.close()]);
  rmSync(dir, { recursive: true, force: true });
});

async function serve(options: Parameters<typeof loadConnection>[0]): Promise<KubectlProxy> {
  const connection = await loadConnection({ ...options, env: { HOME: home, ...options?.env } });
  const p = new KubectlProxy({ connection, port: 0, filter });
  started.push(p);
  await p.listen();
  return p;
}

describe("engine choice by proxy", () => {
  it("serves with the lean engine when HTTP_PROXY does not apply to the API server (loopback, NO_PROXY)", async () => {
    const proxyEnv = { HTTP_PROXY: `http://127.0.0.1:${proxy.port}` };
    const loopback = await serve({ server: `http://127.0.0.1:${api.port}`, env: proxyEnv });
    expect(loopback.engine).toBe("fast");
    expect(await get(loopback.port, "/a")).toEqual({ status: 200, body: "api" });
    // [::ffff:127.0.0.1] is not a loopback name: only NO_PROXY exempts it
    const exempt = await serve({
      server: `http://[::ffff:127.0.0.1]:${api.port}`,
      env: { ...proxyEnv, NO_PROXY: "example.com,::ffff:7f00:1" },
    });
    expect(exempt.engine).toBe("fast");
    expect(await get(exempt.port, "/b")).toEqual({ status: 200, body: "api" });
    expect(proxy.targets).toEqual([]);
  });

  it("serves with node's http + undici when the API server is reached through a proxy", async () => {
    const viaEnv = await serve({
      server: `http://[::ffff:127.0.0.1]:${api.port}`,
      env: { HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: "example.com" },
    });
    expect(viaEnv.engine).toBe("node");
    expect(await get(viaEnv.port, "/c")).toEqual({ status: 200, body: "proxy" });
    expect(proxy.targets.at(-1)).toBe(`http://[::ffff:7f00:1]:${api.port}/c`);

    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "c",
            cluster: {
              server: `http://127.0.0.1:${api.port}`,
              "proxy-url": `http://127.0.0.1:${proxy.port}`,
            },
          },
        ],
        users: [{ name: "u", user: {} }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const viaKubeconfig = await serve({ kubeconfig });
    expect(viaKubeconfig.engine).toBe("node");
    expect(await get(viaKubeconfig.port, "/d")).toEqual({ status: 200, body: "proxy" });
    expect(proxy.targets.at(-1)).toBe(`http://127.0.0.1:${api.port}/d`);
  });

  it("reports an unusable HTTPS_PROXY on each request instead of ignoring it", async () => {
    const p = await serve({
      server: `https://[::ffff:127.0.0.1]:${api.port}`,
      insecureSkipTlsVerify: true,
      env: { HTTPS_PROXY: "proxy.example:3128" },
    });
    expect(p.engine).toBe("node");
    const res = await get(p.port, "/e");
    expect(res.status).toBe(500);
    expect(res.body).toContain("$HTTPS_PROXY");
  });

  it("asks the dispatcher when the connection has no proxyUrl()", async () => {
    const conn = await loadConnection({ server: `http://127.0.0.1:${api.port}`, env: { HOME: home } });
    const p = new KubectlProxy({
      connection: {
        server: conn.server,
        serverPath: conn.serverPath,
        hostHeader: conn.hostHeader,
        isTLS: conn.isTLS,
        dispatcher: () => conn.dispatcher(),
        tlsOptions: () => conn.tlsOptions(),
        applyAuth: (h) => conn.applyAuth(h),
      },
      port: 0,
      filter,
    });
    started.push(p);
    await p.listen();
    expect(p.engine).toBe("fast");
    expect(await get(p.port, "/f")).toEqual({ status: 200, body: "api" });
  });
});

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** Loaded before the CLI: prints the first module under node_modules/undici that loads. */
const HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module";
let reported = false;
registerHooks({
  load(url, context, next) {
    if (!reported && url.includes("/node_modules/undici/")) {
      reported = true;
      process.stderr.write("UNDICI LOADED " + url + "\\n");
    }
    return next(url, context);
  },
});
`)}`;

describe("the kubectl-proxy CLI on the lean engine", () => {
  it("serves requests without loading undici", async () => {
    expect(existsSync(CLI), "build @kproxy/kubectl-proxy first (dist/cli.js)").toBe(true);
    const child = spawn(
      process.execPath,
      ["--import", HOOK, CLI, `--server=http://127.0.0.1:${api.port}`, "--port=0", "--workers=2"],
      { env: { PATH: process.env.PATH ?? "", HOME: home }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    try {
      const deadline = Date.now() + 30_000;
      while (!/Starting to serve on \S+:(\d+)\n/.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`did not start: ${out} ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const port = Number(/Starting to serve on \S+:(\d+)\n/.exec(out)?.[1]);
      for (let i = 0; i < 4; i++) expect(await get(port, `/cli/${i}`)).toEqual({ status: 200, body: "api" });
      expect(err).not.toContain("UNDICI LOADED");
    } finally {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    }
    expect(err).not.toContain("UNDICI LOADED");
  });
});
