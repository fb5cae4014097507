#!/usr/bin/env node
// Benchmark: requests through apiserver-proxy (HTTPS in, bearer token, TokenReview and
// SubjectAccessReview answers cached, HTTP to the endpoint) to a Service endpoint, against the same
// endpoint directly, in the same run. Three kinds of endpoint: a static 2 KiB file served by nginx
// (the fastest endpoint there is: the ratio is then nearly all proxy overhead), and two application
// pods that do work per request (0.1 ms of CPU; a 1 ms wait). For reference, in the same run, the
// same hop through nginx and HAProxy (TLS terminated, token checked, path rewritten, kept-alive
// HTTP to the endpoint), and the real `kubectl proxy` (the nearest Go reference for one HTTP hop:
// HTTP in, token added, HTTPS out) in front of the static file.
// Usage: node bench/apiserver-proxy/run.mjs [--seconds 5] [--connections 32] [--rounds 3]
// Results: bench/results/apiserver-proxy.md and .json. Needs nginx, haproxy, wrk, openssl, kubectl;
// run `npm run build` first (uses apps/apiserver-proxy/dist and packages/testkit/dist).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  binCommand,
  cpuMicros,
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
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    rounds: { type: "string", default: "3" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const here = dirname(new URL(import.meta.url).pathname);
const root = resolve(here, "../..");
const { TestApiServer } = await import(join(root, "packages/testkit/dist/index.js"));
const work = mkdtempSync(join(tmpdir(), "kproxy-bench-asp-"));
const TOKEN = "bench-token-0123456789";
const API_TOKEN = "bench-api-token";
const loadAtStart = loadavg();

const certs = makeCerts(work);
writeFileSync(join(work, "small"), "x".repeat(2048));
writeFileSync(join(work, "haproxy.pem"), readFileSync(certs.cert, "utf8") + readFileSync(certs.key, "utf8"));

/** The Service endpoints: `id` is the Service's name, `port` the endpoint's. */
const endpoints = [
  { id: "web", label: "static 2 KiB file (nginx)", port: await freePort() },
  {
    id: "app-cpu",
    label: "app pod: 0.1 ms of CPU per request (Node)",
    port: await freePort(),
    mode: "cpu:100",
  },
  { id: "app-wait", label: "app pod: waits 1 ms per request (Node)", port: await freePort(), mode: "wait:1" },
];
const pathOf = (id) => `/api/v1/namespaces/default/services/${id}:http/proxy/small`;

const procs = [];
const results = {};
const rssOf = {};
const median = (xs) => {
  const v = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length === 0 ? Number.NaN : v[Math.floor((v.length - 1) / 2)];
};
let api;
try {
  // nginx #1: the static endpoint (plain HTTP, as pods serve) and, on a second port, an HTTPS
  // "API server" for kubectl proxy (token checked) that serves the same file.
  const apiPort = await freePort();
  const endpointNginx = await startNginx(work, {
    servers: `  server {
    listen 127.0.0.1:${endpoints[0].port};
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
      rewrite ^${pathOf("web")}$ /small break;
    }
  }`,
    ports: [endpoints[0].port, apiPort],
  });
  procs.push(endpointNginx);
  for (const ep of endpoints.slice(1)) {
    procs.push(startProcess(nodeBin(), [join(here, "app-endpoint.mjs"), String(ep.port), ep.mode]));
    await waitForPort(ep.port);
  }

  // The cluster: a test API server with one selectorless Service per endpoint, whose EndpointSlice
  // points at it.
  api = await TestApiServer.start({ tokens: { [TOKEN]: { user: "bench", groups: [] } } });
  for (const ep of endpoints) {
    api.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: ep.id, namespace: "default" },
      spec: { ports: [{ name: "http", port: 80, protocol: "TCP" }] },
    });
    api.create({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${ep.id}-1`, namespace: "default", labels: { "kubernetes.io/service-name": ep.id } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }],
      ports: [{ name: "http", port: ep.port, protocol: "TCP" }],
    });
  }
  await api.writeKubeconfig(join(work, "kubeconfig"));

  // The reference proxies: the same hop (TLS terminated, bearer token checked, the API path mapped
  // to the endpoint's, kept-alive HTTP/1.1 to the endpoint), one listener per endpoint.
  const refPorts = {};
  for (const ep of endpoints) refPorts[ep.id] = { nginx: await freePort(), haproxy: await freePort() };
  const nginxWork = join(work, "nginx-proxy");
  mkdirSync(nginxWork);
  const nginxProxy = await startNginx(nginxWork, {
    servers: endpoints
      .map(
        (ep) => `  upstream ep_${ep.id.replace("-", "_")} { server 127.0.0.1:${ep.port}; keepalive 64; }
  server {
    listen 127.0.0.1:${refPorts[ep.id].nginx} ssl;
    ssl_certificate ${certs.cert};
    ssl_certificate_key ${certs.key};
    location /api/v1/namespaces/default/services/${ep.id}:http/proxy/ {
      if ($http_authorization != "Bearer ${TOKEN}") { return 401; }
      proxy_pass http://ep_${ep.id.replace("-", "_")}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
      )
      .join("\n"),
    ports: endpoints.map((ep) => refPorts[ep.id].nginx),
  });
  procs.push(nginxProxy);
  writeFileSync(
    join(work, "haproxy.cfg"),
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
${endpoints
  .map(
    (ep) => `frontend f_${ep.id}
  bind 127.0.0.1:${refPorts[ep.id].haproxy} ssl crt ${join(work, "haproxy.pem")} alpn http/1.1
  http-request deny deny_status 401 unless { req.hdr(authorization) -m str "Bearer ${TOKEN}" }
  http-request set-path "%[path,regsub(^/api/v1/namespaces/default/services/${ep.id}:http/proxy,)]"
  default_backend b_${ep.id}
backend b_${ep.id}
  server s 127.0.0.1:${ep.port}
`,
  )
  .join("")}`,
  );
  const haproxy = startProcess("haproxy", ["-f", join(work, "haproxy.cfg"), "-db"]);
  procs.push(haproxy);
  for (const ep of endpoints) await waitForPort(refPorts[ep.id].haproxy);

  const proxies = [];
  for (const workers of [1, 2]) {
    const port = await freePort();
    // As its binary runs (`apiserver-proxy …`: the shebang line of dist/cli.js, with its Node flags).
    const [node, cli] = binCommand(join(root, "apps/apiserver-proxy/dist/cli.js"));
    const proc = startProcess(node, [
      ...cli,
      `--kubeconfig=${join(work, "kubeconfig")}`,
      `--tls-cert-file=${certs.cert}`,
      `--tls-private-key-file=${certs.key}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${port}`,
      "--admin-port=-1",
      "--access-log=",
      `--workers=${workers}`,
      "--dev-allow-loopback-endpoints",
    ]);
    procs.push(proc);
    await waitForPort(port);
    proxies.push({
      name: workers === 1 ? "apiserver-proxy" : `apiserver-proxy --workers ${workers}`,
      port,
      proc,
    });
  }
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
  const kpPort = await freePort();
  const kp = startProcess("kubectl", [
    "proxy",
    `--port=${kpPort}`,
    `--kubeconfig=${join(work, "kubeconfig-nginx")}`,
  ]);
  procs.push(kp);
  await waitForPort(kpPort);

  // Who is measured against which endpoint: latency at 1 connection everywhere; the static file also
  // at `connections`, for req/s against kubectl proxy.
  const bearer = [`Authorization: Bearer ${TOKEN}`];
  const contenders = [];
  for (const ep of endpoints) {
    const conns = ep.id === "web" ? [1, connections] : [1];
    const add = (name, url, headers, proc) => contenders.push({ name, ep, url, headers, proc, conns });
    add("direct", `http://127.0.0.1:${ep.port}/small`, []);
    for (const p of proxies) add(p.name, `https://127.0.0.1:${p.port}${pathOf(ep.id)}`, bearer, p.proc);
    add(
      "nginx (TLS proxy)",
      `https://127.0.0.1:${refPorts[ep.id].nginx}${pathOf(ep.id)}`,
      bearer,
      nginxProxy,
    );
    add(
      "HAProxy (TLS proxy)",
      `https://127.0.0.1:${refPorts[ep.id].haproxy}${pathOf(ep.id)}`,
      bearer,
      haproxy,
    );
    if (ep.id === "web") {
      add(
        "direct over HTTPS (nginx TLS)",
        `https://127.0.0.1:${apiPort}${pathOf("web")}`,
        [`Authorization: Bearer ${API_TOKEN}`],
        undefined,
      );
      add("kubectl proxy (Go)", `http://127.0.0.1:${kpPort}${pathOf("web")}`, [], kp);
    }
  }

  await new Promise((r) => setTimeout(r, 2000)); // every worker lists the cluster
  for (const c of contenders) {
    const r = await runWrk(c.url, { connections, seconds: 2, headers: c.headers }); // warm-up: connections, caches, JIT
    if (r.errors > 0) throw new Error(`${c.name} → ${c.ep.id}: ${r.errors} errors in the warm-up`);
  }
  const reviewsBefore = api.reviewCounts;
  const rss = Object.fromEntries(proxies.map((p) => [p.name, sampleRss(p.proc.pid)]));
  const samples = {};
  // Every contender runs at the same time; the measurements are interleaved round by round, so that
  // load from elsewhere on the machine spreads over all of them, and the median of the rounds is kept.
  for (let round = 1; round <= rounds; round++) {
    for (const c of contenders) {
      for (const conns of c.conns) {
        const before = c.proc ? cpuMicros(c.proc.pid) : Number.NaN;
        const r = await runWrk(c.url, { connections: conns, seconds, headers: c.headers });
        r.cpuUsPerReq = c.proc
          ? Math.round((cpuMicros(c.proc.pid) - before) / (r.rps * seconds))
          : Number.NaN;
        const key = `${c.ep.id}|${c.name}|${conns}`;
        samples[key] ??= [];
        samples[key].push(r);
        console.log(
          `round ${round} ${c.ep.id.padEnd(8)} ${c.name.padEnd(30)} c=${String(conns).padEnd(3)} ${String(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  CPU ${r.cpuUsPerReq} µs/req  errors ${r.errors}`,
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
  for (const [key, rs] of Object.entries(samples)) {
    const [ep, name, conns] = key.split("|");
    results[ep] ??= {};
    results[ep][name] ??= {};
    results[ep][name][`c${conns}`] = {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)),
      errors: rs.reduce((sum, r) => sum + r.errors, 0),
      rounds: rs,
    };
  }
} finally {
  for (const p of procs.reverse()) await stopProcess(p);
  await api?.close();
  rmSync(work, { recursive: true, force: true });
}

const C = `c${connections}`;
const fmt = (x, digits = 2) => (x === undefined || Number.isNaN(x) ? "—" : x.toFixed(digits));
const ratio = (x, y) => (x && y ? x / y : Number.NaN);
const reviews = results.reviewsDuringRun;
const proxyNames = [
  "apiserver-proxy",
  "apiserver-proxy --workers 2",
  "nginx (TLS proxy)",
  "HAProxy (TLS proxy)",
];
const lines = [
  "# apiserver-proxy benchmark",
  "",
  `Run ${new Date().toISOString()} on ${cpus().length} cores shared by wrk, the proxies and the endpoints (load average at the start ${loadAtStart
    .map((x) => x.toFixed(2))
    .join(" ")}, at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      " ",
    )}), node ${process.version}; wrk -t1 -d${seconds}s per measurement, every contender running, measurements interleaved over ${rounds} rounds, median shown; 2 KiB answers.`,
  "",
  "Endpoints (each is a Service with one ready endpoint, reached by its pod IP on loopback):",
  "",
  ...endpoints.map((ep) => `- **${ep.id}**: ${ep.label}.`),
  "",
  "Paths:",
  "",
  "- **direct**: wrk → the endpoint, plain HTTP (as pods serve).",
  "- **apiserver-proxy**: wrk → HTTPS + bearer token → apiserver-proxy → resolution on the watched EndpointSlice → kept-alive HTTP → the endpoint. " +
    `Authentication and authorization caches warm: ${reviews?.tokenReviews ?? "?"} TokenReviews and ${reviews?.subjectAccessReviews ?? "?"} SubjectAccessReviews were made during the measured runs (one per process each time a cache TTL — 2 min for tokens, 5 min for decisions — ran out).`,
  "- **apiserver-proxy --workers 2**: the same with two processes on the port (SO_REUSEPORT).",
  "- **nginx (TLS proxy)** and **HAProxy (TLS proxy)**, for reference: the same hop in C — TLS terminated, the token compared with a fixed string, the path mapped, kept-alive HTTP/1.1 to the endpoint; one worker / one thread.",
  "- **direct over HTTPS (nginx TLS)**: wrk → nginx over TLS, no proxy: what TLS alone costs.",
  "- **kubectl proxy (Go)**: wrk → HTTP → the real `kubectl proxy` → HTTPS with the token → nginx serving the same file (one HTTP hop in Go; it uses every core).",
  "",
  "## Latency at one connection: p50 ÷ direct p50 (target ≤ 1.3, floor ≤ 2)",
  "",
  `| endpoint | direct p50 ms | ${proxyNames.join(" | ")} |`,
  `|---|---:|${proxyNames.map(() => "---:").join("|")}|`,
];
for (const ep of endpoints) {
  const r = results[ep.id] ?? {};
  const d = r.direct?.c1?.p50;
  lines.push(
    `| ${ep.id} | ${fmt(d, 3)} | ${proxyNames.map((n) => fmt(ratio(r[n]?.c1?.p50, d))).join(" | ")} |`,
  );
}
lines.push(
  "",
  "Added latency at one connection (p50 − direct p50, ms):",
  "",
  `| endpoint | ${proxyNames.join(" | ")} |`,
  `|---|${proxyNames.map(() => "---:").join("|")}|`,
);
for (const ep of endpoints) {
  const r = results[ep.id] ?? {};
  const d = r.direct?.c1?.p50;
  lines.push(
    `| ${ep.id} | ${proxyNames.map((n) => (r[n]?.c1?.p50 !== undefined ? fmt(r[n].c1.p50 - d, 3) : "—")).join(" | ")} |`,
  );
}
const web = results.web ?? {};
const kpRps = web["kubectl proxy (Go)"]?.[C]?.rps;
lines.push(
  "",
  `## Throughput at ${connections} connections, static file`,
  "",
  "| path | req/s | ÷ kubectl proxy (target ≥ 1.5) | p50 ms | p99 ms | CPU µs/req |",
  "|---|---:|---:|---:|---:|---:|",
);
for (const [name, byC] of Object.entries(web)) {
  const x = byC[C];
  if (x === undefined) continue;
  lines.push(
    `| ${name} | ${x.rps} | ${fmt(ratio(x.rps, kpRps))} | ${x.p50} | ${x.p99} | ${Number.isNaN(x.cpuUsPerReq) ? "—" : x.cpuUsPerReq} |`,
  );
}
lines.push(
  "",
  "## Every measurement (medians)",
  "",
  "| endpoint | path | connections | req/s | p50 ms | p99 ms | CPU µs/req | errors |",
  "|---|---|---:|---:|---:|---:|---:|---:|",
);
for (const ep of endpoints)
  for (const [name, byC] of Object.entries(results[ep.id] ?? {}))
    for (const [c, x] of Object.entries(byC))
      lines.push(
        `| ${ep.id} | ${name} | ${c.slice(1)} | ${x.rps} | ${x.p50} | ${x.p99} | ${Number.isNaN(x.cpuUsPerReq) ? "—" : x.cpuUsPerReq} | ${x.errors} |`,
      );
lines.push(
  "",
  "| process | peak RSS MiB |",
  "|---|---:|",
  ...Object.entries(rssOf).map(([n, v]) => `| ${n} | ${v} |`),
);
const outDir = join(root, "bench/results");
writeFileSync(join(outDir, "apiserver-proxy.md"), `${lines.join("\n")}\n`);
writeFileSync(
  join(outDir, "apiserver-proxy.json"),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      seconds,
      connections,
      rounds,
      loadAverage: { start: loadAtStart, end: loadavg() },
      endpoints: endpoints.map(({ id, label }) => ({ id, label })),
      results,
      rssMiB: rssOf,
    },
    null,
    2,
  )}\n`,
);
console.log(`\n${lines.join("\n")}`);
