import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { blackholePort } from "@kproxy/testkit";
import { encodeProxyV2, parseProxyHeader } from "@kproxy/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StartedFrontLb, startFrontLb } from "../src/index.js";
import { type Cluster, getVia, kubeconfigVia, metric, startCluster, waitFor } from "./helpers.js";

const run = promisify(execFile);
const KUBECTL = "/usr/bin/kubectl";

/** A raw TCP endpoint: records what it receives, answers "<name>:<bytes>" after the client's FIN. */
class TcpEndpoint {
  readonly received: Buffer[] = [];
  readonly sockets = new Set<Socket>();
  connections = 0;
  private constructor(
    readonly name: string,
    readonly server: Server,
  ) {}
  static async start(name: string): Promise<TcpEndpoint> {
    const server = createServer({ allowHalfOpen: true });
    const ep = new TcpEndpoint(name, server);
    server.on("connection", (s) => {
      ep.connections++;
      ep.sockets.add(s);
      s.on("close", () => ep.sockets.delete(s));
      s.on("error", () => {});
      const chunks: Buffer[] = [];
      s.on("data", (d: Buffer) => chunks.push(d));
      s.on("end", () => {
        const all = Buffer.concat(chunks);
        ep.received.push(all);
        s.end(`${name}:${all.length}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return ep;
  }
  get address(): string {
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** Sends `payload`, half-closes, returns the answer (the relay must pass the FIN and the reply). */
function exchange(
  address: string,
  payload: Buffer | string,
  opts: { prefix?: Buffer } = {},
): Promise<string> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(":")),
    Number(address.slice(address.lastIndexOf(":") + 1)),
  ];
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("end", () => {
      s.end();
      resolve(Buffer.concat(chunks).toString());
    });
    s.on("error", reject);
    s.setTimeout(15_000, () => s.destroy(new Error("client timeout")));
    if (opts.prefix) s.write(opts.prefix);
    s.end(payload);
  });
}

describe("TLS pass-through to API servers", () => {
  let cluster: Cluster;
  let lb: StartedFrontLb;
  beforeAll(async () => {
    cluster = await startCluster(2);
    lb = await startFrontLb({
      listeners: [
        {
          name: "api",
          address: "127.0.0.1:0",
          endpoints: cluster.endpoints,
          healthCheck: { interval: "1s" },
        },
      ],
      admin: { address: "127.0.0.1:0" },
    });
  });
  afterAll(async () => {
    await lb?.close();
    await cluster?.close();
  });

  it.skipIf(!existsSync(KUBECTL))(
    "lets the API server authenticate kubectl's client certificate (mTLS end to end)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "front-lb-kc-"));
      const kc = join(dir, "kubeconfig");
      writeFileSync(kc, kubeconfigVia(cluster, lb.address), { mode: 0o600 });
      for (let i = 0; i < 2; i++) {
        const { stdout } = await run(KUBECTL, ["--kubeconfig", kc, "auth", "whoami", "-o", "json"], {
          timeout: 30_000,
        });
        const review = JSON.parse(stdout) as { status: { userInfo: { username: string; groups: string[] } } };
        expect(review.status.userInfo.username).toBe("alice");
        expect(review.status.userInfo.groups).toContain("system:masters");
      }
      const { stdout } = await run(KUBECTL, ["--kubeconfig", kc, "get", "namespaces", "-o", "name"], {
        timeout: 30_000,
      });
      expect(stdout).toContain("namespace/default");
    },
  );

  it("balances connections round-robin over both servers and counts them", async () => {
    for (let i = 0; i < 4; i++)
      expect((await getVia(cluster, lb.address, "/api/v1/namespaces")).status).toBe(200);
    for (const ep of cluster.endpoints)
      expect(
        await metric(lb.adminUrl!, "kproxy_front_lb_connections_total", { endpoint: ep }),
      ).toBeGreaterThanOrEqual(2);
    expect(
      await metric(lb.adminUrl!, "kproxy_front_lb_bytes_total", {
        endpoint: cluster.endpoints[0]!,
        direction: "to_downstream",
      }),
    ).toBeGreaterThan(1000);
  });
});

describe("L4 relay behaviour", () => {
  let a: TcpEndpoint;
  let b: TcpEndpoint;
  const lbs: StartedFrontLb[] = [];
  const start = async (listener: Record<string, unknown>) => {
    const lb = await startFrontLb({
      listeners: [{ address: "127.0.0.1:0", ...listener }],
      admin: { address: "127.0.0.1:0" },
    });
    lbs.push(lb);
    return lb;
  };
  beforeAll(async () => {
    a = await TcpEndpoint.start("a");
    b = await TcpEndpoint.start("b");
  });
  afterAll(async () => {
    for (const lb of lbs) await lb.close();
    await a?.close();
    await b?.close();
  });

  it("passes a half-close on and still relays the answer (1 MiB payload)", async () => {
    const lb = await start({ endpoints: [a.address], healthCheck: { type: "none" } });
    const payload = Buffer.alloc(1024 * 1024, 7);
    expect(await exchange(lb.address, payload)).toBe(`a:${payload.length}`);
    expect(a.received.at(-1)!.equals(payload)).toBe(true);
  });

  it("retries the connect on another endpoint when one refuses, then ejects it", async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const deadAddress = `127.0.0.1:${(dead.address() as { port: number }).port}`;
    await new Promise((r) => dead.close(r));
    const lb = await start({
      name: "retry",
      endpoints: [deadAddress, a.address],
      healthCheck: { type: "none" },
      outlier: { consecutiveFailures: 2, baseEjectionTime: "60s" },
    });
    for (let i = 0; i < 8; i++) expect(await exchange(lb.address, "x")).toBe("a:1");
    expect(
      await metric(lb.adminUrl!, "kproxy_front_lb_connect_failures_total", { endpoint: deadAddress }),
    ).toBe(2);
    expect(await metric(lb.adminUrl!, "kproxy_front_lb_failovers_total", { listener: "retry" })).toBe(2);
    expect(await metric(lb.adminUrl!, "kproxy_front_lb_endpoint_ejected", { endpoint: deadAddress })).toBe(1);
    const status = (await (await fetch(`${lb.adminUrl}/status`)).json()) as {
      listeners: { endpoints: { key: string; state: string }[] }[];
    };
    expect(status.listeners[0]!.endpoints.find((e) => e.key === deadAddress)?.state).toBe("ejected");
  });

  it("gives up a connect after connectTimeout and uses another endpoint", async () => {
    const hole = await blackholePort();
    try {
      const lb = await start({
        endpoints: [`127.0.0.1:${hole.port}`, b.address],
        balance: "round-robin",
        connectTimeout: "300ms",
        healthCheck: { type: "none" },
      });
      const started = Date.now();
      for (let i = 0; i < 4; i++) expect(await exchange(lb.address, "yy")).toBe("b:2");
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(
        await metric(lb.adminUrl!, "kproxy_front_lb_connect_failures_total", {
          endpoint: `127.0.0.1:${hole.port}`,
        }),
      ).toBeGreaterThanOrEqual(1);
    } finally {
      hole.close();
    }
  });

  it("refuses a connection when every endpoint fails, after trying each", async () => {
    const lb = await start({
      name: "alldead",
      endpoints: ["127.0.0.1:1", "127.0.0.1:2"],
      healthCheck: { type: "none" },
      retries: 5,
    });
    await expect(exchange(lb.address, "z")).resolves.toBe("");
    expect(
      await metric(lb.adminUrl!, "kproxy_front_lb_downstream_rejected_total", {
        listener: "alldead",
        reason: "connect_failed",
      }),
    ).toBe(1);
  });

  it("closes connections idle longer than idleTimeout", async () => {
    const lb = await start({ endpoints: [a.address], idleTimeout: "300ms", healthCheck: { type: "none" } });
    const [host, port] = lb.address.split(":");
    const s = connect({ host, port: Number(port) });
    s.on("error", () => {});
    const started = Date.now();
    await new Promise((r) => s.once("close", r));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("keeps panic mode: when every endpoint fails its checks, connections are still tried", async () => {
    const lb = await start({
      name: "panic",
      endpoints: [a.address, b.address],
      healthCheck: { type: "http", path: "/never", interval: "100ms", timeout: "200ms", fall: 1 },
    });
    // Both raw endpoints fail an HTTP check (they answer no HTTP), so both go down…
    await waitFor(
      "both endpoints down",
      async () =>
        (await metric(lb.adminUrl!, "kproxy_front_lb_endpoint_up", { endpoint: b.address })) === 0 &&
        (await metric(lb.adminUrl!, "kproxy_front_lb_endpoint_up", { endpoint: a.address })) === 0,
    );
    // …yet clients still get through.
    expect(await exchange(lb.address, "p")).toMatch(/^[ab]:1$/);
    expect(await metric(lb.adminUrl!, "kproxy_front_lb_panic", { listener: "panic" })).toBe(1);
  });

  it("source-ip keeps a client on one endpoint; weighted-round-robin follows weights; per listener", async () => {
    const lb = await startFrontLb({
      listeners: [
        {
          name: "sticky",
          address: "127.0.0.1:0",
          balance: "source-ip",
          endpoints: [a.address, b.address],
          healthCheck: { type: "none" },
        },
        {
          name: "weighted",
          address: "127.0.0.1:0",
          balance: "weighted-round-robin",
          endpoints: [
            { address: a.address, weight: 3 },
            { address: b.address, weight: 1 },
          ],
          healthCheck: { type: "none" },
        },
      ],
      admin: false,
    });
    lbs.push(lb);
    const sticky = lb.listeners.find((l) => l.name === "sticky")!;
    const weighted = lb.listeners.find((l) => l.name === "weighted")!;
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) answers.add(await exchange(`127.0.0.1:${sticky.port}`, "s"));
    expect(answers.size).toBe(1);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 8; i++) {
      const who = (await exchange(`127.0.0.1:${weighted.port}`, "w")).split(":")[0]!;
      counts[who] = (counts[who] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 6, b: 2 });
  });

  it("least-connections sends a new connection to the endpoint with fewer open ones", async () => {
    const lb = await start({
      balance: "least-connections",
      endpoints: [a.address, b.address],
      healthCheck: { type: "none" },
    });
    const [host, port] = lb.address.split(":");
    const held: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect({ host, port: Number(port) });
      s.on("error", () => {});
      held.push(s);
    }
    await waitFor("3 held connections", () => a.sockets.size + b.sockets.size === 3);
    const fewer = a.sockets.size < b.sockets.size ? "a" : "b";
    expect((await exchange(lb.address, "l")).split(":")[0]).toBe(fewer);
    for (const s of held) s.destroy();
  });
});

describe("PROXY protocol per listener", () => {
  let ep: TcpEndpoint;
  let lb: StartedFrontLb;
  beforeAll(async () => {
    ep = await TcpEndpoint.start("pp");
    lb = await startFrontLb({
      listeners: [
        {
          name: "send-v2",
          address: "127.0.0.1:0",
          endpoints: [ep.address],
          proxyProtocol: { send: "v2" },
          healthCheck: { type: "none" },
        },
        {
          name: "send-v1",
          address: "127.0.0.1:0",
          endpoints: [ep.address],
          proxyProtocol: { send: "v1" },
          healthCheck: { type: "none" },
        },
        {
          name: "accept-send",
          address: "127.0.0.1:0",
          endpoints: [ep.address],
          proxyProtocol: { accept: "any", send: "v1", timeout: "500ms" },
          healthCheck: { type: "none" },
        },
        { name: "plain", address: "127.0.0.1:0", endpoints: [ep.address], healthCheck: { type: "none" } },
      ],
      admin: false,
    });
  });
  afterAll(async () => {
    await lb?.close();
    await ep?.close();
  });
  const port = (name: string) => lb.listeners.find((l) => l.name === name)!.port;

  it("sends a v2 header with the client's addresses before the payload", async () => {
    expect(await exchange(`127.0.0.1:${port("send-v2")}`, "hello")).toMatch(/^pp:\d+$/);
    const got = ep.received.at(-1)!;
    const parsed = parseProxyHeader(got)!;
    expect(got.subarray(0, 16).toString("hex")).toBe("0d0a0d0a000d0a515549540a2111000c");
    expect(got.subarray(16, 24).toString("hex")).toBe("7f0000017f000001");
    expect(got.readUInt16BE(26)).toBe(port("send-v2"));
    expect(parsed.header.addresses).toMatchObject({
      family: "TCP4",
      sourceAddress: "127.0.0.1",
      destinationPort: port("send-v2"),
    });
    expect(got.subarray(parsed.length).toString()).toBe("hello");
  });

  it("sends a v1 line", async () => {
    await exchange(`127.0.0.1:${port("send-v1")}`, "hi");
    expect(ep.received.at(-1)!.toString()).toMatch(
      new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${port("send-v1")}\\r\\nhi$`),
    );
  });

  it("accepts a downstream LB's header and passes the original client on", async () => {
    const header = encodeProxyV2({
      family: "TCP4",
      sourceAddress: "203.0.113.7",
      sourcePort: 40123,
      destinationAddress: "198.51.100.1",
      destinationPort: 443,
    });
    await exchange(`127.0.0.1:${port("accept-send")}`, "data", { prefix: header });
    expect(ep.received.at(-1)!.toString()).toBe("PROXY TCP4 203.0.113.7 198.51.100.1 40123 443\r\ndata");
  });

  it("closes a connection without a valid header on an accepting listener, and sends none on a plain one", async () => {
    const before = ep.connections;
    expect(await exchange(`127.0.0.1:${port("accept-send")}`, "GET / HTTP/1.1\r\n\r\n")).toBe("");
    expect(ep.connections).toBe(before);
    await exchange(`127.0.0.1:${port("plain")}`, "raw");
    expect(ep.received.at(-1)!.toString()).toBe("raw");
  });
});
