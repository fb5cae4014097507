#!/usr/bin/env node
// Benchmark: kubectl-proxy vs the real `kubectl proxy` vs HAProxy (HTTP mode, adding the token and
// re-encrypting), all in front of the same nginx HTTPS backend that plays the API server (HTTP/2 by
// ALPN, token checked). Loads: keep-alive and new-connection, 2 KiB and 256 KiB bodies, with wrk.
// Usage: node bench/kubectl-proxy/run.mjs [--seconds 10] [--connections 32]
//          [--only "kubectl proxy,kubectl-proxy"] [--proxy-args=--workers=1]
// Results: bench/results/kubectl-proxy.md and .json. Needs kubectl, nginx, haproxy, wrk, openssl.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
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
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "32" },
    only: { type: "string" },
    // extra flags for kubectl-proxy (space-separated), e.g. "--workers=1"
    "proxy-args": { type: "string", default: "" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const work = mkdtempSync(join(tmpdir(), "kproxy-bench-"));
const TOKEN = "bench-token-0123456789";

const certs = makeCerts(work);
writeFileSync(join(work, "small"), "x".repeat(2048));
writeFileSync(join(work, "large"), "y".repeat(256 * 1024));

const backendPort = await freePort();
const nginxServers = `  server {
    listen 127.0.0.1:${backendPort} ssl http2;
    ssl_certificate ${certs.cert};
    ssl_certificate_key ${certs.key};
    location / {
      if ($http_authorization != "Bearer ${TOKEN}") { return 401; }
      default_type application/json;
      root ${work};
      rewrite ^/api/v1/small$ /small break;
      rewrite ^/api/v1/large$ /large break;
    }
  }`;
writeFileSync(
  join(work, "kubeconfig"),
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "bench",
        cluster: { server: `https://127.0.0.1:${backendPort}`, "certificate-authority": certs.ca },
      },
    ],
    users: [{ name: "bench", user: { token: TOKEN } }],
    contexts: [{ name: "bench", context: { cluster: "bench", user: "bench" } }],
    "current-context": "bench",
  }),
);

const nginx = await startNginx(work, { servers: nginxServers, workerConnections: 4096 });
await waitForPort(backendPort);

const kubeconfig = join(work, "kubeconfig");
const contenders = {
  "kubectl proxy": (port) =>
    startProcess("kubectl", ["proxy", `--port=${port}`, `--kubeconfig=${kubeconfig}`]),
  "kubectl-proxy": (port) =>
    startProcess(nodeBin(), [
      join(root, "apps/kubectl-proxy/dist/cli.js"),
      `--port=${port}`,
      `--kubeconfig=${kubeconfig}`,
      ...values["proxy-args"].split(" ").filter(Boolean),
    ]),
  haproxy: (port) => {
    const cfg = join(work, "haproxy.cfg");
    writeFileSync(
      cfg,
      `global
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  http-request set-header Authorization "Bearer ${TOKEN}"
  http-request set-header Host 127.0.0.1:${backendPort}
  http-reuse always
  server api 127.0.0.1:${backendPort} ssl verify required ca-file ${certs.ca} sni str(127.0.0.1) alpn h2,http/1.1 pool-max-conn 64
`,
    );
    return startProcess("haproxy", ["-f", cfg, "-db"]);
  },
};

const loads = [
  { name: "keep-alive 2 KiB", path: "/api/v1/small", headers: [] },
  { name: "keep-alive 256 KiB", path: "/api/v1/large", headers: [] },
  { name: "new-connection 2 KiB", path: "/api/v1/small", headers: ["Connection: close"] },
  { name: "new-connection 256 KiB", path: "/api/v1/large", headers: ["Connection: close"] },
];

const results = {};
try {
  for (const [name, start] of Object.entries(contenders)) {
    if (values.only && !values.only.split(",").includes(name)) continue;
    const port = await freePort();
    const proc = start(port);
    try {
      await waitForPort(port);
      // warm-up, and a check that the proxy really reaches the backend with the token
      const check = await fetch(`http://127.0.0.1:${port}/api/v1/small`);
      if (check.status !== 200) throw new Error(`${name}: warm-up request got ${check.status}`);
      await runWrk(`http://127.0.0.1:${port}/api/v1/small`, { connections, seconds: 2 });
      const rss = sampleRss(proc.pid);
      results[name] = {};
      for (const load of loads) {
        const loadRss = sampleRss(proc.pid);
        const cpuBefore = cpuMicros(proc.pid);
        const r = await runWrk(`http://127.0.0.1:${port}${load.path}`, {
          connections,
          seconds,
          headers: load.headers,
        });
        r.rssMiB = loadRss.stop();
        // CPU per request is steadier than req/s on a shared machine
        r.cpuUsPerReq = Math.round((cpuMicros(proc.pid) - cpuBefore) / (r.rps * seconds));
        results[name][load.name] = r;
        console.log(
          `${name.padEnd(14)} ${load.name.padEnd(24)} ${String(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  errors ${r.errors}  CPU ${r.cpuUsPerReq} µs/req  peak RSS ${r.rssMiB} MiB`,
        );
      }
      results[name].rssMiB = rss.stop();
      console.log(`${name.padEnd(14)} peak RSS ${results[name].rssMiB} MiB`);
    } catch (err) {
      console.error(`${name}: ${err.message}\n${proc.output().slice(-2000)}`);
      results[name] = { error: err.message };
    } finally {
      await stopProcess(proc);
    }
  }
} finally {
  await stopProcess(nginx);
  rmSync(work, { recursive: true, force: true });
}

// Report with ratios to kubectl proxy.
const base = results["kubectl proxy"];
const lines = [
  "# kubectl-proxy benchmark",
  "",
  `Run ${new Date().toISOString()} on ${(await import("node:os")).cpus().length} cores, node ${process.version}; wrk -t1 -c${connections} -d${seconds}s per load.`,
  "Backend: nginx HTTPS (HTTP/2 by ALPN, bearer token checked) playing the API server; every proxy adds the token and re-encrypts.",
  "",
  "| proxy | load | req/s | p50 ms | p99 ms | errors | CPU µs/req | req/s ÷ kubectl | p99 ÷ kubectl |",
  "|---|---|---:|---:|---:|---:|---:|---:|---:|",
];
for (const [name, r] of Object.entries(results)) {
  if (r.error) {
    lines.push(`| ${name} | — | failed: ${r.error} | | | | | | |`);
    continue;
  }
  for (const load of loads) {
    const x = r[load.name];
    const b = base?.[load.name];
    const ratio = b ? (x.rps / b.rps).toFixed(2) : "—";
    const p99 = b ? (x.p99 / b.p99).toFixed(2) : "—";
    lines.push(
      `| ${name} | ${load.name} | ${x.rps} | ${x.p50} | ${x.p99} | ${x.errors} | ${x.cpuUsPerReq ?? "—"} | ${ratio} | ${p99} |`,
    );
  }
}
lines.push("", "| proxy | peak RSS MiB | ÷ kubectl |", "|---|---:|---:|");
for (const [name, r] of Object.entries(results)) {
  if (!r.error)
    lines.push(`| ${name} | ${r.rssMiB} | ${base?.rssMiB ? (r.rssMiB / base.rssMiB).toFixed(2) : "—"} |`);
}
const outDir = join(root, "bench/results");
writeFileSync(join(outDir, "kubectl-proxy.md"), `${lines.join("\n")}\n`);
writeFileSync(
  join(outDir, "kubectl-proxy.json"),
  `${JSON.stringify({ date: new Date().toISOString(), seconds, connections, results }, null, 2)}\n`,
);
console.log(`\n${lines.join("\n")}`);
