#!/usr/bin/env node
// Benchmark: requests through apiserver-proxy (HTTPS in, bearer token, TokenReview and
// SubjectAccessReview answers cached, HTTP to the endpoint) to a Service endpoint, against the same
// endpoint directly, in the same run; and the real `kubectl proxy` (the nearest Go reference for
// one HTTP hop: HTTP in, token added, HTTPS out) in front of the same nginx.
// Usage: node bench/apiserver-proxy/run.mjs [--seconds 10] [--connections 32] [--rounds 3]
// Results: bench/results/apiserver-proxy.md and .json. Needs nginx, wrk, openssl, kubectl; run
// `npm run build` first (uses apps/apiserver-proxy/dist and packages/testkit/dist).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  freePort,
  makeCerts,
  nodeBin,
  runWrk,
  sampleRss,
  startNginx,
  startProcess,
  stopProcess,
  waitForPort,
} from "../lib.mjs";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "32" },
    rounds: { type: "string", default: "3" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const { TestApiServer } = await import(join(root, "packages/testkit/dist/index.js"));
const work = mkdtempSync(join(tmpdir(), "kproxy-bench-asp-"));
const TOKEN = "bench-token-0123456789";
const API_TOKEN = "bench-api-token";

const certs = makeCerts(work);
writeFileSync(join(work, "small"), "x".repeat(2048));

// nginx: the Service endpoint (plain HTTP, as pods serve) and, on a second port, an HTTPS
// "API server" for kubectl proxy (token checked), serving the same file.
const endpointPort = await freePort();
const apiPort = await freePort();
const nginxServers = `  server {
    listen 127.0.0.1:${endpointPort};
    location / { default_type text/plain; root ${work}; }
  }
  server {
    listen 127.0.0.1:${apiPort} ssl;
    ssl_certificate ${certs.cert};
    ssl_certificate_key ${certs.key};
    location / {
      if ($http_authorization != "Bearer ${API_TOKEN}") { return 401; }
      default_type text/plain;
      root ${work};
      rewrite ^/api/v1/namespaces/default/services/web:http/proxy/small$ /small break;
    }
  }`;
writeFileSync(
  join(work, "kubeconfig-nginx"),
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: "b", cluster: { server: `https://127.0.0.1:${apiPort}`, "certificate-authority": certs.ca } },
    ],
    users: [{ name: "b", user: { token: API_TOKEN } }],
    contexts: [{ name: "b", context: { cluster: "b", user: "b" } }],
    "current-context": "b",
  }),
);
const nginx = await startNginx(work, { servers: nginxServers, workerConnections: 4096 });
await waitForPort(endpointPort);
await waitForPort(apiPort);

// The cluster: a test API server with a selectorless Service whose EndpointSlice points at nginx.
const api = await TestApiServer.start({ tokens: { [TOKEN]: { user: "bench", groups: [] } } });
api.create({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "web", namespace: "default" },
  spec: { ports: [{ name: "http", port: 80, protocol: "TCP" }] },
});
api.create({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: "web-1", namespace: "default", labels: { "kubernetes.io/service-name": "web" } },
  addressType: "IPv4",
  endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }],
  ports: [{ name: "http", port: endpointPort, protocol: "TCP" }],
});
await api.writeKubeconfig(join(work, "kubeconfig"));

const path = "/api/v1/namespaces/default/services/web:http/proxy/small";
const results = {};
const rssOf = {};
const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor((v.length - 1) / 2)];
};

// Every contender runs at the same time; the measurements are interleaved round by round, so that
// load from elsewhere on the machine spreads over all of them, and the median of the rounds is kept.
const procs = [];
try {
  const contenders = [
    { name: "direct (endpoint)", url: `http://127.0.0.1:${endpointPort}/small`, headers: [] },
    {
      name: "direct over HTTPS (nginx TLS)",
      url: `https://127.0.0.1:${apiPort}${path}`,
      headers: [`Authorization: Bearer ${API_TOKEN}`],
    },
  ];
  for (const workers of [1, 2]) {
    const proxyPort = await freePort();
    const proxy = startProcess(nodeBin(), [
      join(root, "apps/apiserver-proxy/dist/cli.js"),
      `--kubeconfig=${join(work, "kubeconfig")}`,
      `--tls-cert-file=${certs.cert}`,
      `--tls-private-key-file=${certs.key}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${proxyPort}`,
      "--admin-port=-1",
      "--access-log=",
      `--workers=${workers}`,
      "--dev-allow-loopback-endpoints",
    ]);
    procs.push(proxy);
    await waitForPort(proxyPort);
    contenders.push({
      name: workers === 1 ? "apiserver-proxy" : `apiserver-proxy --workers ${workers}`,
      url: `https://127.0.0.1:${proxyPort}${path}`,
      headers: [`Authorization: Bearer ${TOKEN}`],
      proc: proxy,
    });
  }
  const kpPort = await freePort();
  const kp = startProcess("kubectl", [
    "proxy",
    `--port=${kpPort}`,
    `--kubeconfig=${join(work, "kubeconfig-nginx")}`,
  ]);
  procs.push(kp);
  await waitForPort(kpPort);
  contenders.push({
    name: "kubectl proxy (Go)",
    url: `http://127.0.0.1:${kpPort}${path}`,
    headers: [],
    proc: kp,
  });
  await new Promise((r) => setTimeout(r, 2000)); // every worker lists the cluster
  for (const c of contenders) await runWrk(c.url, { connections, seconds: 2, headers: c.headers }); // warm-up: connections, caches, JIT
  const reviewsBefore = api.reviewCounts;
  const samples = {};
  const rss = Object.fromEntries(
    contenders.filter((c) => c.proc).map((c) => [c.name, sampleRss(c.proc.pid)]),
  );
  for (let round = 1; round <= rounds; round++) {
    for (const c of contenders) {
      for (const conns of [1, connections]) {
        const r = await runWrk(c.url, { connections: conns, seconds, headers: c.headers });
        samples[c.name] ??= {};
        samples[c.name][`c${conns}`] ??= [];
        samples[c.name][`c${conns}`].push(r);
        console.log(
          `round ${round} ${c.name.padEnd(30)} c=${String(conns).padEnd(3)} ${String(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  errors ${r.errors}`,
        );
      }
    }
  }
  for (const [name, m] of Object.entries(rss)) rssOf[name] = m.stop();
  const reviewsAfter = api.reviewCounts;
  results.reviewsDuringRun = {
    tokenReviews: reviewsAfter.tokenReviews - reviewsBefore.tokenReviews,
    subjectAccessReviews: reviewsAfter.subjectAccessReviews - reviewsBefore.subjectAccessReviews,
  };
  for (const [name, byC] of Object.entries(samples)) {
    results[name] = {};
    for (const [c, rs] of Object.entries(byC))
      results[name][c] = {
        rps: median(rs.map((r) => r.rps)),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        errors: rs.reduce((sum, r) => sum + r.errors, 0),
        rounds: rs,
      };
  }
} finally {
  for (const p of procs) await stopProcess(p);
  await stopProcess(nginx);
  await api.close();
  rmSync(work, { recursive: true, force: true });
}

const d = results["direct (endpoint)"];
const k = results["kubectl proxy (Go)"];
const C = `c${connections}`;
const ratio = (x, y) => (x && y ? (x / y).toFixed(2) : "—");
const reviews = results.reviewsDuringRun;
const lines = [
  "# apiserver-proxy benchmark",
  "",
  `Run ${new Date().toISOString()} on ${cpus().length} cores (load average at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      " ",
    )}), node ${process.version}; wrk -t1 -d${seconds}s per measurement, all contenders running, measurements interleaved over ${rounds} rounds, median shown; 2 KiB body.`,
  "",
  "- **direct**: wrk → nginx (the Service endpoint, plain HTTP).",
  "- **direct over HTTPS**: wrk → nginx over TLS (no proxy; shows what TLS termination alone costs).",
  "- **apiserver-proxy**: wrk → HTTPS + bearer token → apiserver-proxy → resolution on the watched EndpointSlice → HTTP → nginx. " +
    `Authentication and authorization caches warm: ${reviews?.tokenReviews ?? "?"} TokenReviews and ${reviews?.subjectAccessReviews ?? "?"} SubjectAccessReviews were made during the measured runs (one per process each time a cache TTL — 2 min for tokens, 5 min for decisions — ran out).`,
  "- **apiserver-proxy --workers 2**: the same with two processes on the port (SO_REUSEPORT).",
  "- **kubectl proxy (Go)**: wrk → HTTP → the real `kubectl proxy` → HTTPS with the token → nginx (one HTTP hop in Go; it uses every core).",
  "",
  "| path | connections | req/s | p50 ms | p99 ms | errors |",
  "|---|---:|---:|---:|---:|---:|",
];
for (const [name, r] of Object.entries(results))
  for (const [c, x] of Object.entries(r))
    if (c.startsWith("c"))
      lines.push(`| ${name} | ${c.slice(1)} | ${x.rps} | ${x.p50} | ${x.p99} | ${x.errors} |`);
lines.push("", `| ratio | c=1 | c=${connections} |`, "|---|---:|---:|");
for (const name of ["apiserver-proxy", "apiserver-proxy --workers 2"]) {
  const a = results[name];
  if (!a) continue;
  lines.push(
    `| ${name}: p50 ÷ direct p50 (target ≤ 1.3, floor ≤ 2) | ${ratio(a.c1?.p50, d?.c1?.p50)} | ${ratio(a[C]?.p50, d?.[C]?.p50)} |`,
    `| ${name}: p50 − direct p50 (added latency, ms) | ${(a.c1?.p50 - d?.c1?.p50).toFixed(3)} | ${(a[C]?.p50 - d?.[C]?.p50).toFixed(3)} |`,
    `| ${name}: p99 ÷ direct p99 | ${ratio(a.c1?.p99, d?.c1?.p99)} | ${ratio(a[C]?.p99, d?.[C]?.p99)} |`,
    `| ${name}: req/s ÷ kubectl proxy req/s (target ≥ 1.5) | ${ratio(a.c1?.rps, k?.c1?.rps)} | ${ratio(a[C]?.rps, k?.[C]?.rps)} |`,
  );
}
lines.push(
  `| kubectl proxy (Go): p50 ÷ direct p50, for reference | ${ratio(k?.c1?.p50, d?.c1?.p50)} | ${ratio(k?.[C]?.p50, d?.[C]?.p50)} |`,
  "",
  "| process | peak RSS MiB |",
  "|---|---:|",
  ...Object.entries(rssOf).map(([n, v]) => `| ${n} | ${v} |`),
);
const outDir = join(root, "bench/results");
writeFileSync(join(outDir, "apiserver-proxy.md"), `${lines.join("\n")}\n`);
writeFileSync(
  join(outDir, "apiserver-proxy.json"),
  `${JSON.stringify({ date: new Date().toISOString(), seconds, connections, rounds, results, rssMiB: rssOf }, null, 2)}\n`,
);
console.log(`\n${lines.join("\n")}`);
