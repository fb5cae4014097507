import { createServer as createHttp, type Server } from "node:http";
import { createServer as createHttps } from "node:https";
import { createServer as createTcp } from "node:net";
import { blackholePort } from "@kproxy/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpProbe, tcpProbe } from "./index.js";
import { serverCert } from "./l4.test-helpers.js";

const cert = await serverCert();

function listen(server: Server | import("node:net").Server): Promise<number> {
  return new Promise((r) =>
    server.listen(0, "127.0.0.1", () => r((server.address() as { port: number }).port)),
  );
}

describe("httpProbe over HTTPS (a certificate from a testkit CA)", () => {
  let server: Server;
  let port = 0;
  let ready = true;
  const paths: string[] = [];
  beforeAll(async () => {
    server = createHttps({ cert: cert.cert, key: cert.key }, (req, res) => {
      paths.push(req.url ?? "");
      if (req.url === "/slow") return;
      res.writeHead(req.url === "/readyz" && ready ? 200 : 500).end(ready ? "ok" : "[-]etcd failed");
    });
    port = await listen(server);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("is ok on 200 from /readyz without verification by default, and fails on 500", async () => {
    expect(await httpProbe({ host: "127.0.0.1", port })).toMatchObject({ ok: true, status: 200 });
    expect(paths.at(-1)).toBe("/readyz");
    ready = false;
    expect(await httpProbe({ host: "127.0.0.1", port })).toMatchObject({
      ok: false,
      status: 500,
      error: "status 500",
    });
    ready = true;
    expect(await httpProbe({ host: "127.0.0.1", port, path: "/livez", expectStatus: [500] })).toMatchObject({
      ok: true,
    });
  });

  it("verifies against a CA when given one", async () => {
    expect(await httpProbe({ host: "127.0.0.1", port, tls: { ca: cert.ca } })).toMatchObject({ ok: true });
    const other = await serverCert();
    const r = await httpProbe({ host: "127.0.0.1", port, tls: { ca: other.ca } });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/SELF_SIGNED|UNABLE|CERT|signature/i);
  });

  it("times out on a server that never answers", async () => {
    const r = await httpProbe({ host: "127.0.0.1", port, path: "/slow", timeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, error: "timeout" });
    expect(r.latencyMs).toBeGreaterThanOrEqual(250);
  });
});

describe("httpProbe over plain HTTP and tcpProbe", () => {
  it("probes plain HTTP when tls is false", async () => {
    const s = createHttp((_req, res) => res.writeHead(204).end());
    const port = await listen(s);
    try {
      expect(await httpProbe({ host: "127.0.0.1", port, tls: false, expectStatus: [204] })).toMatchObject({
        ok: true,
        status: 204,
      });
      expect(await httpProbe({ host: "127.0.0.1", port, tls: false })).toMatchObject({
        ok: false,
        status: 204,
      });
    } finally {
      await new Promise((r) => s.close(r));
    }
  });

  it("tcpProbe: ok on a listening port, ECONNREFUSED on a closed one, timeout on a black hole", async () => {
    const s = createTcp((c) => c.destroy());
    const port = await listen(s);
    expect(await tcpProbe({ host: "127.0.0.1", port })).toMatchObject({ ok: true });
    await new Promise((r) => s.close(r));
    expect(await tcpProbe({ host: "127.0.0.1", port })).toMatchObject({ ok: false, error: "ECONNREFUSED" });
    const hole = await blackholePort();
    try {
      expect(await tcpProbe({ host: "127.0.0.1", port: hole.port, timeoutMs: 300 })).toMatchObject({
        ok: false,
        error: "timeout",
      });
    } finally {
      hole.close();
    }
  });
});
