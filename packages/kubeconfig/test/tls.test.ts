import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClusterConnection, loadConnection } from "../src/index.js";
import {
  type ConnectProxy,
  type EchoServer,
  makePki,
  type Pki,
  startConnectProxy,
  startHttpsEcho,
  startMtlsServer,
  tempDir,
  writeExecPlugin,
  writeKubeconfig,
} from "./helpers.js";

const tmp = tempDir();
const dir = tmp.dir;
const noEnv = { HOME: join(dir, "empty-home") };
let pki: Pki;
let mtls: EchoServer;
let echo: EchoServer;
let proxy: ConnectProxy;

beforeAll(async () => {
  pki = await makePki(dir);
  mtls = await startMtlsServer(pki);
  echo = await startHttpsEcho(pki);
  proxy = await startConnectProxy();
}, 60_000);

afterAll(async () => {
  await mtls?.close();
  await echo?.close();
  await proxy?.close();
  tmp.cleanup();
});

function kubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return writeKubeconfig(join(dir, `${name}.yaml`), {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "c",
    clusters: [{ name: "k", cluster }],
    users: [{ name: "u", user }],
    contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
  });
}

/** A GET through the connection, as the proxies do it: applyAuth + dispatcher. */
async function get(
  c: ClusterConnection,
  path = "/api",
): Promise<{ status: number; body: { clientCN: string | null } }> {
  const headers: Record<string, string | string[] | undefined> = { host: c.hostHeader };
  await c.applyAuth(headers);
  const res = await request(new URL(c.serverPath + path, c.server.origin), {
    dispatcher: await c.dispatcher(),
    headers: headers as Record<string, string | string[]>,
  });
  return { status: res.statusCode, body: (await res.body.json()) as { clientCN: string | null } };
}

describe("TLS to the API server", () => {
  it("presents the client certificate files (mTLS) and verifies the server against the CA", async () => {
    const kc = kubeconfig(
      "mtls-files",
      { server: mtls.url, "certificate-authority": pki.caCert },
      { "client-certificate": pki.clientCert, "client-key": pki.clientKey, token: "tok" },
    );
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const r = await get(c);
    expect(r.status).toBe(200);
    expect(r.body.clientCN).toBe("alice");
    expect(mtls.seen.at(-1)?.headers.authorization).toBe("Bearer tok");
    expect(await c.dispatcher()).toBe(await c.dispatcher());
    await c.close();

    // the server really requires the certificate: without it the handshake fails
    const noCert = await loadConnection({ env: noEnv, server: mtls.url, certificateAuthority: pki.caCert });
    await expect(get(noCert)).rejects.toThrow();
    await noCert.close();
  });

  it("accepts certificate data inline (base64) as well as the flags --certificate-authority/--client-*", async () => {
    const b64 = (f: string) => readFileSync(f).toString("base64");
    const kc = kubeconfig(
      "mtls-data",
      { server: mtls.url, "certificate-authority-data": b64(pki.caCert) },
      { "client-certificate-data": b64(pki.clientCert), "client-key-data": b64(pki.clientKey) },
    );
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    expect((await get(c)).body.clientCN).toBe("alice");
    await c.close();

    const f = await loadConnection({
      env: noEnv,
      server: mtls.url,
      certificateAuthority: pki.caCert,
      clientCertificate: pki.clientCert,
      clientKey: pki.clientKey,
    });
    expect(f.source).toBe("flags");
    expect((await get(f)).body.clientCN).toBe("alice");
    await f.close();
  });

  it("fails verification with the wrong CA, succeeds with insecure-skip-tls-verify", async () => {
    const wrong = await loadConnection({
      env: noEnv,
      server: echo.url,
      certificateAuthority: pki.otherCaCert,
    });
    await expect(get(wrong)).rejects.toThrow();
    await wrong.close();
    const insecure = await loadConnection({ env: noEnv, server: echo.url, insecureSkipTlsVerify: true });
    expect((await get(insecure)).status).toBe(200);
    await insecure.close();
  });

  it("sends tls-server-name as SNI and verifies the certificate against it", async () => {
    const c = await loadConnection({
      env: noEnv,
      server: echo.url,
      certificateAuthority: pki.caCert,
      tlsServerName: "kubernetes",
    });
    expect((await get(c)).status).toBe(200);
    expect(echo.seen.at(-1)?.servername).toBe("kubernetes");
    await c.close();
    const bad = await loadConnection({
      env: noEnv,
      server: echo.url,
      certificateAuthority: pki.caCert,
      tlsServerName: "not-in-the-cert.example",
    });
    await expect(get(bad)).rejects.toThrow();
    await bad.close();
  });

  it("tlsOptions() lets a raw node:tls socket do the same mTLS handshake", async () => {
    const c = await loadConnection({
      env: noEnv,
      server: mtls.url,
      certificateAuthority: pki.caCert,
      clientCertificate: pki.clientCert,
      clientKey: pki.clientKey,
    });
    const opts = await c.tlsOptions();
    const status = await new Promise<string>((resolve, reject) => {
      const sock = tlsConnect({ ...opts, host: "127.0.0.1", port: mtls.port }, () => {
        expect(sock.alpnProtocol === false || sock.alpnProtocol === "http/1.1").toBe(true);
        sock.write(`GET /raw HTTP/1.1\r\nHost: ${c.hostHeader}\r\nConnection: close\r\n\r\n`);
      });
      let data = "";
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => {
        data += d;
      });
      sock.on("end", () => resolve(data.split("\r\n")[0] ?? ""));
      sock.on("error", reject);
      sock.setTimeout(20_000, () => sock.destroy(new Error("timeout")));
    });
    expect(status).toBe("HTTP/1.1 200 OK");
    expect(mtls.seen.at(-1)?.clientCN).toBe("alice");
    await c.close();
  });

  it("goes through the cluster's proxy-url (HTTP CONNECT)", async () => {
    const kc = kubeconfig(
      "proxied",
      { server: echo.url, "certificate-authority": pki.caCert, "proxy-url": proxy.url },
      { token: "through-proxy" },
    );
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const before = proxy.targets.length;
    expect((await get(c)).status).toBe(200);
    expect(proxy.targets.slice(before)).toEqual([`127.0.0.1:${echo.port}`]);
    expect(echo.seen.at(-1)?.headers.authorization).toBe("Bearer through-proxy");
    expect(c.kubeConfig.getCurrentCluster()?.proxyUrl).toBe(proxy.url);
    await c.close();
  });

  it("uses a client certificate returned by an exec plugin", async () => {
    const plugin = writeExecPlugin(dir, "cert-plugin", {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      certFile: pki.clientCert,
      keyFile: pki.clientKey,
    });
    const kc = kubeconfig(
      "exec-cert",
      { server: mtls.url, "certificate-authority": pki.caCert },
      {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          command: process.execPath,
          args: [plugin.path],
        },
      },
    );
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const r = await get(c);
    expect(r.body.clientCN).toBe("alice");
    expect(mtls.seen.at(-1)?.headers.authorization).toBeUndefined();
    const d1 = await c.dispatcher();
    c.invalidateCredentials();
    // same certificate again: the dispatcher is kept
    expect(await c.dispatcher()).toBe(d1);
    expect(plugin.count()).toBe(2);
    await c.close();
  });
});
