import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKproxyError } from "@kproxy/core";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KUBECONFIG_ERROR_CODES, loadConnection } from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "kproxy-proxy-url-"));
const home = join(dir, "home");
let files = 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfigWith(cluster: Record<string, unknown>): string {
  const path = join(dir, `kubeconfig-${++files}`);
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
      "current-context": "ctx",
    }),
  );
  return path;
}

/** proxyUrl() as text ("" for a direct connection). */
async function proxyOf(server: string, env: NodeJS.ProcessEnv): Promise<string> {
  const c = await loadConnection({ server, insecureSkipTlsVerify: true, env: { HOME: home, ...env } });
  try {
    return c.proxyUrl()?.href ?? "";
  } finally {
    await c.close();
  }
}

describe("ClusterConnection.proxyUrl", () => {
  it("is undefined without proxy settings", async () => {
    expect(await proxyOf("https://api.example.com:6443", {})).toBe("");
  });

  it("is the kubeconfig's proxy-url, whatever NO_PROXY and the server say", async () => {
    for (const proxy of ["http://proxy.example:3128", "socks5://user:pw@proxy.example:1080"]) {
      const kubeconfig = kubeconfigWith({ server: "https://127.0.0.1:6443", "proxy-url": proxy });
      const c = await loadConnection({
        kubeconfig,
        env: { HOME: home, NO_PROXY: "*", HTTPS_PROXY: "http://other.example:1" },
      });
      expect(c.proxyUrl()?.href).toBe(new URL(proxy).href);
      await c.close();
    }
  });

  it("uses HTTPS_PROXY for an https server, else HTTP_PROXY; HTTP_PROXY only for an http server", async () => {
    const both = { HTTPS_PROXY: "http://s.example:1", HTTP_PROXY: "http://p.example:2" };
    expect(await proxyOf("https://api.example.com", both)).toBe("http://s.example:1/");
    expect(await proxyOf("http://api.example.com", both)).toBe("http://p.example:2/");
    expect(await proxyOf("https://api.example.com", { HTTP_PROXY: "http://p.example:2" })).toBe(
      "http://p.example:2/",
    );
    expect(await proxyOf("http://api.example.com", { HTTPS_PROXY: "http://s.example:1" })).toBe("");
  });

  it("reads the lower-case variables too; the upper-case ones win", async () => {
    expect(await proxyOf("https://api.example.com", { https_proxy: "http://lower.example:1" })).toBe(
      "http://lower.example:1/",
    );
    expect(
      await proxyOf("https://api.example.com", {
        https_proxy: "http://lower.example:1",
        HTTPS_PROXY: "http://upper.example:2",
      }),
    ).toBe("http://upper.example:2/");
    expect(
      await proxyOf("https://api.example.com", {
        HTTPS_PROXY: "http://p.example:1",
        no_proxy: "example.com",
      }),
    ).toBe("");
  });

  it("is undefined when NO_PROXY covers the server's host", async () => {
    const env = (noProxy: string) => ({ HTTPS_PROXY: "http://p.example:3128", NO_PROXY: noProxy });
    const cases: Array<[server: string, noProxy: string, proxied: boolean]> = [
      ["https://api.example.com", "api.example.com", false],
      ["https://API.Example.com.", "api.example.com", false],
      ["https://api.example.com", "example.com", false],
      ["https://api.example.com", ".example.com", false],
      ["https://example.com", "*.example.com", true],
      ["https://api.example.com", "*.example.com", false],
      ["https://api.example.com", "other.com, example.org", true],
      ["https://api.example.com", "other.com example.com", false],
      ["https://notexample.com", "example.com", true],
      ["https://api.example.com:6443", "api.example.com:6443", false],
      ["https://api.example.com:6443", "api.example.com:443", true],
      ["https://api.example.com", "api.example.com:443", false],
      ["https://api.example.com", "*", false],
      ["https://api.example.com:6443", "*:443", true],
      ["https://10.0.0.1:6443", "10.0.0.1", false],
      ["https://10.0.0.2:6443", "10.0.0.1", true],
      ["https://[fd00::1]:6443", "fd00::1", false],
      ["https://[fd00::1]:6443", "[fd00::1]:6443", false],
      ["https://[fd00::1]:6443", "[fd00::1]:443", true],
    ];
    for (const [server, noProxy, proxied] of cases) {
      const got = await proxyOf(server, env(noProxy));
      expect({ server, noProxy, proxied: got !== "" }).toEqual({ server, noProxy, proxied });
    }
  });

  it("never proxies loopback names (Go's rule), whatever NO_PROXY says", async () => {
    const env = {
      HTTPS_PROXY: "http://p.example:3128",
      HTTP_PROXY: "http://p.example:3128",
      NO_PROXY: "x.example",
    };
    for (const server of ["https://127.0.0.1:6443", "https://localhost:6443", "http://[::1]:8080"]) {
      expect(await proxyOf(server, env)).toBe("");
    }
    expect(await proxyOf("https://127.0.0.2:6443", env)).toBe("http://p.example:3128/");
  });

  it("rejects an invalid kubeconfig proxy-url without echoing its password", async () => {
    const kubeconfig = kubeconfigWith({
      server: "https://api.example.com",
      "proxy-url": "http://user:s3cret@[bad",
    });
    const err = await loadConnection({ kubeconfig, env: { HOME: home } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKproxyError(err) && err.code).toBe("KUBECONFIG_INVALID");
    expect(String((err as Error).message)).toContain('invalid proxy-url "http://<redacted>@[bad"');
    expect(JSON.stringify(err)).not.toContain("s3cret");
    expect(String((err as Error & { cause?: unknown }).cause ?? "")).not.toContain("s3cret");
  });

  it("rejects an unusable HTTPS_PROXY with PROXY_INVALID, without echoing it; dispatcher() agrees", async () => {
    expect(KUBECONFIG_ERROR_CODES).toContain("PROXY_INVALID");
    for (const bad of ["proxy.example:3128", "not a url", "ftp://user:s3cret@proxy.example"]) {
      const c = await loadConnection({
        server: "https://api.example.com",
        env: { HOME: home, HTTPS_PROXY: bad },
      });
      let thrown: unknown;
      try {
        c.proxyUrl();
      } catch (err) {
        thrown = err;
      }
      expect(isKproxyError(thrown) && thrown.code).toBe("PROXY_INVALID");
      expect(String((thrown as Error).message)).toContain("$HTTPS_PROXY");
      expect(String((thrown as Error).message)).not.toContain("s3cret");
      const rejected = await c.dispatcher().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isKproxyError(rejected) && rejected.code).toBe("PROXY_INVALID");
      await c.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// proxyUrl() against what dispatcher() really does. The API server is addressed as
// [::ffff:127.0.0.1] (IPv4-mapped loopback): not one of the loopback names that are never
// proxied, yet every connection stays on 127.0.0.1.

interface Recorder {
  port: number;
  /** First request line of each connection ("tls" for a TLS ClientHello). */
  lines: string[];
  close(): Promise<void>;
}

/** A TCP server that records what arrives: answers CONNECT with 403, a plain request with 200. */
function startRecorder(): Promise<Recorder> {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.once("data", (chunk: Buffer) => {
      if (chunk[0] === 0x16) {
        lines.push("tls");
        socket.destroy();
        return;
      }
      const line = chunk.toString("latin1").split("\r\n")[0] ?? "";
      lines.push(line);
      socket.end(
        line.startsWith("CONNECT ")
          ? "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
          : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        lines,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

async function canDialMapped(): Promise<boolean> {
  const probe = await startRecorder();
  try {
    return await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "::ffff:127.0.0.1", port: probe.port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
      s.setTimeout(10_000, () => {
        s.destroy();
        resolve(false);
      });
    });
  } finally {
    await probe.close();
  }
}

const mapped = await canDialMapped();

describe.runIf(mapped)("ClusterConnection.proxyUrl agrees with dispatcher()", () => {
  let api: Recorder;
  let proxyS: Recorder;
  let proxyP: Recorder;

  beforeAll(async () => {
    [api, proxyS, proxyP] = await Promise.all([startRecorder(), startRecorder(), startRecorder()]);
  });
  afterAll(async () => {
    await Promise.all([api.close(), proxyS.close(), proxyP.close()]);
  });

  /** Which server the dispatcher's request reached: "api", "https-proxy" or "http-proxy". */
  async function route(scheme: "http" | "https", env: NodeJS.ProcessEnv, kubeconfig?: string) {
    const server = `${scheme}://[::ffff:127.0.0.1]:${api.port}`;
    const c = await loadConnection({
      ...(kubeconfig !== undefined ? { kubeconfig } : { server, insecureSkipTlsVerify: scheme === "https" }),
      env: { HOME: home, ...env },
    });
    const predicted = c.proxyUrl()?.port;
    const before = [api.lines.length, proxyS.lines.length, proxyP.lines.length];
    await request(`${server}/api`, { dispatcher: await c.dispatcher() }).then(
      (r) => r.body.dump(),
      () => undefined,
    );
    await c.close();
    const reached = [api, proxyS, proxyP].filter((r, i) => r.lines.length > (before[i] ?? 0));
    expect(reached).toHaveLength(1);
    const actual = reached[0] === api ? undefined : String(reached[0]?.port);
    return { predicted, actual };
  }

  it("for HTTPS_PROXY / HTTP_PROXY / NO_PROXY combinations", async () => {
    const s = `http://127.0.0.1:${proxyS.port}`;
    const p = `http://127.0.0.1:${proxyP.port}`;
    const cases: Array<[scheme: "http" | "https", env: NodeJS.ProcessEnv]> = [
      ["https", {}],
      ["https", { HTTPS_PROXY: s, HTTP_PROXY: p }],
      ["https", { HTTP_PROXY: p }],
      ["http", { HTTPS_PROXY: s, HTTP_PROXY: p }],
      ["http", { HTTPS_PROXY: s }],
      ["https", { HTTPS_PROXY: s, NO_PROXY: "::ffff:7f00:1" }],
      ["https", { HTTPS_PROXY: s, NO_PROXY: `[::ffff:7f00:1]:${api.port}` }],
      ["https", { HTTPS_PROXY: s, NO_PROXY: "[::ffff:7f00:1]:1" }],
      ["http", { HTTP_PROXY: p, no_proxy: "other.example, *" }],
      ["http", { HTTP_PROXY: p, NO_PROXY: "*:1" }],
    ];
    for (const [scheme, env] of cases) {
      const { predicted, actual } = await route(scheme, env);
      expect({ scheme, env, route: predicted }).toEqual({ scheme, env, route: actual });
    }
    // the matrix exercised both answers
    expect(api.lines.length).toBeGreaterThan(0);
    expect(proxyS.lines.some((l) => l.startsWith("CONNECT "))).toBe(true);
    expect(proxyP.lines.some((l) => l.startsWith("GET http://"))).toBe(true);
  });

  it("for a kubeconfig proxy-url", async () => {
    const kubeconfig = kubeconfigWith({
      server: `http://[::ffff:127.0.0.1]:${api.port}`,
      "proxy-url": `http://127.0.0.1:${proxyP.port}`,
    });
    const { predicted, actual } = await route("http", { NO_PROXY: "*" }, kubeconfig);
    expect(predicted).toBe(String(proxyP.port));
    expect(actual).toBe(predicted);
  });
});
