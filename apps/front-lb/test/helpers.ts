import { request } from "node:https";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  type KeyPair,
  TestApiServer,
} from "@kproxy/testkit";

export interface Cluster {
  ca: CertificateAuthority;
  servers: TestApiServer[];
  client: KeyPair;
  /** "127.0.0.1:port" of each server. */
  endpoints: string[];
  close(): Promise<void>;
}

/** `n` testkit API servers sharing one CA, and a client certificate for CN=alice. */
export async function startCluster(n: number): Promise<Cluster> {
  const ca = await createCertificateAuthority({ commonName: "front-lb-test-ca" });
  const servers: TestApiServer[] = [];
  for (let i = 0; i < n; i++) servers.push(await TestApiServer.start({ ca }));
  const client = await ca.issueClientCert({ commonName: "alice", organizations: ["system:masters"] });
  return {
    ca,
    servers,
    client,
    endpoints: servers.map((s) => new URL(s.url).host),
    close: async () => {
      for (const s of servers) await s.close();
    },
  };
}

/** A kubeconfig for `server`'s CA and the client cert, pointed at front-lb's address. */
export function kubeconfigVia(cluster: Cluster, address: string): string {
  const kc = JSON.parse(cluster.servers[0]!.kubeconfig({ clientCert: cluster.client })) as {
    clusters: { cluster: { server: string } }[];
  };
  kc.clusters[0]!.cluster.server = `https://${address}`;
  return JSON.stringify(kc);
}

/** GET over a new TLS connection (mTLS with the client cert) through `address`. */
export function getVia(
  cluster: Cluster,
  address: string,
  path: string,
  timeoutMs = 10_000,
): Promise<{ status: number; body: string; localPort: number }> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(":")),
    Number(address.slice(address.lastIndexOf(":") + 1)),
  ];
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path,
        ca: cluster.ca.certPem,
        cert: cluster.client.certPem,
        key: cluster.client.keyPem,
        servername: "localhost",
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body, localPort: req.socket?.localPort ?? 0 }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end();
  });
}

export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One sample of a Prometheus metric from the admin listener, or undefined. */
export async function metric(
  adminUrl: string,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf("}"));
    if (want.every((w) => inner.split(",").includes(w))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}
