/**
 * The real kubectl against the test API server: discovery, create/apply/get/delete of a Service
 * (clusterIP allocated), a watch that sees a change, and exec.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "../src/index.js";

const KUBECTL = "/usr/bin/kubectl";
const haveKubectl = existsSync(KUBECTL);
if (!haveKubectl) console.warn(`SKIPPING kubectl e2e: ${KUBECTL} not found`);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(!haveKubectl)("real kubectl against TestApiServer", () => {
  let server: TestApiServer;
  let dir: string;
  let kubeconfig: string;
  const children: ChildProcess[] = [];

  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: dir, KUBECONFIG: kubeconfig });

  function kubectl(args: string[], timeoutMs = 30_000): Promise<Result> {
    return new Promise((resolve) => {
      execFile(
        KUBECTL,
        ["--request-timeout=20s", ...args],
        { env: env(), timeout: timeoutMs },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kproxy-testkit-kubectl-"));
    server = await TestApiServer.start();
    kubeconfig = join(dir, "kubeconfig");
    await server.writeKubeconfig(kubeconfig);
  });

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("get ns lists the built-in namespaces", async () => {
    const r = await kubectl(["get", "ns"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATUS\s+AGE/);
    for (const ns of ["default", "kube-system", "kube-public", "kube-node-lease"])
      expect(r.stdout).toMatch(new RegExp(`^${ns}\\s+Active\\s+`, "m"));
  });

  it("create -f a Service allocates a clusterIP, and get svc -o json shows it", async () => {
    const file = join(dir, "svc-create.json");
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "created" },
        spec: { selector: { app: "created" }, ports: [{ port: 80, targetPort: 8080 }] },
      }),
    );
    const r = await kubectl(["create", "-f", file]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("service/created created");
    const got = await kubectl(["get", "svc", "created", "-o", "json"]);
    expect(got.code).toBe(0);
    const svc = JSON.parse(got.stdout);
    expect(svc.kind).toBe("Service");
    expect(svc.spec.clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/);
    expect(svc.spec.clusterIP).not.toBe("10.96.0.1");
    expect(svc.spec.clusterIPs).toEqual([svc.spec.clusterIP]);
    expect(svc.spec.ports[0]).toMatchObject({ port: 80, targetPort: 8080, protocol: "TCP" });
    const again = await kubectl(["create", "-f", file]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('services "created" already exists');
  });

  it("create -f with an unknown field is rejected by server-side strict validation", async () => {
    const file = join(dir, "svc-bad.json");
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "bad" },
        spec: { ports: [{ port: 80 }], bogus: true },
      }),
    );
    const r = await kubectl(["create", "-f", file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('unknown field "spec.bogus"');
    expect((await kubectl(["get", "svc", "bad"])).code).not.toBe(0);
  });

  it("apply -f creates, then updates a Service without warnings, keeping its clusterIP", async () => {
    const file = join(dir, "svc-apply.yaml");
    const yaml = (port: number) =>
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: applied\n  labels: {app: applied}\nspec:\n  type: NodePort\n  selector: {app: applied}\n  ports:\n  - name: http\n    port: ${port}\n    targetPort: http\n`;
    await writeFile(file, yaml(80));
    const first = await kubectl(["apply", "-f", file]);
    expect(first.stderr).toBe("");
    expect(first.stdout.trim()).toBe("service/applied created");
    const before = JSON.parse((await kubectl(["get", "svc", "applied", "-o", "json"])).stdout);
    expect(before.spec.clusterIP).toMatch(/^10\./);
    expect(before.spec.ports[0].nodePort).toBeGreaterThanOrEqual(30000);
    expect(before.spec.ports[0].nodePort).toBeLessThanOrEqual(32767);

    await writeFile(file, yaml(8080));
    const second = await kubectl(["apply", "-f", file]);
    expect(second.stderr).toBe("");
    expect(second.stdout.trim()).toBe("service/applied configured");
    const after = JSON.parse((await kubectl(["get", "svc", "applied", "-o", "json"])).stdout);
    expect(after.spec.clusterIP).toBe(before.spec.clusterIP);
    expect(after.spec.ports).toHaveLength(1);
    expect(after.spec.ports[0]).toMatchObject({ name: "http", port: 8080, targetPort: "http" });
    expect(after.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]).toContain(
      '"port":8080',
    );

    const unchanged = await kubectl(["apply", "-f", file]);
    expect(unchanged.stdout.trim()).toBe("service/applied unchanged");
  });

  it("get svc shows the real server's columns", async () => {
    const r = await kubectl(["get", "svc", "applied"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE/);
    expect(r.stdout).toMatch(/applied\s+NodePort\s+10\.\S+\s+<none>\s+8080:3\d{4}\/TCP/);
  });

  it("delete removes the Service (kubectl waits for it) and frees the name", async () => {
    const r = await kubectl(["delete", "svc", "created"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe('service "created" deleted');
    const gone = await kubectl(["get", "svc", "created"]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('services "created" not found');
  });

  it("create namespace / configmap / service sub-commands (protobuf bodies) work", async () => {
    expect((await kubectl(["create", "namespace", "team-a"])).stdout.trim()).toBe("namespace/team-a created");
    const cm = await kubectl(["create", "configmap", "settings", "-n", "team-a", "--from-literal=mode=fast"]);
    expect(cm.stderr).toBe("");
    expect(cm.stdout.trim()).toBe("configmap/settings created");
    const got = JSON.parse(
      (await kubectl(["get", "configmap", "settings", "-n", "team-a", "-o", "json"])).stdout,
    );
    expect(got.data).toEqual({ mode: "fast" });
    const svc = await kubectl(["create", "service", "nodeport", "edge", "-n", "team-a", "--tcp=80:8080"]);
    expect(svc.stdout.trim()).toBe("service/edge created");
    const edge = JSON.parse((await kubectl(["get", "svc", "edge", "-n", "team-a", "-o", "json"])).stdout);
    expect(edge.spec.selector).toEqual({ app: "edge" });
    expect(edge.spec.ports[0]).toMatchObject({ port: 80, targetPort: 8080 });
    expect(edge.spec.ports[0].nodePort).toBeGreaterThanOrEqual(30000);
    const del = await kubectl(["delete", "namespace", "team-a"]);
    expect(del.stdout.trim()).toBe('namespace "team-a" deleted');
    expect((await kubectl(["get", "configmap", "settings", "-n", "team-a"])).code).not.toBe(0);
  });

  it("get pods -w sees a pod change", async () => {
    server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "watched", namespace: "default", labels: { app: "applied" } },
      spec: {
        containers: [{ name: "main", image: "busybox:1.36", ports: [{ name: "http", containerPort: 8080 }] }],
      },
    });
    const child = spawn(KUBECTL, ["get", "pods", "-w"], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const waitFor = async (re: RegExp): Promise<void> => {
      for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(re);
    };
    await waitFor(/watched\s+0\/1\s+Pending/);
    // Even if kubectl has not opened its watch yet, it watches from the list's resourceVersion,
    // so the server replays this change from its history.
    server.patch(
      "v1",
      "Pod",
      "default",
      "watched",
      {
        status: {
          phase: "Running",
          podIP: "10.244.0.7",
          conditions: [{ type: "Ready", status: "True" }],
          containerStatuses: [
            {
              name: "main",
              ready: true,
              restartCount: 0,
              image: "busybox:1.36",
              imageID: "",
              state: { running: {} },
            },
          ],
        },
      },
      { subresource: "status" },
    );
    await waitFor(/watched\s+1\/1\s+Running/);
    child.kill("SIGTERM");

    // The controller turned the ready pod into an endpoint of the "applied" service.
    const slices = JSON.parse(
      (await kubectl(["get", "endpointslices", "-l", "kubernetes.io/service-name=applied", "-o", "json"]))
        .stdout,
    );
    expect(slices.items).toHaveLength(1);
    expect(slices.items[0].endpoints[0]).toMatchObject({
      addresses: ["10.244.0.7"],
      conditions: { ready: true },
    });
    expect(slices.items[0].ports).toEqual([{ name: "http", port: 8080, protocol: "TCP" }]);
  });

  it("exec runs a command in the pod and returns its output", async () => {
    const r = await kubectl(["exec", "watched", "--", "echo", "hello", "from", "testkit"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello from testkit\n");
    const missing = await kubectl(["exec", "no-such-pod", "--", "echo", "x"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('pods "no-such-pod" not found');
  });

  it("a kubeconfig with a client certificate authenticates as its CN, a bad token does not", async () => {
    const cert = await server.ca!.issueClientCert({ commonName: "alice", organizations: ["devs"] });
    const certConfig = join(dir, "alice.kubeconfig");
    await server.writeKubeconfig(certConfig, { clientCert: cert });
    const ok = await new Promise<Result>((resolve) =>
      execFile(
        KUBECTL,
        ["get", "ns", "default", "-o", "name"],
        { env: { ...env(), KUBECONFIG: certConfig } },
        (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      ),
    );
    expect(ok.stdout.trim()).toBe("namespace/default");
    const whoami = await new Promise<Result>((resolve) =>
      execFile(
        KUBECTL,
        ["auth", "whoami", "-o", "json"],
        { env: { ...env(), KUBECONFIG: certConfig } },
        (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      ),
    );
    expect(JSON.parse(whoami.stdout).status.userInfo).toEqual({
      username: "alice",
      groups: ["devs", "system:authenticated"],
    });
    expect((await kubectl(["auth", "can-i", "delete", "pods"])).stdout.trim()).toBe("yes");
    const badConfig = join(dir, "bad.kubeconfig");
    await server.writeKubeconfig(badConfig, { token: "not-a-valid-token" });
    const bad = await new Promise<Result>((resolve) =>
      execFile(KUBECTL, ["get", "ns"], { env: { ...env(), KUBECONFIG: badConfig } }, (err, stdout, stderr) =>
        resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      ),
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Unauthorized|must be logged in/);
  });
});
