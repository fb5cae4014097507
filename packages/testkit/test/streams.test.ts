import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import {
  type AddressInfo,
  connect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Duplex, PassThrough } from "node:stream";
import { silentLogger } from "@kproxy/core";
import { Exec, KubeConfig, PortForward } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { handlePodStream } from "../src/streams/index.js";
import { SpdySession } from "../src/streams/spdy.js";

// Generous: these tests start processes and sockets on a possibly loaded 2-core CI machine.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const KUBECTL = "/usr/bin/kubectl";
const NS = "default";
const POD = "web-0";
const TWO_CONTAINER_POD = "duo";

// ---------------------------------------------------------------------------------------------------------------
// A minimal API server: enough discovery for kubectl, GET of a Running pod, and upgrades handed to handlePodStream.
// ---------------------------------------------------------------------------------------------------------------

interface Fixture {
  server: Server;
  port: number;
  base: string;
  /** Address of a TCP server that pods' port 8080 forwards to (it answers "pong:" + what it received). */
  pongServer: NetServer;
  upgrades: Array<{ url: string; upgrade: string; protocols: string }>;
  /** Every socket accepted by either server, to be destroyed at the end. */
  sockets: Set<Socket>;
}

function podJson(name: string) {
  const containers = name === TWO_CONTAINER_POD ? [{ name: "app" }, { name: "sidecar" }] : [{ name: "app" }];
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name, namespace: NS, uid: `uid-${name}`, resourceVersion: "1" },
    spec: { containers: containers.map((c) => ({ ...c, image: "busybox" })) },
    status: {
      phase: "Running",
      conditions: [{ type: "Ready", status: "True" }],
      containerStatuses: containers.map((c) => ({ name: c.name, ready: true, state: { running: {} } })),
    },
  };
}

async function startFixture(): Promise<Fixture> {
  const sockets = new Set<Socket>();
  const track = (sock: Socket): void => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  };
  const pongServer = createNetServer({ allowHalfOpen: true }, (sock) => {
    track(sock);
    const chunks: Buffer[] = [];
    sock.on("data", (c) => {
      chunks.push(c);
      sock.write(Buffer.concat([Buffer.from("pong:"), c]));
    });
    sock.on("end", () => sock.end());
    sock.on("error", () => sock.destroy());
  });
  await new Promise<void>((r) => pongServer.listen(0, "127.0.0.1", r));
  const pongPort = (pongServer.address() as AddressInfo).port;
  // Nothing listens on port 1 of the loopback: connections to it are refused at once.
  const closedPort = 1;
  const upgrades: Fixture["upgrades"] = [];

  const json = (res: import("node:http").ServerResponse, code: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const p = url.pathname;
    if (p === "/version") {
      return json(res, 200, { major: "1", minor: "32", gitVersion: "v1.32.0", platform: "linux/amd64" });
    }
    if (p === "/api") {
      return json(res, 200, {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }],
      });
    }
    if (p === "/apis") return json(res, 200, { kind: "APIGroupList", apiVersion: "v1", groups: [] });
    if (p === "/api/v1") {
      return json(res, 200, {
        kind: "APIResourceList",
        groupVersion: "v1",
        resources: [
          {
            name: "pods",
            singularName: "pod",
            namespaced: true,
            kind: "Pod",
            verbs: ["get", "list"],
            shortNames: ["po"],
          },
          {
            name: "pods/exec",
            singularName: "",
            namespaced: true,
            kind: "PodExecOptions",
            verbs: ["create", "get"],
          },
          {
            name: "pods/attach",
            singularName: "",
            namespaced: true,
            kind: "PodAttachOptions",
            verbs: ["create", "get"],
          },
          {
            name: "pods/portforward",
            singularName: "",
            namespaced: true,
            kind: "PodPortForwardOptions",
            verbs: ["create", "get"],
          },
        ],
      });
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(p);
    if (m && m[1] === NS && (m[2] === POD || m[2] === TWO_CONTAINER_POD))
      return json(res, 200, podJson(m[2]));
    return json(res, 404, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      reason: "NotFound",
      code: 404,
      message: `${p} not found`,
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://x");
    upgrades.push({
      url: req.url ?? "",
      upgrade: String(req.headers.upgrade ?? ""),
      protocols: String(
        req.headers["sec-websocket-protocol"] ?? req.headers["x-stream-protocol-version"] ?? "",
      ),
    });
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach|portforward)$/.exec(url.pathname);
    if (!m || m[1] !== NS || (m[2] !== POD && m[2] !== TWO_CONTAINER_POD)) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    const pod = m[2] as string;
    handlePodStream(req, socket, head, {
      namespace: NS,
      pod,
      subresource: m[3] as "exec" | "attach" | "portforward",
      query: url.searchParams,
      containerNames: podJson(pod).spec.containers.map((c) => c.name),
      portForwardTarget: (_ns, _pod, port) =>
        port === 8080
          ? { host: "127.0.0.1", port: pongPort }
          : port === 9999
            ? { host: "127.0.0.1", port: closedPort }
            : undefined,
      logger: silentLogger,
    });
  });
  server.on("connection", track);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { server, port, base: `127.0.0.1:${port}`, pongServer, upgrades, sockets };
}

let fx: Fixture;
let tmp: string;
let kubeconfigPath: string;

beforeAll(async () => {
  fx = await startFixture();
  tmp = mkdtempSync(join(tmpdir(), "kproxy-streams-"));
  kubeconfigPath = join(tmp, "kubeconfig");
  writeFileSync(
    kubeconfigPath,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fx",
      "  cluster:",
      `    server: http://${fx.base}`,
      "users:",
      "- name: u",
      "  user: {}",
      "contexts:",
      "- name: fx",
      "  context: {cluster: fx, user: u, namespace: default}",
      "current-context: fx",
      "",
    ].join("\n"),
  );
});

afterAll(async () => {
  for (const s of fx.sockets) s.destroy();
  await new Promise<void>((r) => fx.server.close(() => r()));
  await new Promise<void>((r) => fx.pongServer.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

interface RawResult {
  protocol: string;
  frames: Array<{ channel: number; data: Buffer }>;
  closeCode: number;
}

/** Opens a websocket, sends `messages` after open, collects every message until the server closes. */
function wsSession(
  path: string,
  protocols: string[],
  opts: { send?: (ws: WebSocket) => void; timeoutMs?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${fx.base}${path}`, protocols);
    const frames: RawResult["frames"] = [];
    const timer = setTimeout(() => {
      ws.terminate();
      reject(
        new Error(
          `websocket session timed out; got ${JSON.stringify(frames.map((f) => [f.channel, f.data.toString()]))}`,
        ),
      );
    }, opts.timeoutMs ?? 20_000);
    ws.on("open", () => opts.send?.(ws));
    ws.on("message", (data: Buffer) => frames.push({ channel: data[0] as number, data: data.subarray(1) }));
    ws.on("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () =>
        reject(
          Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { statusCode: res.statusCode, body }),
        ),
      );
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on("close", (code) => {
      clearTimeout(timer);
      resolve({ protocol: ws.protocol, frames, closeCode: code });
    });
  });
}

function channelText(r: RawResult, channel: number): string {
  return Buffer.concat(r.frames.filter((f) => f.channel === channel).map((f) => f.data)).toString("utf8");
}

function frame(channel: number, data: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), Buffer.from(data)]);
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runKubectl(
  args: string[],
  input?: string,
  timeoutMs = 30_000,
  env: Record<string, string> = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL, ["--kubeconfig", kubeconfigPath, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin", HOME: tmp, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`kubectl ${args.join(" ")} timed out; stdout=${stdout} stderr=${stderr.slice(-3000)}`),
      );
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

const hasKubectl = existsSync(KUBECTL);
if (!hasKubectl) console.warn(`SKIPPING kubectl tests: ${KUBECTL} not found`);

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts `kubectl port-forward`, waits until it listens, runs `fn`, then stops it. */
async function withKubectlPortForward(
  remotePort: number,
  env: Record<string, string>,
  fn: (localPort: number) => Promise<void>,
): Promise<string> {
  const localPort = await freePort();
  const child: ChildProcess = spawn(
    KUBECTL,
    [
      "--kubeconfig",
      kubeconfigPath,
      "port-forward",
      "--address",
      "127.0.0.1",
      `pod/${POD}`,
      `${localPort}:${remotePort}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin", HOME: tmp, ...env } },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes("Forwarding from")) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`kubectl port-forward did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await fn(localPort);
  } finally {
    child.kill("SIGTERM");
    await new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) return r();
      const t = setTimeout(() => {
        child.kill("SIGKILL");
        r();
      }, 5_000);
      child.on("exit", () => {
        clearTimeout(t);
        r();
      });
    });
  }
  return out;
}

/** Connects to 127.0.0.1:port, writes `data`, half-closes, and returns everything received until the peer ends. */
function tcpRoundTrip(
  port: number,
  data: Buffer,
  opts: { halfClose?: boolean; until?: (got: Buffer) => boolean } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`tcp round trip timed out; got ${Buffer.concat(chunks).length} bytes`));
    }, 20_000);
    const done = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    sock.on("connect", () => {
      sock.write(data);
      if (opts.halfClose !== false) sock.end();
    });
    sock.on("data", (c) => {
      chunks.push(c);
      if (opts.until?.(Buffer.concat(chunks))) done();
    });
    sock.on("end", done);
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// real kubectl
// ---------------------------------------------------------------------------------------------------------------

describe.skipIf(!hasKubectl)("real kubectl 1.32", () => {
  it("kubectl exec POD -- echo hello prints hello over v5.channel.k8s.io", async () => {
    const r = await runKubectl(["exec", POD, "--", "echo", "hello"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello\n");
    expect(r.code).toBe(0);
    expect(fx.upgrades.at(-1)?.protocols).toContain("v5.channel.k8s.io");
  });

  it("kubectl exec -i POD -- cat echoes stdin and ends when stdin closes", async () => {
    const r = await runKubectl(["exec", "-i", POD, "--", "cat"], "line one\nline two\n");
    expect(r.stdout).toBe("line one\nline two\n");
    expect(r.code).toBe(0);
  });

  it("kubectl exec POD -- sh -c 'exit 3' exits with 3", async () => {
    const r = await runKubectl(["exec", POD, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toContain("err\n");
    expect(r.stderr).toContain("command terminated with exit code 3");
    expect(r.code).toBe(3);
  });

  it("kubectl exec of an unknown executable reports the runtime error and exit code 127", async () => {
    const r = await runKubectl(["exec", POD, "--", "no-such-binary"]);
    expect(r.stderr).toContain('exec: "no-such-binary": executable file not found in $PATH');
    expect(r.stderr).toContain("command terminated with exit code 127");
    expect(r.code).toBe(127);
  });

  it("kubectl exec -c picks the container and rejects an unknown one", async () => {
    const ok = await runKubectl(["exec", TWO_CONTAINER_POD, "-c", "sidecar", "--", "env"]);
    expect(ok.stdout).toContain("KPROXY_TESTKIT_CONTAINER=sidecar");
    const bad = await runKubectl(["exec", POD, "-c", "nope", "--", "true"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("container nope is not valid for pod web-0");
  });

  it("kubectl attach -i shows the greeting and echoes stdin", async () => {
    const r = await runKubectl(["attach", "-i", POD], "attached input\n");
    expect(r.stdout).toContain(`attached to ${NS}/${POD} container app: echoing stdin\n`);
    expect(r.stdout).toContain("attached input\n");
    expect(r.code).toBe(0);
  });

  it("kubectl exec over the SPDY fallback (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)", async () => {
    const env = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" };
    const hello = await runKubectl(["exec", POD, "--", "hostname"], undefined, 30_000, env);
    expect(hello.stdout).toBe(`${POD}\n`);
    expect(hello.code).toBe(0);
    expect(fx.upgrades.at(-1)?.upgrade).toBe("SPDY/3.1");
    const cat = await runKubectl(["exec", "-i", POD, "--", "cat"], "through spdy\n", 30_000, env);
    expect(cat.stdout).toBe("through spdy\n");
    const exit = await runKubectl(["exec", POD, "--", "sh", "-c", "exit 5"], undefined, 30_000, env);
    expect(exit.code).toBe(5);
    expect(exit.stderr).toContain("command terminated with exit code 5");
  });

  it("kubectl port-forward (SPDY tunnelled in a WebSocket) carries bytes to the target and back", async () => {
    await withKubectlPortForward(8080, {}, async (local) => {
      const got = await tcpRoundTrip(local, Buffer.from("ping"), { until: (b) => b.length >= 9 });
      expect(got.toString()).toBe("pong:ping");
    });
    expect(fx.upgrades.some((u) => u.protocols.includes("SPDY/3.1+portforward.k8s.io"))).toBe(true);
  });

  it("kubectl port-forward to a port without target behaves as an echo server, for several connections and 1 MiB", async () => {
    await withKubectlPortForward(80, {}, async (local) => {
      const big = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
      const [a, b] = await Promise.all([tcpRoundTrip(local, Buffer.from("first")), tcpRoundTrip(local, big)]);
      expect(a.toString()).toBe("first");
      expect(b.equals(big)).toBe(true);
    });
  });

  it("kubectl port-forward over direct SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false)", async () => {
    const before = fx.upgrades.length;
    await withKubectlPortForward(8080, { KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" }, async (local) => {
      const got = await tcpRoundTrip(local, Buffer.from("direct"), { until: (b) => b.length >= 11 });
      expect(got.toString()).toBe("pong:direct");
    });
    expect(
      fx.upgrades
        .slice(before)
        .some((u) => u.upgrade === "SPDY/3.1" && u.protocols.includes("portforward.k8s.io")),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// exec / attach over the websocket channel protocol, raw frames
// ---------------------------------------------------------------------------------------------------------------

const execPath = (pod: string, params: string) => `/api/v1/namespaces/${NS}/pods/${pod}/exec?${params}`;

describe("exec over websocket channel protocols", () => {
  it("v5: echo writes the args on stdout then a Success status, then closes normally", async () => {
    const r = await wsSession(
      execPath(POD, "command=echo&command=hello&command=world&stdout=true&stderr=true"),
      ["v5.channel.k8s.io", "v4.channel.k8s.io"],
    );
    expect(r.protocol).toBe("v5.channel.k8s.io");
    expect(r.frames.map((f) => f.channel)).toEqual([1, 3]);
    expect(channelText(r, 1)).toBe("hello world\n");
    expect(JSON.parse(channelText(r, 3))).toMatchObject({ kind: "Status", status: "Success" });
    expect(r.closeCode).toBe(1000);
  });

  it("v4: a non-zero exit is a Failure status with reason NonZeroExitCode and the ExitCode cause", async () => {
    const q = new URLSearchParams([
      ["command", "sh"],
      ["command", "-c"],
      ["command", "echo bye; exit 3"],
      ["stdout", "1"],
      ["stderr", "1"],
    ]);
    const r = await wsSession(execPath(POD, q.toString()), ["v4.channel.k8s.io"]);
    expect(r.protocol).toBe("v4.channel.k8s.io");
    expect(channelText(r, 1)).toBe("bye\n");
    const status = JSON.parse(channelText(r, 3));
    expect(status).toMatchObject({
      status: "Failure",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "3" }] },
    });
  });

  it("v5: cat echoes stdin until the client closes channel 0 with [255, 0]", async () => {
    const r = await wsSession(
      execPath(POD, "command=cat&stdin=true&stdout=true&stderr=true"),
      ["v5.channel.k8s.io"],
      {
        send: (ws) => {
          ws.send(frame(0, "abc"));
          ws.send(frame(0, "def\n"));
          ws.send(Buffer.from([255, 0]));
        },
      },
    );
    expect(channelText(r, 1)).toBe("abcdef\n");
    expect(JSON.parse(channelText(r, 3)).status).toBe("Success");
  });

  it("an unknown executable writes the runtime's message on stderr and reports exit code 127", async () => {
    const r = await wsSession(execPath(POD, "command=frobnicate&stdout=true&stderr=true"), [
      "v5.channel.k8s.io",
    ]);
    expect(channelText(r, 2)).toContain('exec: "frobnicate": executable file not found in $PATH');
    expect(channelText(r, 1)).toBe("");
    expect(JSON.parse(channelText(r, 3)).details.causes).toEqual([{ reason: "ExitCode", message: "127" }]);
  });

  it("with tty, stderr output arrives on the stdout channel", async () => {
    const q = new URLSearchParams([
      ["command", "sh"],
      ["command", "-c"],
      ["command", "echo oops >&2"],
      ["stdout", "true"],
      ["tty", "true"],
    ]);
    const r = await wsSession(execPath(POD, q.toString()), ["v5.channel.k8s.io"], {
      send: (ws) => ws.send(frame(4, JSON.stringify({ Width: 80, Height: 24 }))),
    });
    expect(r.frames.some((f) => f.channel === 2)).toBe(false);
    expect(channelText(r, 1)).toBe("oops\n");
  });

  it("hostname prints the pod name, env shows the container, sleep is bounded by the connection", async () => {
    const h = await wsSession(execPath(POD, "command=hostname&stdout=true"), ["v4.channel.k8s.io"]);
    expect(channelText(h, 1)).toBe(`${POD}\n`);
    const e = await wsSession(execPath(TWO_CONTAINER_POD, "command=env&stdout=true&container=sidecar"), [
      "v4.channel.k8s.io",
    ]);
    expect(channelText(e, 1)).toContain(`HOSTNAME=${TWO_CONTAINER_POD}\n`);
    expect(channelText(e, 1)).toContain("KPROXY_TESTKIT_CONTAINER=sidecar\n");
    const started = Date.now();
    const s = await wsSession(execPath(POD, "command=sleep&command=0.2&stdout=true"), ["v4.channel.k8s.io"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(JSON.parse(channelText(s, 3)).status).toBe("Success");
  });

  it("the default container is the first one; the error channel of v1 protocols is plain text", async () => {
    const r = await wsSession(execPath(TWO_CONTAINER_POD, "command=env&stdout=true"), ["channel.k8s.io"]);
    expect(r.protocol).toBe("channel.k8s.io");
    expect(channelText(r, 1)).toContain("KPROXY_TESTKIT_CONTAINER=app\n");
    expect(r.frames.some((f) => f.channel === 3)).toBe(false);
    const f = await wsSession(execPath(POD, "command=false&stdout=true"), ["v2.channel.k8s.io"]);
    expect(channelText(f, 3)).toBe("command terminated with non-zero exit code: exit code 1");
  });

  it("base64 variant: text messages prefixed with the channel digit", async () => {
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://${fx.base}${execPath(POD, "command=cat&stdin=true&stdout=true")}`, [
        "v4.base64.channel.k8s.io",
      ]);
      ws.on("open", () => {
        expect(ws.protocol).toBe("v4.base64.channel.k8s.io");
        ws.send(`0${Buffer.from("b64 data").toString("base64")}`);
      });
      ws.on("message", (d: Buffer, isBinary) => {
        expect(isBinary).toBe(false);
        messages.push(d.toString());
        ws.close();
      });
      ws.on("close", () => resolve());
      ws.on("error", reject);
    });
    expect(messages[0]).toBe(`1${Buffer.from("b64 data").toString("base64")}`);
  });

  it("malformed messages (empty, unknown channel, bad resize JSON) are ignored and the session goes on", async () => {
    const r = await wsSession(execPath(POD, "command=cat&stdin=true&stdout=true"), ["v5.channel.k8s.io"], {
      send: (ws) => {
        ws.send(Buffer.alloc(0));
        ws.send(frame(9, "junk"));
        ws.send(frame(4, "{not json"));
        ws.send("text frame");
        ws.send(frame(0, "still alive"));
        ws.send(Buffer.from([255, 0]));
      },
    });
    expect(channelText(r, 1)).toBe("still alive");
    expect(JSON.parse(channelText(r, 3)).status).toBe("Success");
  });

  it("bad requests get an HTTP error with a Status body before any upgrade", async () => {
    const cases: Array<[string, string[], number, string]> = [
      [
        execPath(POD, "command=true&stdout=true&container=nope"),
        ["v5.channel.k8s.io"],
        400,
        "container nope is not valid for pod web-0",
      ],
      [execPath(POD, "stdout=true"), ["v5.channel.k8s.io"], 400, "you must specify at least 1 command"],
      [
        execPath(POD, "command=true&stdout=maybe"),
        ["v5.channel.k8s.io"],
        400,
        'invalid value for query parameter "stdout"',
      ],
      [
        execPath(POD, "command=true&stdout=false&stderr=false"),
        ["v5.channel.k8s.io"],
        400,
        "at least 1 of stdin, stdout, stderr",
      ],
      [
        execPath(POD, "command=true&stdout=true"),
        ["v9.channel.k8s.io"],
        400,
        "subprotocols [v9.channel.k8s.io] is supported",
      ],
      [
        `/api/v1/namespaces/${NS}/pods/${POD}/portforward?ports=99999`,
        ["v4.channel.k8s.io"],
        400,
        'invalid port "99999"',
      ],
      [
        `/api/v1/namespaces/${NS}/pods/${POD}/portforward`,
        ["v4.channel.k8s.io"],
        400,
        'query parameter "ports" is required',
      ],
    ];
    for (const [path, protocols, code, message] of cases) {
      const err = (await wsSession(path, protocols).then(
        () => undefined,
        (e: unknown) => e,
      )) as { statusCode: number; body: string } | undefined;
      expect(err, path).toBeDefined();
      expect(err?.statusCode).toBe(code);
      const status = JSON.parse(err?.body ?? "{}");
      expect(status).toMatchObject({ kind: "Status", status: "Failure", code, reason: "BadRequest" });
      expect(status.message).toContain(message);
    }
  });

  it("an upgrade to something other than websocket or SPDY is refused with 400", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect({ host: "127.0.0.1", port: fx.port });
      let got = "";
      sock.on("data", (c) => (got += c.toString()));
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
      sock.write(
        `GET ${execPath(POD, "command=true&stdout=true")} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
      );
    });
    expect(reply).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(reply).toContain('"reason":"BadRequest"');
  });

  it("attach prints a greeting, then echoes stdin like cat", async () => {
    const r = await wsSession(
      `/api/v1/namespaces/${NS}/pods/${POD}/attach?stdin=true&stdout=true&stderr=true`,
      ["v5.channel.k8s.io"],
      {
        send: (ws) => {
          ws.send(frame(0, "typed\n"));
          ws.send(Buffer.from([255, 0]));
        },
      },
    );
    expect(channelText(r, 1)).toBe(`attached to ${NS}/${POD} container app: echoing stdin\ntyped\n`);
    expect(JSON.parse(channelText(r, 3)).status).toBe("Success");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// port-forward over the websocket channel protocol
// ---------------------------------------------------------------------------------------------------------------

describe("port-forward over websocket", () => {
  it("announces each port on its data and error channel, echoes port 80 and relays port 8080 to the target", async () => {
    const got: Array<{ channel: number; data: Buffer }> = [];
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(
        `ws://${fx.base}/api/v1/namespaces/${NS}/pods/${POD}/portforward?ports=80,8080`,
        ["portforward.k8s.io"],
      );
      const timer = setTimeout(() => reject(new Error(`timeout: ${JSON.stringify(got)}`)), 20_000);
      ws.on("open", () => {
        expect(ws.protocol).toBe("portforward.k8s.io");
        ws.send(frame(0, "to-echo"));
        ws.send(frame(2, "to-target"));
      });
      ws.on("message", (d: Buffer) => {
        got.push({ channel: d[0] as number, data: d.subarray(1) });
        const data0 = Buffer.concat(got.filter((g) => g.channel === 0).map((g) => g.data));
        const data2 = Buffer.concat(got.filter((g) => g.channel === 2).map((g) => g.data));
        if (data0.length >= 2 + 7 && data2.length >= 2 + 14) {
          clearTimeout(timer);
          ws.close();
          resolve();
        }
      });
      ws.on("error", reject);
    });
    // First message of every channel: the port, little-endian.
    expect(got.slice(0, 4).map((g) => [g.channel, [...g.data]])).toEqual([
      [0, [80, 0]],
      [1, [80, 0]],
      [2, [0x90, 0x1f]],
      [3, [0x90, 0x1f]],
    ]);
    const data = (ch: number) =>
      Buffer.concat(got.filter((g) => g.channel === ch).map((g) => g.data))
        .subarray(2)
        .toString();
    expect(data(0)).toBe("to-echo");
    expect(data(2)).toBe("pong:to-target");
  });

  it("negotiates v4.channel.k8s.io with clients offering every channel version", async () => {
    const ws = new WebSocket(`ws://${fx.base}/api/v1/namespaces/${NS}/pods/${POD}/portforward?ports=80`, [
      "v5.channel.k8s.io",
      "v4.channel.k8s.io",
      "channel.k8s.io",
    ]);
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("error", reject);
    });
    expect(ws.protocol).toBe("v4.channel.k8s.io");
    ws.close();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// @kubernetes/client-node as the client
// ---------------------------------------------------------------------------------------------------------------

function clientKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fx", server: `http://${fx.base}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "fx", cluster: "fx", user: "u" }],
    currentContext: "fx",
  });
  return kc;
}

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString();
}

describe("client-node", () => {
  it("Exec runs a command, streams stdin and reports the status", async () => {
    const exec = new Exec(clientKubeConfig());
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const stdin = new PassThrough();
    const out = collect(stdout);
    const status = await new Promise<{ status?: string }>((resolve, reject) => {
      exec
        .exec(NS, POD, "app", ["cat"], stdout, stderr, stdin, false, (s) => resolve(s as { status?: string }))
        .then(() => {
          stdin.write("from client-node\n");
          stdin.end();
        }, reject);
    });
    expect(status.status).toBe("Success");
    expect(out()).toBe("from client-node\n");
  });

  it("Exec reports a non-zero exit code in the status", async () => {
    const exec = new Exec(clientKubeConfig());
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const err = collect(stderr);
    const status = await new Promise<{ status?: string; reason?: string; details?: { causes?: unknown[] } }>(
      (resolve, reject) => {
        exec
          .exec(NS, POD, "app", ["sh", "-c", "echo failing >&2; exit 42"], stdout, stderr, null, false, (s) =>
            resolve(s as never),
          )
          .catch(reject);
      },
    );
    expect(status).toMatchObject({ status: "Failure", reason: "NonZeroExitCode" });
    expect(status.details?.causes).toEqual([{ reason: "ExitCode", message: "42" }]);
    expect(err()).toBe("failing\n");
  });

  it("PortForward relays bytes to the target port", async () => {
    const pf = new PortForward(clientKubeConfig());
    const output = new PassThrough();
    const input = new PassThrough();
    const out = collect(output);
    const ws = (await pf.portForward(NS, POD, [8080], output, null, input)) as unknown as WebSocket;
    input.write("hello target");
    const deadline = Date.now() + 20_000;
    while (out() !== "pong:hello target" && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(out()).toBe("pong:hello target");
    await new Promise<void>((resolve) => {
      ws.on("close", () => resolve());
      ws.close();
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// port-forward over direct SPDY, with our own SPDY client: the error paths
// ---------------------------------------------------------------------------------------------------------------

async function spdyConnect(path: string, version: string): Promise<{ session: SpdySession; head: string }> {
  const sock = connect({ host: "127.0.0.1", port: fx.port });
  await new Promise<void>((r, j) => {
    sock.once("connect", r);
    sock.once("error", j);
  });
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${version}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  while (!buf.includes("\r\n\r\n")) {
    const chunk = await new Promise<Buffer>((r, j) => {
      sock.once("data", r);
      sock.once("close", () => j(new Error(`closed after ${buf.toString()}`)));
    });
    buf = Buffer.concat([buf, chunk]);
  }
  sock.pause();
  if (!buf.toString("latin1").startsWith("HTTP/1.1 101 ")) {
    sock.destroy();
    throw new Error(`upgrade refused: ${buf.toString()}`);
  }
  const end = buf.indexOf("\r\n\r\n") + 4;
  const head = buf.subarray(0, end).toString();
  if (buf.length > end) sock.unshift(buf.subarray(end));
  const session = new SpdySession(sock, { role: "client" });
  sock.resume();
  return { session, head };
}

describe("port-forward over direct SPDY", () => {
  const path = `/api/v1/namespaces/${NS}/pods/${POD}/portforward`;

  it("answers the upgrade with the negotiated protocol and refuses unknown protocol versions with 403", async () => {
    const { session, head } = await spdyConnect(path, "portforward.k8s.io");
    expect(head).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n/);
    expect(head).toContain("Upgrade: SPDY/3.1\r\n");
    expect(head).toContain("X-Stream-Protocol-Version: portforward.k8s.io\r\n");
    session.destroy();
    await expect(spdyConnect(path, "v9.portforward.example")).rejects.toThrow(
      /403 Forbidden[\s\S]*unable to negotiate protocol/,
    );
  });

  it("reports a bad port header and an unreachable port on the error stream; refuses unknown stream types", async () => {
    const { session } = await spdyConnect(path, "portforward.k8s.io");
    try {
      const bad = await session.openStream({ streamType: "error", port: "http", requestID: "1" });
      await session.openStream({ streamType: "data", port: "http", requestID: "1" }).catch(() => undefined);
      expect((await readStream(bad.stream)).toString()).toContain('invalid port header "http"');

      const err = await session.openStream({ streamType: "error", port: "9999", requestID: "2" });
      const data = await session.openStream({ streamType: "data", port: "9999", requestID: "2" });
      expect((await readStream(err.stream)).toString()).toMatch(
        /error forwarding port 9999 to pod default\/web-0: failed to connect/,
      );
      expect((await readStream(data.stream)).length).toBe(0);

      await expect(session.openStream({ streamType: "bogus", port: "80", requestID: "3" })).rejects.toThrow(
        /reset by peer/,
      );

      // The session still works after all that.
      const e = await session.openStream({ streamType: "error", port: "80", requestID: "4" });
      const d = await session.openStream({ streamType: "data", port: "80", requestID: "4" });
      d.stream.end("still echoing");
      expect((await readStream(d.stream)).toString()).toBe("still echoing");
      expect((await readStream(e.stream)).toString()).toBe("");
    } finally {
      session.destroy();
    }
  });
});

function readStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => reject(new Error(`stream did not end; got ${Buffer.concat(chunks).toString()}`)),
      20_000,
    );
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
