import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makePki } from "./helpers/pki.js";
import { CLI, runToExit, startServing } from "./helpers/proc.js";
import { rawExchange } from "./helpers/raw.js";

const work = mkdtempSync(join(tmpdir(), "kproxy-cli-"));
const env = { PATH: process.env.PATH ?? "", HOME: work };
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (...args: string[]) => runToExit(process.execPath, [CLI, ...args], env);

describe("kubectl-proxy command line", () => {
  it("exits 255 with kubectl's message for a regex that does not compile", async () => {
    const r = await run("--server=http://127.0.0.1:1", "--accept-paths=[a");
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("Error compiling re: error parsing regexp: missing closing ]: `[a`");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("rejects RE2-invalid syntax that JavaScript would accept (lookahead)", async () => {
    const r = await run("--server=http://127.0.0.1:1", "--reject-paths=(?=x)");
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("invalid or unsupported Perl syntax: `(?=`");
  });

  it("exits 1 for an unknown flag, a bad value, and --unix-socket with --port", async () => {
    const unknown = await run("--no-such-flag");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: .*no-such-flag/m);
    const badInt = await run("--port=abc");
    expect(badInt.code).toBe(1);
    const both = await run("--server=http://127.0.0.1:1", "-u", join(work, "s.sock"), "-p", "9000");
    expect(both.code).toBe(1);
    expect(both.stderr).toContain("error: cannot set --unix-socket and --port at the same time");
  });

  it("exits 1 with kubectl's message when the port is in use", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await run("--server=http://127.0.0.1:1", `--port=${port}`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`error: listen tcp 127.0.0.1:${port}: bind: address already in use`);
    } finally {
      blocker.close();
    }
  });

  it("exits 1 for a missing or broken kubeconfig", async () => {
    const missing = await run(`--kubeconfig=${join(work, "nope")}`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: /m);
    const broken = join(work, "broken");
    writeFileSync(broken, "{{{ not yaml");
    const bad = await run(`--kubeconfig=${broken}`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: /m);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it("prints the startup line with the real port, serves HTTPS with --tls-cert-file, and stops on SIGTERM", async () => {
    const pki = await makePki();
    try {
      const p = await startServing(
        process.execPath,
        [
          CLI,
          "-p",
          "0",
          "--server=http://127.0.0.1:1",
          `--tls-cert-file=${pki.certFile}`,
          `--tls-private-key-file=${pki.keyFile}`,
        ],
        env,
      );
      expect(p.stdout()).toBe(`Starting to serve on 127.0.0.1:${p.port}\n`);
      const { request, Agent } = await import("undici");
      const agent = new Agent({ connect: { ca: pki.ca } });
      const res = await request(`https://127.0.0.1:${p.port}/api`, {
        dispatcher: agent,
        headers: { host: "localhost" },
      });
      expect(res.statusCode).toBe(500);
      expect(await res.body.text()).toBe("dial tcp 127.0.0.1:1: connect: connection refused\n");
      await agent.close();
      expect(await p.stop("SIGTERM")).toBe(0);
    } finally {
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });

  it("reports [::]:port for --address=0.0.0.0 like kubectl", async () => {
    const p = await startServing(
      process.execPath,
      [CLI, "-p", "0", "--address=0.0.0.0", "--server=http://127.0.0.1:1"],
      env,
    );
    try {
      expect(p.address).toMatch(/^\[::\]:\d+$/);
      const res = await rawExchange(
        p.port,
        "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      );
      expect(res.status).toBe(500);
    } finally {
      await p.stop();
    }
  });
});
