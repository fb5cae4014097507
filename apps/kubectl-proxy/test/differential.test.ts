/**
 * Differential test: the real `kubectl proxy` (1.32 at /usr/bin/kubectl) and kubectl-proxy are
 * started with the same flags against the same recording HTTPS API server (token in the
 * kubeconfig), fed the same raw requests, and must agree on status, proxy-made bodies and the
 * request the API server sees.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePki, type TestPki } from "./helpers/pki.js";
import { CLI, type RunningProxy, startServing } from "./helpers/proc.js";
import { type RawResponse, rawExchange } from "./helpers/raw.js";
import { type RecordedRequest, type RecordingUpstream, startRecordingUpstream } from "./helpers/recorder.js";

const KUBECTL = "/usr/bin/kubectl";
const HAVE_KUBECTL = existsSync(KUBECTL);
if (!HAVE_KUBECTL) console.warn("SKIPPING differential test: /usr/bin/kubectl is not installed");

const TOKEN = "differential-test-token";

let pki: TestPki;
let upstream: RecordingUpstream;
let work: string;
let kubeconfig: string;
let kubeconfigWithPath: string;
let kubeconfigDown: string;
let wwwDir: string;

function writeKubeconfig(file: string, server: string): void {
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${server}
    certificate-authority: ${pki.caFile}
users:
- name: u
  user:
    token: ${TOKEN}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`,
  );
}

interface FlagSet {
  name: string;
  args: () => string[];
}

const FLAG_SETS: FlagSet[] = [
  { name: "defaults", args: () => [] },
  { name: "custom api prefix", args: () => ["--api-prefix=/custom"] },
  { name: "api prefix under /api", args: () => ["--api-prefix=/api/"] },
  { name: "exec allowed", args: () => ["--reject-paths="] },
  { name: "any host, no POST/PUT", args: () => ["--accept-hosts=.*", "--reject-methods=POST,PUT"] },
  {
    name: "narrow accept",
    args: () => ["--accept-paths=^/api/v1/namespaces", "--accept-hosts=^example\\.com$,^localhost$"],
  },
  { name: "filter disabled", args: () => ["--disable-filter"] },
  { name: "impersonation", args: () => ["--as=alice", "--as-group=devs", "--as-group=ops", "--as-uid=42"] },
  { name: "append server path", args: () => [`--kubeconfig=${kubeconfigWithPath}`, "--append-server-path"] },
  { name: "server path ignored", args: () => [`--kubeconfig=${kubeconfigWithPath}`] },
  { name: "static files", args: () => [`--www=${wwwDir}`, "--www-prefix=/files"] },
  { name: "empty accept-hosts", args: () => ["--accept-hosts="] },
  { name: "compression disabled", args: () => ["--disable-compression"] },
  { name: "nested prefix + static", args: () => ["--api-prefix=/x/y", `--www=${wwwDir}`] },
  { name: "unanchored custom rejects", args: () => ["--reject-paths=secrets,/log$", "--accept-hosts=local"] },
  { name: "token flag overrides", args: () => ["--token=flag-token"] },
];

interface Probe {
  name: string;
  request: (id: string) => string;
}

const h = (id: string, extra = "") => `X-Test-Id: ${id}\r\n${extra}Connection: close\r\n\r\n`;

const PROBES: Probe[] = [
  {
    name: "plain list",
    request: (id) => `GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: localhost\r\n${h(id)}`,
  },
  {
    name: "watch query, host port",
    request: (id) =>
      `GET /api/v1/pods?watch=1&labelSelector=a%3Db HTTP/1.1\r\nHost: localhost:9999\r\n${h(id)}`,
  },
  { name: "ip host", request: (id) => `GET /api HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n${h(id)}` },
  { name: "ipv6 with port", request: (id) => `GET /api/v1/pods HTTP/1.1\r\nHost: [::1]:8001\r\n${h(id)}` },
  { name: "ipv6 bare", request: (id) => `GET /api/v1/pods HTTP/1.1\r\nHost: [::1]\r\n${h(id)}` },
  { name: "upper-case host", request: (id) => `GET /api/v1/pods HTTP/1.1\r\nHost: LOCALHOST\r\n${h(id)}` },
  { name: "evil host", request: (id) => `GET /api/v1/pods HTTP/1.1\r\nHost: localhost.evil.com\r\n${h(id)}` },
  { name: "http/1.0 no host", request: (id) => `GET /api/v1/pods HTTP/1.0\r\n${h(id)}` },
  {
    name: "absolute form",
    request: (id) => `GET http://localhost/api/v1/nodes HTTP/1.1\r\nHost: evil.com\r\n${h(id)}`,
  },
  {
    name: "exec under /api",
    request: (id) =>
      `POST /api/v1/namespaces/default/pods/p/exec?command=ls HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n${h(id)}`,
  },
  {
    name: "exec under /apis",
    request: (id) =>
      `POST /apis/x/v1/namespaces/default/pods/p/exec HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n${h(id)}hello`,
  },
  {
    name: "attach upgrade",
    request: (id) =>
      `GET /api/v1/namespaces/default/pods/p/attach?stdout=1 HTTP/1.1\r\nHost: localhost\r\nX-Test-Id: ${id}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
  },
  {
    name: "upgrade denied upstream",
    request: (id) =>
      `GET /api/v1/namespaces/default/pods/p/portforward/deny-upgrade HTTP/1.1\r\nHost: localhost\r\nX-Test-Id: ${id}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
  },
  {
    name: "double slash and dot-dot",
    request: (id) => `GET /api/v1//namespaces/../pods HTTP/1.1\r\nHost: localhost\r\n${h(id)}`,
  },
  {
    name: "percent-encoded dot-dot",
    request: (id) => `GET /api/v1/%2e%2e/x%2Fy/%7Efoo HTTP/1.1\r\nHost: localhost\r\n${h(id)}`,
  },
  {
    name: "unclean percent path",
    request: (id) => `GET /api//a%20b?x=1 HTTP/1.1\r\nHost: localhost\r\n${h(id)}`,
  },
  { name: "prefix without slash", request: (id) => `GET /custom HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  {
    name: "under custom prefix",
    request: (id) => `GET /custom/api/v1/pods?limit=1 HTTP/1.1\r\nHost: localhost\r\n${h(id)}`,
  },
  { name: "nested prefix", request: (id) => `GET /x/y/apis/apps/v1 HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  {
    name: "client authorization",
    request: (id) =>
      `GET /api/v1/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer client-own\r\n${h(id)}`,
  },
  {
    name: "client impersonation",
    request: (id) => `GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nImpersonate-User: bob\r\n${h(id)}`,
  },
  {
    name: "hop-by-hop headers",
    request: (id) =>
      `DELETE /api/v1/namespaces/default/pods/p HTTP/1.1\r\nHost: localhost\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nTe: trailers\r\nX-Drop-Me: 1\r\nConnection: X-Drop-Me\r\nX-Forwarded-For: 1.2.3.4\r\n${h(id)}`,
  },
  {
    name: "accept-encoding identity",
    request: (id) =>
      `GET /api/v1/pods/log HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n${h(id)}`,
  },
  { name: "transparent gzip", request: (id) => `GET /api/v1/gzip HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  {
    name: "client gzip passthrough",
    request: (id) => `GET /api/v1/gzip HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n${h(id)}`,
  },
  { name: "static listing", request: (id) => `GET /files/ HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  { name: "static file", request: (id) => `GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  { name: "outside prefix", request: (id) => `GET /elsewhere HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  { name: "bad percent escape", request: (id) => `GET /api/%zz HTTP/1.1\r\nHost: localhost\r\n${h(id)}` },
  {
    name: "patch with body",
    request: (id) =>
      `PATCH /apis/apps/v1/namespaces/d/deployments/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/merge-patch+json\r\nContent-Length: 2\r\n${h(id)}{}`,
  },
];

const HEADERS_THAT_MATTER = [
  "host",
  "x-forwarded-for",
  "authorization",
  "accept-encoding",
  "te",
  "content-type",
];
const HOP_BY_HOP = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "trailer",
  "transfer-encoding",
  "x-drop-me",
];

function upstreamView(rec: RecordedRequest | undefined) {
  if (rec === undefined) return undefined;
  const headers: Record<string, string | undefined> = {};
  for (const name of HEADERS_THAT_MATTER) headers[name] = rec.headers[name];
  for (const [name, value] of Object.entries(rec.headers))
    if (name.startsWith("impersonate-")) headers[name] = value;
  const hop: string[] = [];
  // undici's own "Connection: keep-alive" belongs to the proxy's hop, not the client's.
  if (!rec.upgrade) {
    for (const name of HOP_BY_HOP) {
      const value = rec.headers[name];
      if (value !== undefined && !(name === "connection" && value.toLowerCase() === "keep-alive"))
        hop.push(name);
    }
  }
  return {
    method: rec.method,
    url: rec.url,
    headers,
    hopByHop: hop,
    body: rec.body.toString("latin1"),
    upgrade: rec.upgrade,
  };
}

function responseView(res: RawResponse, proxied: boolean) {
  const view: Record<string, unknown> = { status: res.status };
  if (!proxied || res.headers["x-upstream"] === undefined) {
    // Made by the proxy (or a relayed upgrade answer): compare the bytes that matter.
    view.body = res.status === 101 ? undefined : res.body.toString("latin1");
    view.contentType = res.headers["content-type"];
    view.nosniff = res.headers["x-content-type-options"];
    view.location = res.headers.location;
  } else {
    view.body = res.body.toString("latin1");
  }
  view.contentEncoding = res.headers["content-encoding"];
  return view;
}

describe.skipIf(!HAVE_KUBECTL)("differential: kubectl proxy vs kubectl-proxy", () => {
  beforeAll(async () => {
    pki = await makePki();
    upstream = await startRecordingUpstream({ cert: pki.cert, key: pki.key });
    work = mkdtempSync(join(tmpdir(), "kproxy-diff-"));
    kubeconfig = join(work, "kubeconfig");
    kubeconfigWithPath = join(work, "kubeconfig-path");
    kubeconfigDown = join(work, "kubeconfig-down");
    writeKubeconfig(kubeconfig, upstream.url);
    writeKubeconfig(kubeconfigWithPath, `${upstream.url}/k8s/clusters/c-1`);
    writeKubeconfig(kubeconfigDown, "https://127.0.0.1:1");
    wwwDir = join(work, "www");
    mkdirSync(join(wwwDir, "sub"), { recursive: true });
    writeFileSync(join(wwwDir, "hello.txt"), "hello static\n");
  }, 60_000);

  afterAll(async () => {
    await upstream?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  let total = 0;
  for (const [setIndex, set] of FLAG_SETS.entries()) {
    it(`flag set: ${set.name}`, async () => {
      const args = set.args();
      const base = args.some((a) => a.startsWith("--kubeconfig=")) ? [] : [`--kubeconfig=${kubeconfig}`];
      const env = { PATH: process.env.PATH ?? "", HOME: work };
      const theirs: RunningProxy = await startServing(KUBECTL, ["proxy", "-p", "0", ...base, ...args], env);
      const ours: RunningProxy = await startServing(
        process.execPath,
        [CLI, "-p", "0", ...base, ...args],
        env,
      );
      try {
        expect(ours.address).toMatch(/^127\.0\.0\.1:\d+$/);
        for (const [i, probe] of PROBES.entries()) {
          const idK = `k-${setIndex}-${i}`;
          const idO = `o-${setIndex}-${i}`;
          const resK = await rawExchange(theirs.port, probe.request(idK));
          const resO = await rawExchange(ours.port, probe.request(idO));
          const recK = upstream.records.get(idK)?.[0];
          const recO = upstream.records.get(idO)?.[0];
          const context = `${set.name} / ${probe.name}`;
          expect({ context, ...responseView(resO, recO !== undefined) }).toEqual({
            context,
            ...responseView(resK, recK !== undefined),
          });
          const viewK = upstreamView(recK);
          const viewO = upstreamView(recO);
          if (viewK !== undefined) viewK.headers.host = viewK.headers.host?.replace(/:\d+$/, ":PORT");
          if (viewO !== undefined) viewO.headers.host = viewO.headers.host?.replace(/:\d+$/, ":PORT");
          expect({ context, upstream: viewO }).toEqual({ context, upstream: viewK });
          total++;
        }
        if (set.name === "server path ignored") {
          const warning =
            "Your kube context contains a server path /k8s/clusters/c-1, use --append-server-path to automatically append the path to each request";
          expect(theirs.stderr()).toContain(warning);
          expect(ours.stderr()).toContain(warning);
        }
        if (set.name === "filter disabled") {
          const warning =
            "Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious";
          expect(theirs.stderr()).toContain(warning);
          expect(ours.stderr()).toContain(warning);
        }
      } finally {
        await theirs.stop("SIGKILL");
        await ours.stop();
      }
    }, 120_000);
  }

  it("API server unreachable: same 500 text", async () => {
    const env = { PATH: process.env.PATH ?? "", HOME: work };
    const theirs = await startServing(KUBECTL, ["proxy", "-p", "0", `--kubeconfig=${kubeconfigDown}`], env);
    const ours = await startServing(
      process.execPath,
      [CLI, "-p", "0", `--kubeconfig=${kubeconfigDown}`],
      env,
    );
    try {
      const req = "GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
      const resK = await rawExchange(theirs.port, req);
      const resO = await rawExchange(ours.port, req);
      expect(resK.status).toBe(500);
      expect(responseView(resO, false)).toEqual(responseView(resK, false));
      total += 1;
    } finally {
      await theirs.stop("SIGKILL");
      await ours.stop();
    }
  }, 60_000);

  it("covered at least 12 flag sets and 150 requests", () => {
    expect(FLAG_SETS.length).toBeGreaterThanOrEqual(12);
    expect(total).toBeGreaterThanOrEqual(150);
  });
});
