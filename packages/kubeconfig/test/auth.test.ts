import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isKproxyError, ManualClock } from "@kproxy/core";
import { afterAll, describe, expect, it } from "vitest";
import { loadConnection } from "../src/index.js";
import { tempDir, writeExecPlugin, writeKubeconfig } from "./helpers.js";

const tmp = tempDir();
const dir = tmp.dir;
afterAll(() => tmp.cleanup());
const noEnv = { HOME: join(dir, "empty-home") };
const T0 = Date.parse("2030-01-01T00:00:00Z");

type Headers = Record<string, string | string[] | undefined>;

function config(server: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "c",
    clusters: [{ name: "k", cluster: { server, ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
  };
}

function kubeconfigFor(
  name: string,
  server: string,
  user: Record<string, unknown>,
  cluster?: Record<string, unknown>,
) {
  return writeKubeconfig(join(dir, `${name}.yaml`), config(server, user, cluster));
}

describe("applyAuth", () => {
  it("adds a static bearer token without touching a client-supplied Authorization", async () => {
    const kc = kubeconfigFor("static", "https://127.0.0.1:1", { token: "static-token" });
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const h: Headers = {};
    await c.applyAuth(h);
    expect(h).toEqual({ authorization: "Bearer static-token" });
    const client: Headers = { authorization: "Bearer client-own" };
    await c.applyAuth(client);
    expect(client.authorization).toBe("Bearer client-own");
    const mixedCase: Headers = { Authorization: "Basic abc" };
    await c.applyAuth(mixedCase);
    expect(mixedCase).toEqual({ Authorization: "Basic abc" });
    await c.close();
  });

  it("adds Impersonate-* from the kubeconfig user, but none when the client sent Impersonate-User", async () => {
    const kc = kubeconfigFor("imp", "https://127.0.0.1:1", {
      token: "t",
      as: "jane",
      "as-groups": ["devs", "ops"],
      "as-uid": "1234",
      "as-user-extra": { "scopes.example.com/x": ["a", "b"] },
    });
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const h: Headers = {};
    await c.applyAuth(h);
    expect(h["impersonate-user"]).toBe("jane");
    expect(h["impersonate-group"]).toEqual(["devs", "ops"]);
    expect(h["impersonate-uid"]).toBe("1234");
    expect(h["impersonate-extra-scopes.example.com%2fx"]).toEqual(["a", "b"]);
    const client: Headers = { "impersonate-user": "bob" };
    await c.applyAuth(client);
    expect(client).toEqual({ "impersonate-user": "bob", authorization: "Bearer t" });
    await c.close();
  });

  it("adds nothing at all for an http:// server (kubectl's rule)", async () => {
    const plugin = writeExecPlugin(dir, "http-plugin", {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      token: "x",
    });
    for (const user of [
      { token: "static-token", as: "jane" },
      { username: "a", password: "b" },
      {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          command: process.execPath,
          args: [plugin.path],
        },
      },
    ]) {
      const kc = kubeconfigFor("plain", "http://127.0.0.1:1", user);
      const c = await loadConnection({ env: noEnv, kubeconfig: kc });
      expect(c.isTLS).toBe(false);
      const h: Headers = {};
      await c.applyAuth(h);
      expect(h).toEqual({});
      await c.close();
    }
    const flags = await loadConnection({ env: noEnv, server: "http://127.0.0.1:1", token: "t", as: "x" });
    const h: Headers = {};
    await flags.applyAuth(h);
    expect(h).toEqual({});
    await flags.close();
    expect(plugin.count()).toBe(0);
  });

  it("re-reads a token file after the cache TTL (tokens rotate)", async () => {
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "first-token\n");
    const kc = kubeconfigFor("tokenfile", "https://127.0.0.1:1", { "token-file": "token" }); // relative to the kubeconfig
    const clock = new ManualClock(T0);
    const c = await loadConnection({ env: noEnv, kubeconfig: kc, clock, tokenFileCacheMs: 60_000 });
    const get = async () => {
      const h: Headers = {};
      await c.applyAuth(h);
      return h.authorization;
    };
    expect(await get()).toBe("Bearer first-token");
    writeFileSync(tokenFile, "second-token\n");
    clock.advance(30_000);
    expect(await get()).toBe("Bearer first-token"); // still cached
    clock.advance(31_000);
    expect(await get()).toBe("Bearer second-token");
    // a file that cannot be read keeps the last good token, and is tried again later
    rmSync(tokenFile);
    clock.advance(61_000);
    expect(await get()).toBe("Bearer second-token");
    writeFileSync(tokenFile, "third-token");
    c.invalidateCredentials();
    expect(await get()).toBe("Bearer third-token");
    await c.close();
  });

  it("a missing token file is CREDENTIAL_FILE_NOT_FOUND", async () => {
    const kc = kubeconfigFor("notoken", "https://127.0.0.1:1", { "token-file": join(dir, "no-such-token") });
    await expect(loadConnection({ env: noEnv, kubeconfig: kc })).rejects.toMatchObject({
      code: "CREDENTIAL_FILE_NOT_FOUND",
    });
  });
});

describe("exec credential plugin", () => {
  for (const apiVersion of ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]) {
    it(`${apiVersion}: caches until expirationTimestamp, re-runs after invalidateCredentials`, async () => {
      const name = apiVersion.endsWith("v1") ? "v1" : "v1beta1";
      const plugin = writeExecPlugin(dir, `plugin-${name}`, {
        apiVersion,
        token: `exec-${name}`,
        expirationTimestamp: "2030-01-01T00:10:00Z",
      });
      const caPem = "-----BEGIN CERTIFICATE-----\nZm9v\n-----END CERTIFICATE-----\n";
      const kc = kubeconfigFor(
        `exec-${name}`,
        "https://127.0.0.1:1",
        {
          exec: {
            apiVersion,
            command: process.execPath,
            args: [plugin.path, "--arg1"],
            env: [{ name: "PLUGIN_ENV", value: "from-kubeconfig" }],
            provideClusterInfo: true,
            ...(name === "v1" ? { interactiveMode: "IfAvailable" } : {}),
          },
        },
        {
          "certificate-authority-data": Buffer.from(caPem).toString("base64"),
          "tls-server-name": "kubernetes",
          extensions: [{ name: "client.authentication.k8s.io/exec", extension: { audience: "kproxy" } }],
        },
      );
      const clock = new ManualClock(T0);
      const c = await loadConnection({ env: noEnv, kubeconfig: kc, clock });
      const get = async () => {
        const h: Headers = {};
        await c.applyAuth(h);
        return h.authorization;
      };
      // concurrent callers share one run
      const first = await Promise.all([get(), get(), get()]);
      expect(first).toEqual([`Bearer exec-${name}-1`, `Bearer exec-${name}-1`, `Bearer exec-${name}-1`]);
      expect(plugin.count()).toBe(1);

      const seen = plugin.lastInfo() as { info: string; args: string[]; env: string };
      expect(seen.args).toEqual(["--arg1"]);
      expect(seen.env).toBe("from-kubeconfig");
      const info = JSON.parse(seen.info);
      expect(info).toEqual({
        kind: "ExecCredential",
        apiVersion,
        spec: {
          interactive: false,
          cluster: {
            server: "https://127.0.0.1:1",
            "tls-server-name": "kubernetes",
            "certificate-authority-data": Buffer.from(caPem).toString("base64"),
            config: { audience: "kproxy" },
          },
        },
      });

      clock.advance(5 * 60_000);
      expect(await get()).toBe(`Bearer exec-${name}-1`);
      expect(plugin.count()).toBe(1);
      clock.advance(6 * 60_000); // past expirationTimestamp
      expect(await get()).toBe(`Bearer exec-${name}-2`);
      expect(plugin.count()).toBe(2);
      c.invalidateCredentials(); // e.g. after an upstream 401
      expect(await get()).toBe(`Bearer exec-${name}-3`);
      expect(plugin.count()).toBe(3);
      // a client-supplied Authorization skips the plugin entirely
      const h: Headers = { authorization: "Bearer mine" };
      c.invalidateCredentials();
      await c.applyAuth(h);
      expect(h.authorization).toBe("Bearer mine");
      expect(plugin.count()).toBe(3);
      await c.close();
    });
  }

  it("a failing plugin gives EXEC_PLUGIN_FAILED carrying its stderr", async () => {
    const plugin = writeExecPlugin(dir, "failing", {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      fail: "error: you must log in first (run `login-tool`)",
    });
    const kc = kubeconfigFor("failing", "https://127.0.0.1:1", {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1beta1",
        command: process.execPath,
        args: [plugin.path],
      },
    });
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const err = await c.applyAuth({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKproxyError(err, "EXEC_PLUGIN_FAILED")).toBe(true);
    expect((err as Error).message).toContain("you must log in first");
    expect((err as Error).message).toContain("exited with code 3");
    await c.close();
  });

  it("a missing plugin executable is EXEC_PLUGIN_FAILED with the install hint", async () => {
    const kc = kubeconfigFor("missing-exec", "https://127.0.0.1:1", {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1beta1",
        command: "kproxy-no-such-plugin",
        installHint: "install kproxy-no-such-plugin from example.com",
      },
    });
    const c = await loadConnection({ env: { ...noEnv, PATH: "/nonexistent" }, kubeconfig: kc });
    await expect(c.applyAuth({})).rejects.toMatchObject({
      code: "EXEC_PLUGIN_FAILED",
      message: expect.stringMatching(/executable not found[\s\S]*install kproxy-no-such-plugin/),
    });
    await c.close();
  });

  it("never puts the plugin's token in an error", async () => {
    // the plugin answers with the wrong apiVersion, but its stdout holds a token
    const plugin = writeExecPlugin(dir, "wrong-version", {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      token: "super-secret-token",
    });
    const kc = kubeconfigFor("wrong-version", "https://127.0.0.1:1", {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        interactiveMode: "Never",
        command: process.execPath,
        args: [plugin.path],
      },
    });
    const c = await loadConnection({ env: noEnv, kubeconfig: kc });
    const err = (await c.applyAuth({}).catch((e: unknown) => e)) as Error & {
      code: string;
      details: unknown;
    };
    expect(err.code).toBe("EXEC_PLUGIN_FAILED");
    expect(err.message).toMatch(/apiVersion/);
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain("super-secret-token");
    await c.close();
  });

  it("rejects an unsupported exec apiVersion at load time", async () => {
    const kc = kubeconfigFor("alpha", "https://127.0.0.1:1", {
      exec: { apiVersion: "client.authentication.k8s.io/v1alpha1", command: "x" },
    });
    await expect(loadConnection({ env: noEnv, kubeconfig: kc })).rejects.toMatchObject({
      code: "KUBECONFIG_INVALID",
      message: expect.stringMatching(/unsupported apiVersion/),
    });
  });

  it("does not read the kubeconfig's secrets into log lines", async () => {
    const lines: string[] = [];
    const { createLogger } = await import("@kproxy/core");
    const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
    const kc = kubeconfigFor("logged", "https://127.0.0.1:1", { token: "very-secret-token" });
    const c = await loadConnection({ env: noEnv, kubeconfig: kc, logger });
    await c.applyAuth({});
    await c.close();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).not.toContain("very-secret-token");
    expect(readFileSync(kc, "utf8")).toContain("very-secret-token");
  });
});
