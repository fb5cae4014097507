import { createPrivateKey, X509Certificate } from "node:crypto";
import { request } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, TestApiServer } from "./index.js";
import type { KeyPair } from "./pki.js";

describe("createCertificateAuthority", () => {
  it("issues server certs with SANs and client certs with CN/O, chained to the CA", async () => {
    const ca = await createCertificateAuthority({ commonName: "test-ca" });
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe("CN=test-ca");
    const server = await ca.issueServerCert({ dnsNames: ["api.test"], ips: ["127.0.0.1"] });
    const sc = new X509Certificate(server.certPem);
    expect(sc.ca).toBe(false);
    expect(sc.checkIssued(caCert)).toBe(true);
    expect(sc.verify(caCert.publicKey)).toBe(true);
    expect(sc.subjectAltName).toContain("DNS:api.test");
    expect(sc.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(sc.checkPrivateKey(createPrivateKey(server.keyPem))).toBe(true);
    const client = await ca.issueClientCert({ commonName: "alice", organizations: ["devs", "ops"] });
    const cc = new X509Certificate(client.certPem);
    expect(cc.subject.split("\n")).toEqual(expect.arrayContaining(["CN=alice", "O=devs", "O=ops"]));
    expect(cc.verify(caCert.publicKey)).toBe(true);
    await expect(ca.issueServerCert({ ips: ["not-an-ip"] })).rejects.toThrow(/not an IP/);
  });
});

describe("HTTPS authentication", () => {
  let server: TestApiServer;
  beforeAll(async () => {
    server = await TestApiServer.start({ tokens: { "dev-token": { user: "dev", groups: ["devs"] } } });
  });
  afterAll(async () => {
    await server?.close();
  });

  function get(
    path: string,
    opts: { token?: string; cert?: KeyPair },
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, server.url);
      const req = request(
        url,
        {
          ca: server.ca!.certPem,
          cert: opts.cert?.certPem,
          key: opts.cert?.keyPem,
          headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => {
            body += d.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  it("accepts client certificates from its CA and configured tokens, rejects others with 401", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const alice = await server.ca!.issueClientCert({ commonName: "alice" });
    expect((await get("/api/v1/namespaces", { cert: alice })).status).toBe(200);
    expect((await get("/api/v1/namespaces", { token: "dev-token" })).status).toBe(200);
    expect((await get("/api/v1/namespaces", { token: server.adminToken })).status).toBe(200);
    const foreign = await (await createCertificateAuthority()).issueClientCert({ commonName: "mallory" });
    const denied = await get("/api/v1/namespaces", { cert: foreign });
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body)).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
    expect((await get("/api/v1/namespaces", {})).status).toBe(401);
    expect((await get("/healthz", {})).status).toBe(200);
  });
});
