import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL("../../../deploy/apiserver-proxy/", import.meta.url));

// The kinds of deploy/apiserver-proxy, served as discovery (the test API server serves core kinds only).
const GROUPS: Record<string, { group: string; version: string; resources: [string, string, boolean][] }> = {
  "/api/v1": {
    group: "",
    version: "v1",
    resources: [
      ["namespaces", "Namespace", false],
      ["services", "Service", true],
      ["serviceaccounts", "ServiceAccount", true],
      ["configmaps", "ConfigMap", true],
    ],
  },
  "/apis/apps/v1": { group: "apps", version: "v1", resources: [["deployments", "Deployment", true]] },
  "/apis/rbac.authorization.k8s.io/v1": {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resources: [
      ["clusterroles", "ClusterRole", false],
      ["clusterrolebindings", "ClusterRoleBinding", false],
    ],
  },
};

function discovery(path: string): unknown {
  if (path === "/api") return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] };
  if (path === "/apis")
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: Object.values(GROUPS)
        .filter((g) => g.group !== "")
        .map((g) => {
          const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
          return { name: g.group, versions: [gv], preferredVersion: gv };
        }),
    };
  const g = GROUPS[path];
  if (g === undefined) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: g.group === "" ? g.version : `${g.group}/${g.version}`,
    resources: g.resources.map(([name, kind, namespaced]) => ({
      name,
      singularName: kind.toLowerCase(),
      namespaced,
      kind,
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    })),
  };
}

describe("deploy/apiserver-proxy manifests", () => {
  let server: Server;
  let dir: string;
  let kubeconfig: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const doc = discovery(path);
      const body = JSON.stringify(
        doc ?? {
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          reason: "NotFound",
          code: 404,
          message: "not found",
        },
      );
      res.writeHead(doc ? 200 : 404, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(body),
      });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    dir = await mkdtemp(join(tmpdir(), "asp-deploy-"));
    kubeconfig = join(dir, "kubeconfig");
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: url } }],
        users: [{ name: "u", user: {} }],
        contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
        "current-context": "c",
      }),
    );
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it("are accepted by the real kubectl (apply --dry-run=client) with the required contents", async () => {
    const { stdout } = await run("/usr/bin/kubectl", [
      `--kubeconfig=${kubeconfig}`,
      "apply",
      "--dry-run=client",
      "--validate=false",
      "-o",
      "json",
      "-f",
      DEPLOY,
    ]);
    const list = JSON.parse(stdout) as {
      items: { kind: string; metadata: { name: string }; [k: string]: unknown }[];
    };
    const kinds = list.items.map((i) => `${i.kind}/${i.metadata.name}`).sort();
    expect(kinds).toEqual([
      "ClusterRole/kproxy:apiserver-proxy",
      "ClusterRole/kproxy:apiserver-proxy-user",
      "ClusterRoleBinding/kproxy:apiserver-proxy",
      "Deployment/apiserver-proxy",
      "Namespace/kproxy-system",
      "Service/apiserver-proxy",
      "ServiceAccount/apiserver-proxy",
    ]);
    const deployment = list.items.find((i) => i.kind === "Deployment") as unknown as {
      spec: {
        replicas: number;
        template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.serviceAccountName).toBe("apiserver-proxy");
    const args = deployment.spec.template.spec.containers[0]!.args;
    expect(args).toContain("--authorization-mode=Webhook");
    expect(args.some((a) => a.startsWith("--dev-"))).toBe(false);
    const role = list.items.find(
      (i) => i.metadata.name === "kproxy:apiserver-proxy" && i.kind === "ClusterRole",
    ) as unknown as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    const allowed = new Set(
      role.rules.flatMap((r) =>
        r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups[0]}/${res}:${v}`)),
      ),
    );
    for (const need of [
      "/services:watch",
      "/pods:list",
      "/nodes:get",
      "discovery.k8s.io/endpointslices:watch",
      "authentication.k8s.io/tokenreviews:create",
      "authorization.k8s.io/subjectaccessreviews:create",
    ])
      expect(allowed.has(need), need).toBe(true);
    expect([...allowed].some((a) => a.includes("secrets"))).toBe(false);
  });
});
