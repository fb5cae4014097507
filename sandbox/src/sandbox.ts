import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type RunningApiserverProxy, startApiserverProxy } from "@kproxy/apiserver-proxy";
import type { Logger } from "@kproxy/core";
import { type StartedFrontLb, startFrontLb } from "@kproxy/front-lb";
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
  /** Start front-lb in front of two API servers of the cluster (default true). */
  frontLb?: boolean;
  /** Start apiserver-proxy, the authenticated bastion into services, pods and nodes (default true). */
  apiserverProxy?: boolean;
  logger?: Logger;
}

export interface Sandbox {
  apiServer: TestApiServer;
  kubeconfigPath: string;
  backends: PodBackend[];
  /** kubectl-proxy in front of the API server, as `kubectl proxy` would be (plain HTTP on loopback). */
  kubectlProxy: { url: string } | undefined;
  /** front-lb in front of the API server and its replica on 127.0.0.2, with its own kubeconfig. */
  frontLb: { url: string; adminUrl: string | undefined; kubeconfigPath: string } | undefined;
  /** apiserver-proxy: `/api/v1/namespaces/NS/services/NAME[:PORT]/proxy/…` with the admin token. */
  apiserverProxy: { url: string; caPath: string; token: string; tokenPath: string } | undefined;
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
  let replica: TestApiServer | undefined;
  let flb: StartedFrontLb | undefined;
  let asp: RunningApiserverProxy | undefined;
  const apps: AppProcess[] = [];
  const stopAll = async () => {
    await Promise.all(apps.map((a) => a.close()));
    await asp?.close(0);
    await flb?.close();
    await replica?.close();
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
    const caPath = join(dir, "ca.crt");
    await writeFile(caPath, apiServer.ca?.certPem ?? "");

    let frontLb: Sandbox["frontLb"];
    if (options.frontLb !== false) {
      // A second API server of the same cluster, on the same port at 127.0.0.2, as HA control planes have.
      replica = await TestApiServer.start({ replicaOf: apiServer, host: "127.0.0.2" });
      flb = await startFrontLb({
        listeners: [
          {
            name: "apiserver",
            address: "127.0.0.1:0",
            endpoints: [apiServer, replica].map((s) => new URL(s.url).host),
            healthCheck: { interval: "2s", ca: caPath },
          },
        ],
        admin: { address: "127.0.0.1:0" },
      });
      const flbKubeconfig = JSON.parse(apiServer.kubeconfig({ namespace: "demo" })) as {
        clusters: { cluster: { server: string } }[];
      };
      for (const c of flbKubeconfig.clusters) c.cluster.server = `https://${flb.address}`;
      const path = join(dir, "kubeconfig-front-lb");
      await writeFile(path, JSON.stringify(flbKubeconfig, null, 2), { mode: 0o600 });
      frontLb = { url: `https://${flb.address}`, adminUrl: flb.adminUrl, kubeconfigPath: path };
    }

    let apiserverProxy: Sandbox["apiserverProxy"];
    if (options.apiserverProxy !== false && apiServer.ca) {
      const cert = await apiServer.ca.issueServerCert({ dnsNames: ["localhost"], ips: ["127.0.0.1"] });
      asp = await startApiserverProxy({
        kubeconfig: kubeconfigPath,
        tls: { cert: cert.certPem, key: cert.keyPem },
        clientCa: apiServer.ca.certPem,
        // The sandbox's pods listen on 127.0.10.N: a real cluster never allows that.
        devAllowLoopbackEndpoints: true,
        preferredAddressTypes: ["InternalIP", "Hostname"],
        ...(options.logger ? { logger: options.logger } : {}),
      });
      const tokenPath = join(dir, "token");
      await writeFile(tokenPath, apiServer.adminToken, { mode: 0o600 });
      apiserverProxy = { url: asp.url, caPath, token: apiServer.adminToken, tokenPath };
    }
    return { apiServer, kubeconfigPath, backends, kubectlProxy, frontLb, apiserverProxy, close: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
