import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isKproxyError, type KproxyError } from "@kproxy/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONNECTION_FLAGS, connectionOptionsFromFlags, loadConnection } from "../src/index.js";
import { tempDir, writeKubeconfig } from "./helpers.js";

const tmp = tempDir();
const dir = tmp.dir;
afterAll(() => tmp.cleanup());

const noEnv = { HOME: join(dir, "empty-home") };

async function loadError(opts: Parameters<typeof loadConnection>[0]): Promise<KproxyError> {
  try {
    const c = await loadConnection(opts);
    await c.close();
  } catch (err) {
    if (isKproxyError(err)) return err;
    throw err;
  }
  throw new Error("expected loadConnection to fail");
}

let fileA: string;
let fileB: string;

beforeAll(() => {
  fileA = writeKubeconfig(join(dir, "a.yaml"), {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "ctx-a",
    clusters: [
      { name: "shared", cluster: { server: "https://a.example:6443/prefix/" } },
      { name: "only-a", cluster: { server: "https://only-a.example" } },
      { name: "no-server", cluster: { "insecure-skip-tls-verify": true } },
    ],
    users: [
      { name: "shared-user", user: { token: "token-from-a" } },
      { name: "both", user: { token: "t", username: "u", password: "p" } },
      { name: "badcert", user: { "client-certificate": "missing.crt", "client-key": "missing.key" } },
    ],
    contexts: [
      { name: "ctx-a", context: { cluster: "shared", user: "shared-user", namespace: "ns-a" } },
      { name: "ctx-ghost-cluster", context: { cluster: "ghost", user: "shared-user" } },
      { name: "ctx-no-server", context: { cluster: "no-server", user: "shared-user" } },
      { name: "ctx-both", context: { cluster: "shared", user: "both" } },
      { name: "ctx-badcert", context: { cluster: "shared", user: "badcert" } },
    ],
  });
  // YAML text on purpose: the second file is real YAML, not JSON.
  fileB = writeKubeconfig(
    join(dir, "b.yaml"),
    `apiVersion: v1
kind: Config
current-context: ctx-b
clusters:
- name: shared
  cluster:
    server: https://b.example:6443
- name: only-b
  cluster:
    server: https://only-b.example:8443
users:
- name: shared-user
  user:
    token: token-from-b
- name: user-b
  user:
    token: token-b
contexts:
- name: ctx-a
  context: {cluster: only-b, user: user-b}
- name: ctx-b
  context:
    cluster: only-b
    user: user-b
    namespace: ns-b
`,
  );
});

describe("choosing files and merging", () => {
  it("merges KUBECONFIG files: the first file setting current-context or an entry wins, missing files skipped", async () => {
    const env = { ...noEnv, KUBECONFIG: [join(dir, "missing.yaml"), fileA, fileB].join(":") };
    const c = await loadConnection({ env });
    expect(c.source).toBe("kubeconfig");
    expect(c.contextName).toBe("ctx-a");
    expect(c.server.href).toBe("https://a.example:6443/prefix");
    expect(c.serverPath).toBe("/prefix");
    expect(c.hostHeader).toBe("a.example:6443");
    expect(c.namespace).toBe("ns-a");
    const h: Record<string, string> = {};
    await c.applyAuth(h);
    expect(h.authorization).toBe("Bearer token-from-a");
    await c.close();

    // ctx-b exists only in the second file; its cluster only-b too.
    const b = await loadConnection({ env, context: "ctx-b" });
    expect(b.server.origin).toBe("https://only-b.example:8443");
    expect(b.namespace).toBe("ns-b");
    await b.close();
  });

  it("reverses the winner when the file order is reversed", async () => {
    const c = await loadConnection({ env: { ...noEnv, KUBECONFIG: `${fileB}:${fileA}` } });
    expect(c.contextName).toBe("ctx-b");
    expect(c.server.origin).toBe("https://only-b.example:8443");
    const viaA = await loadConnection({
      env: { ...noEnv, KUBECONFIG: `${fileB}:${fileA}` },
      context: "ctx-a",
    });
    // ctx-a from file B (cluster only-b), not file A's definition
    expect(viaA.server.origin).toBe("https://only-b.example:8443");
    await c.close();
    await viaA.close();
  });

  it("uses only --kubeconfig when given, ignoring KUBECONFIG", async () => {
    const c = await loadConnection({ env: { ...noEnv, KUBECONFIG: fileA }, kubeconfig: fileB });
    expect(c.contextName).toBe("ctx-b");
    await c.close();
  });

  it("falls back to ~/.kube/config", async () => {
    const home = join(dir, "home");
    mkdirSync(join(home, ".kube"), { recursive: true });
    writeKubeconfig(join(home, ".kube", "config"), {
      "current-context": "home",
      clusters: [{ name: "h", cluster: { server: "https://home.example" } }],
      users: [{ name: "h", user: {} }],
      contexts: [{ name: "home", context: { cluster: "h", user: "h" } }],
    });
    const c = await loadConnection({ env: { HOME: home } });
    expect(c.source).toBe("kubeconfig");
    expect(c.server.origin).toBe("https://home.example");
    expect(c.namespace).toBe("default");
    await c.close();
  });

  it("uses kubectl's default http://localhost:8080 when there is no config at all", async () => {
    const c = await loadConnection({ env: noEnv, inClusterDir: join(dir, "no-sa") });
    expect(c.source).toBe("default");
    expect(c.server.href).toBe("http://localhost:8080/");
    expect(c.hostHeader).toBe("localhost:8080");
    expect(c.isTLS).toBe(false);
    expect(c.contextName).toBeUndefined();
    await c.close();
    const m = await loadConnection({ env: { ...noEnv, KUBERNETES_MASTER: "http://master.example:9090" } });
    expect(m.server.origin).toBe("http://master.example:9090");
    await m.close();
  });

  it("uses the in-cluster service account when there is no kubeconfig", async () => {
    const sa = join(dir, "sa");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "token"), "sa-token\n");
    writeFileSync(join(sa, "ca.crt"), "not checked at load");
    writeFileSync(join(sa, "namespace"), "kube-system\n");
    const env = { ...noEnv, KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
    const c = await loadConnection({ env, inClusterDir: sa });
    expect(c.source).toBe("in-cluster");
    expect(c.server.origin).toBe("https://10.96.0.1");
    expect(c.hostHeader).toBe("10.96.0.1:443");
    expect(c.isTLS).toBe(true);
    expect(c.namespace).toBe("kube-system");
    const h: Record<string, string> = {};
    await c.applyAuth(h);
    expect(h.authorization).toBe("Bearer sa-token");
    expect(c.kubeConfig.getCurrentCluster()?.server).toBe("https://10.96.0.1:443");
    await c.close();

    const pod = await loadConnection({
      env: { ...env, POD_NAMESPACE: "from-downward-api" },
      inClusterDir: sa,
    });
    expect(pod.namespace).toBe("from-downward-api");
    await pod.close();
    const v6 = await loadConnection({
      env: { ...noEnv, KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" },
      inClusterDir: sa,
      namespace: "flag-ns",
    });
    expect(v6.hostHeader).toBe("[fd00::1]:6443");
    expect(v6.namespace).toBe("flag-ns");
    await v6.close();
    // a kubeconfig wins over in-cluster
    const kc = await loadConnection({ env: { ...env, KUBECONFIG: fileA }, inClusterDir: sa });
    expect(kc.source).toBe("kubeconfig");
    await kc.close();
  });

  it("uses only the flags when --server is given without a kubeconfig", async () => {
    const c = await loadConnection({ env: noEnv, server: "https://flags.example:6443", token: "flag-token" });
    expect(c.source).toBe("flags");
    expect(c.server.origin).toBe("https://flags.example:6443");
    const h: Record<string, string> = {};
    await c.applyAuth(h);
    expect(h.authorization).toBe("Bearer flag-token");
    expect(c.kubeConfig.getCurrentUser()?.token).toBe("flag-token");
    await c.close();
  });
});

describe("overrides", () => {
  const load = (o: Parameters<typeof loadConnection>[0]) =>
    loadConnection({ env: { ...noEnv, KUBECONFIG: `${fileA}:${fileB}` }, ...o });

  it("--context, --cluster and --user pick entries; --server, --token and -n override fields", async () => {
    const c = await load({ cluster: "only-a", user: "user-b", namespace: "flag-ns" });
    expect(c.contextName).toBe("ctx-a");
    expect(c.server.origin).toBe("https://only-a.example");
    expect(c.namespace).toBe("flag-ns");
    const h: Record<string, string> = {};
    await c.applyAuth(h);
    expect(h.authorization).toBe("Bearer token-b");
    // the KubeConfig handed to informers carries the same choice
    expect(c.kubeConfig.getCurrentCluster()?.server).toBe("https://only-a.example");
    expect(c.kubeConfig.getCurrentUser()?.token).toBe("token-b");
    await c.close();

    const s = await load({ server: "https://override.example:1234/base", token: "override-token" });
    expect(s.server.href).toBe("https://override.example:1234/base");
    expect(s.serverPath).toBe("/base");
    const h2: Record<string, string> = {};
    await s.applyAuth(h2);
    expect(h2.authorization).toBe("Bearer override-token");
    expect(s.kubeConfig.getCurrentCluster()?.server).toBe("https://override.example:1234/base");
    await s.close();
  });

  it("--username/--password give basic auth; --as/--as-group/--as-uid give Impersonate-* headers", async () => {
    const c = await loadConnection({
      env: noEnv,
      server: "https://x.example",
      username: "admin",
      password: "s3cret",
      as: "jane",
      asGroups: ["g1", "g2"],
      asUid: "uid-1",
    });
    const h: Record<string, string | string[] | undefined> = {};
    await c.applyAuth(h);
    expect(h.authorization).toBe(`Basic ${Buffer.from("admin:s3cret").toString("base64")}`);
    expect(h["impersonate-user"]).toBe("jane");
    expect(h["impersonate-group"]).toEqual(["g1", "g2"]);
    expect(h["impersonate-uid"]).toBe("uid-1");
    await c.close();
  });

  it("a server without scheme becomes https when a CA or insecure-skip-tls-verify is set, else http", async () => {
    const a = await loadConnection({ env: noEnv, server: "10.0.0.1:6443", insecureSkipTlsVerify: true });
    expect(a.server.href).toBe("https://10.0.0.1:6443/");
    expect(a.isTLS).toBe(true);
    const b = await loadConnection({ env: noEnv, server: "10.0.0.1:6443" });
    expect(b.server.href).toBe("http://10.0.0.1:6443/");
    expect(b.isTLS).toBe(false);
    await a.close();
    await b.close();
  });

  it("--tls-server-name and --insecure-skip-tls-verify reach tlsOptions", async () => {
    const c = await load({ tlsServerName: "kubernetes", insecureSkipTlsVerify: true });
    const t = await c.tlsOptions();
    expect(t.servername).toBe("kubernetes");
    expect(t.rejectUnauthorized).toBe(false);
    expect(t.ALPNProtocols).toEqual(["http/1.1"]);
    await c.close();
  });
});

describe("errors", () => {
  const env = () => ({ ...noEnv, KUBECONFIG: fileA });
  it.each([
    [
      "explicit missing --kubeconfig",
      () => ({ env: noEnv, kubeconfig: join(dir, "nope.yaml") }),
      "KUBECONFIG_NOT_FOUND",
      /does not exist/,
    ],
    [
      "a directory as kubeconfig",
      () => ({ env: noEnv, kubeconfig: dir }),
      "KUBECONFIG_UNREADABLE",
      /cannot be read/,
    ],
    [
      "unknown --context",
      () => ({ env: env(), context: "nope" }),
      "CONTEXT_NOT_FOUND",
      /context "nope" does not exist/,
    ],
    [
      "unknown --cluster",
      () => ({ env: env(), cluster: "ghost" }),
      "CLUSTER_NOT_FOUND",
      /cluster "ghost" does not exist/,
    ],
    [
      "context naming an unknown cluster",
      () => ({ env: env(), context: "ctx-ghost-cluster" }),
      "CLUSTER_NOT_FOUND",
      /referenced by context/,
    ],
    [
      "unknown --user",
      () => ({ env: env(), user: "ghost" }),
      "USER_NOT_FOUND",
      /user "ghost" does not exist/,
    ],
    [
      "cluster without server",
      () => ({ env: env(), context: "ctx-no-server" }),
      "NO_SERVER",
      /no server found for cluster "no-server"/,
    ],
    [
      "token and basic auth",
      () => ({ env: env(), context: "ctx-both" }),
      "AUTH_CONFLICT",
      /only one is allowed/,
    ],
    [
      "missing client cert file",
      () => ({ env: env(), context: "ctx-badcert" }),
      "CREDENTIAL_FILE_NOT_FOUND",
      /missing\.crt/,
    ],
    [
      "missing --certificate-authority",
      () => ({ env: env(), certificateAuthority: join(dir, "nope-ca.crt") }),
      "CREDENTIAL_FILE_NOT_FOUND",
      /certificate-authority/,
    ],
  ])("%s", async (_name, opts, code, message) => {
    const err = await loadError(opts());
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it("bad YAML and bad structure are KUBECONFIG_INVALID naming the file", async () => {
    const bad = writeKubeconfig(join(dir, "bad.yaml"), "clusters: [\n  - {name: x\n");
    const e1 = await loadError({ env: noEnv, kubeconfig: bad });
    expect(e1.code).toBe("KUBECONFIG_INVALID");
    expect(e1.message).toContain("bad.yaml");
    expect(e1.message).toMatch(/bad YAML/);
    const noName = writeKubeconfig(join(dir, "noname.yaml"), {
      clusters: [{ cluster: { server: "https://x" } }],
    });
    const e2 = await loadError({ env: noEnv, kubeconfig: noName });
    expect(e2.code).toBe("KUBECONFIG_INVALID");
    expect(e2.message).toMatch(/name is missing/);
    const scalar = writeKubeconfig(join(dir, "scalar.yaml"), "just a string\n");
    expect((await loadError({ env: noEnv, kubeconfig: scalar })).code).toBe("KUBECONFIG_INVALID");
    // a bad file in KUBECONFIG is an error too (only missing ones are skipped)
    expect((await loadError({ env: { ...noEnv, KUBECONFIG: `${fileA}:${bad}` } })).code).toBe(
      "KUBECONFIG_INVALID",
    );
  });

  it("an empty kubeconfig file is allowed and contributes nothing", async () => {
    const empty = writeKubeconfig(join(dir, "empty.yaml"), "");
    const c = await loadConnection({ env: { ...noEnv, KUBECONFIG: `${empty}:${fileA}` } });
    expect(c.contextName).toBe("ctx-a");
    await c.close();
  });
});

describe("flags", () => {
  it("describes kubectl's connection flags", () => {
    const names = CONNECTION_FLAGS.map((f) => f.name);
    expect(names).toEqual([
      "kubeconfig",
      "context",
      "cluster",
      "user",
      "server",
      "token",
      "username",
      "password",
      "certificate-authority",
      "client-certificate",
      "client-key",
      "insecure-skip-tls-verify",
      "tls-server-name",
      "as",
      "as-group",
      "as-uid",
      "namespace",
      "request-timeout",
      "disable-compression",
    ]);
    expect(CONNECTION_FLAGS.find((f) => f.name === "server")?.short).toBe("s");
    expect(CONNECTION_FLAGS.find((f) => f.name === "namespace")?.short).toBe("n");
    expect(CONNECTION_FLAGS.find((f) => f.name === "as-group")?.type).toBe("stringArray");
    expect(CONNECTION_FLAGS.find((f) => f.name === "request-timeout")?.type).toBe("duration");
  });

  it("maps parsed values to ConnectionOptions, treating empty strings and unchanged defaults as unset", () => {
    const o = connectionOptionsFromFlags({
      values: {
        kubeconfig: "/k",
        context: "",
        server: "https://s",
        "as-group": ["a", "b"],
        "as-uid": "u",
        "certificate-authority": "/ca",
        "insecure-skip-tls-verify": false,
        "request-timeout": 5000,
        "disable-compression": true,
        "tls-server-name": "kubernetes",
      },
      changed: new Set(["kubeconfig", "server", "as-group", "disable-compression"]),
      args: [],
    });
    expect(o).toEqual({
      kubeconfig: "/k",
      server: "https://s",
      asGroups: ["a", "b"],
      asUid: "u",
      certificateAuthority: "/ca",
      requestTimeoutMs: 5000,
      disableCompression: true,
      tlsServerName: "kubernetes",
    });
    expect(() =>
      connectionOptionsFromFlags({ values: { server: true }, changed: new Set(), args: [] }),
    ).toThrow(/--server must be a string/);
  });
});

describe("agrees with kubectl", () => {
  const kubectl = "/usr/bin/kubectl";
  it.skipIf(!existsSync(kubectl))(
    "kubectl config view --minify picks the same context and server",
    async () => {
      const cases: Array<{ env: Record<string, string>; context?: string }> = [
        { env: { KUBECONFIG: `${join(dir, "missing.yaml")}:${fileA}:${fileB}` } },
        { env: { KUBECONFIG: `${fileB}:${fileA}` } },
        { env: { KUBECONFIG: `${fileB}:${fileA}` }, context: "ctx-a" },
        { env: { KUBECONFIG: `${fileA}:${fileB}` }, context: "ctx-b" },
      ];
      for (const k of cases) {
        const args = [
          "config",
          "view",
          "--minify",
          "-o",
          "json",
          ...(k.context ? ["--context", k.context] : []),
        ];
        const out = execFileSync(kubectl, args, { env: { ...k.env, HOME: noEnv.HOME }, encoding: "utf8" });
        const view = JSON.parse(out) as {
          "current-context": string;
          clusters: Array<{ cluster: { server: string } }>;
          contexts: Array<{ context: { namespace?: string } }>;
        };
        const c = await loadConnection({
          env: { ...k.env, ...noEnv },
          ...(k.context ? { context: k.context } : {}),
        });
        expect(c.contextName).toBe(view["current-context"]);
        expect(new URL(view.clusters[0]?.cluster.server ?? "").href.replace(/\/$/, "")).toBe(
          c.server.href.replace(/\/$/, ""),
        );
        expect(c.namespace).toBe(view.contexts[0]?.context.namespace ?? "default");
        await c.close();
      }
    },
  );
});
