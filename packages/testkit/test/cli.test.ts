/** The kproxy-testkit binary (built dist/cli.js): flags, seed file, kubeconfig, clean shutdown. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exit };
}

describe.skipIf(!existsSync(CLI))("kproxy-testkit CLI", () => {
  let dir: string;
  const running: ChildProcess[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kproxy-testkit-cli-"));
  });
  afterAll(async () => {
    for (const c of running) if (c.exitCode === null) c.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("rejects an unknown flag with a one-line error and exit code 1", async () => {
    const r = run(["serve", "--bogus"]);
    expect(await r.exit).toBe(1);
    expect(r.err()).toMatch(/^error: .*bogus/);
    expect(r.err()).not.toContain("    at ");
    const noCmd = run([]);
    expect(await noCmd.exit).toBe(1);
    expect(noCmd.err()).toMatch(/^error: missing command/);
  });

  it("serves seeded objects over HTTP, writes a working kubeconfig, and stops on SIGTERM", async () => {
    const seed = join(dir, "seed.yaml");
    await writeFile(
      seed,
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: seeded}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: seeded}\ndata: {a: b}\n",
    );
    const kc = join(dir, "kubeconfig");
    const r = run(["serve", "--http", "--port", "0", "--kubeconfig-out", kc, "--seed", seed]);
    running.push(r.child);
    for (let i = 0; i < 300 && !r.out().includes("kubeconfig written"); i++)
      await new Promise((res) => setTimeout(res, 50));
    const m = r.out().match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    expect(m, r.err()).toBeTruthy();
    const config = JSON.parse(await readFile(kc, "utf8"));
    expect(config.clusters[0].cluster.server).toBe(m![1]);
    const token = config.users[0].user.token as string;
    const res = await fetch(`${m![1]}/api/v1/namespaces/seeded/configmaps/cfg`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown }).data).toEqual({ a: "b" });
    r.child.kill("SIGTERM");
    expect(await r.exit).toBe(0);
  });

  it("fails cleanly on an unreadable seed file", async () => {
    const r = run(["serve", "--http", "--port", "0", "--seed", join(dir, "missing.yaml")]);
    expect(await r.exit).toBe(1);
    expect(r.err()).toMatch(/^error: cannot read seed file/);
  });
});
