import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "@kproxy/core";
import { TestApiServer } from "@kproxy/testkit";
import { type AppProcess, appBinary, startApp } from "./apps.js";
import { type PodBackend, startPodBackend } from "./endpoints.js";

/** One workload of the sandbox: pods with the same labels, and the Service that selects them. */
interface Workload {
  namespace: string;
  app: string;
  replicas: number;
  containerPort: number;
  service: { name: string; port: number; portName: string; type?: "ClusterIP" | "NodePort" };
}

export const WORKLOADS: readonly Workload[] = [
  {
    namespace: "demo",
    app: "web",
    replicas: 3,
    containerPort: 8080,
    service: { name: "web", port: 80, portName: "http" },
  },
  {
    namespace: "demo",
    app: "api",
    replicas: 2,
    containerPort: 9090,
    service: { name: "api", port: 9090, portName: "http", type: "NodePort" },
  },
  {
    namespace: "default",
    app: "echo",
    replicas: 1,
    containerPort: 7070,
    service: { name: "echo", port: 80, portName: "http" },
  },
];

export interface SandboxOptions {
  /** Directory for the kubeconfig and other files (default ./.sandbox). */
  dir?: string;
  /** API server port (0 = any free port). */
  port?: number;
  /** First byte pattern of pod IPs: pods get 127.0.<subnet>.<n> (default 10). */
  podSubnet?: number;
  /** Port for kubectl-proxy (0 = any free port; false = do not start it). */
  kubectlProxyPort?: number | false;
  logger?: Logger;
}

export interface Sandbox {
  apiServer: TestApiServer;
  kubeconfigPath: string;
  backends: PodBackend[];
  /** kubectl-proxy in front of the API server, as `kubectl proxy` would be (plain HTTP on loopback). */
  kubectlProxy: { url: string } | undefined;
  close(): Promise<void>;
}

/** Starts the fake cluster: an HTTPS API server seeded with namespaces, Services, Pods and a Node. */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const dir = resolve(options.dir ?? ".sandbox");
  await mkdir(dir, { recursive: true });
  const subnet = options.podSubnet ?? 10;
  const backends: PodBackend[] = [];
  const podAddress = new Map<string, PodBackend>();
  let apiServer: TestApiServer | undefined;
  const apps: AppProcess[] = [];
  const stopAll = async () => {
    await Promise.all(apps.map((a) => a.close()));
    await apiServer?.close();
    await Promise.all(backends.map((b) => b.close()));
  };
  try {
    let n = 0;
    for (const w of WORKLOADS) {
      for (let i = 0; i < w.replicas; i++) {
        n++;
        const b = await startPodBackend(
          w.namespace,
          `${w.app}-${i}`,
          `127.0.${subnet}.${n}`,
          w.containerPort,
        );
        backends.push(b);
        podAddress.set(`${w.namespace}/${b.pod}`, b);
      }
    }
    apiServer = await TestApiServer.start({
      port: options.port ?? 0,
      ...(options.logger ? { logger: options.logger } : {}),
      portForwardTarget: (namespace, pod, port) => {
        const b = podAddress.get(`${namespace}/${pod}`);
        return b && port === b.port ? { host: b.ip, port: b.port } : undefined;
      },
    });
    apiServer.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "sandbox-node", labels: { "kubernetes.io/hostname": "sandbox-node" } },
      status: {
        addresses: [
          { type: "InternalIP", address: "127.0.0.1" },
          { type: "Hostname", address: "sandbox-node" },
        ],
        conditions: [{ type: "Ready", status: "True" }],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      },
    });
    for (const ns of new Set(WORKLOADS.map((w) => w.namespace))) {
      if (ns !== "default") apiServer.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    }
    for (const w of WORKLOADS) {
      for (const b of backends.filter((x) => x.namespace === w.namespace && x.pod.startsWith(`${w.app}-`))) {
        apiServer.create({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: b.pod, namespace: w.namespace, labels: { app: w.app } },
          spec: {
            nodeName: "sandbox-node",
            containers: [
              {
                name: w.app,
                image: `kproxy/sandbox-${w.app}:1`,
                ports: [{ name: w.service.portName, containerPort: b.port }],
              },
            ],
          },
          status: {
            phase: "Running",
            podIP: b.ip,
            podIPs: [{ ip: b.ip }],
            hostIP: "127.0.0.1",
            conditions: [{ type: "Ready", status: "True" }],
            containerStatuses: [
              {
                name: w.app,
                ready: true,
                restartCount: 0,
                image: `kproxy/sandbox-${w.app}:1`,
                state: { running: {} },
              },
            ],
          },
        });
      }
      apiServer.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: w.service.name, namespace: w.namespace, labels: { app: w.app } },
        spec: {
          type: w.service.type ?? "ClusterIP",
          selector: { app: w.app },
          ports: [
            {
              name: w.service.portName,
              port: w.service.port,
              targetPort: w.service.portName,
              protocol: "TCP",
            },
          ],
        },
      });
    }
    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, apiServer.kubeconfig({ namespace: "demo" }), { mode: 0o600 });
    let kubectlProxy: Sandbox["kubectlProxy"];
    if (options.kubectlProxyPort !== false) {
      const app = await startApp(
        "kubectl-proxy",
        appBinary("@kproxy/kubectl-proxy", "kubectl-proxy"),
        [`--kubeconfig=${kubeconfigPath}`, `--port=${options.kubectlProxyPort ?? 0}`, "--workers=1"],
        /^Starting to serve on (\S+)$/m,
      );
      apps.push(app);
      kubectlProxy = { url: `http://${app.ready[1]}` };
    }
    return { apiServer, kubeconfigPath, backends, kubectlProxy, close: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
