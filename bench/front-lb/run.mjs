#!/usr/bin/env node
// Benchmark: front-lb vs HAProxy (mode tcp) vs direct, same run, same backends.
// Loads (each bounded in time, loopback only):
//   - bulk throughput with iperf3, 1 stream and 8 streams (through a listener whose one endpoint is iperf3 -s);
//   - requests/s over kept-alive TLS connections (wrk, TLS passes through to two nginx HTTPS endpoints);
//   - new TLS connections/s (wrk with "Connection: close": one TLS handshake per request);
//   - peak RSS of the balancer under these loads.
// Usage: node bench/front-lb/run.mjs [--seconds 5] [--connections 32]
// Results: bench/results/front-lb.md and .json. Needs nginx, haproxy, wrk, iperf3, openssl.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import {
  freePort,
  makeCerts,
  nodeBin,
  runWrk,
  sampleRss,
  startProcess,
  stopProcess,
  waitForPort,
} from "../lib.mjs";

const run = promisify(execFile);
const { values } = parseArgs({
  options: { seconds: { type: "string", default: "5" }, connections: { type: "string", default: "32" } },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const work = mkdtempSync(join(tmpdir(), "kproxy-bench-flb-"));
const certs = makeCerts(work);
writeFileSync(join(work, "small"), "x".repeat(2048));

// ---- backends: nginx HTTPS on two ports (the "API servers"), iperf3 -s
const [n1, n2, iperfPort] = [await freePort(), await freePort(), await freePort()];
writeFileSync(
  join(work, "nginx.conf"),
  `user root;
worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${work}/nginx-body;
  ssl_session_cache off;
  ssl_session_tickets off;
  server {
    listen 127.0.0.1:${n1} ssl; listen 127.0.0.1:${n2} ssl;
    ssl_certificate ${certs.cert}; ssl_certificate_key ${certs.key};
    location / { default_type text/plain; root ${work}; rewrite ^/readyz$ /small break; rewrite ^/small$ /small break; }
  }
}
`,
);
const nginx = startProcess("nginx", ["-c", join(work, "nginx.conf"), "-g", "daemon off;"]);
const iperf = startProcess("iperf3", ["-s", "-B", "127.0.0.1", "-p", String(iperfPort)]);
await waitForPort(n1);
await waitForPort(n2);
await waitForPort(iperfPort);

// ---- the balancers
const lbPorts = {
  frontTls: await freePort(),
  frontIperf: await freePort(),
  haTls: await freePort(),
  haIperf: await freePort(),
};
const adminPort = await freePort();
writeFileSync(
  join(work, "front-lb.yaml"),
  `admin: { address: 127.0.0.1:${adminPort} }
logLevel: warn
listeners:
  - name: api
    address: 127.0.0.1:${lbPorts.frontTls}
    balance: round-robin
    endpoints: [127.0.0.1:${n1}, 127.0.0.1:${n2}]
    healthCheck: { type: https, path: /readyz, interval: 2s }
  - name: bulk
    address: 127.0.0.1:${lbPorts.frontIperf}
    endpoints: [127.0.0.1:${iperfPort}]
    healthCheck: { type: tcp, interval: 2s }
`,
);
writeFileSync(
  join(work, "haproxy.cfg"),
  `global
  maxconn 8000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
  option redispatch
  retries 1
frontend api
  bind 127.0.0.1:${lbPorts.haTls}
  default_backend api
backend api
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 2s fall 3 rise 2 check check-ssl verify none
  server a 127.0.0.1:${n1}
  server b 127.0.0.1:${n2}
frontend bulk
  bind 127.0.0.1:${lbPorts.haIperf}
  default_backend bulk
backend bulk
  server i 127.0.0.1:${iperfPort} check inter 2s
`,
);
const frontLb = startProcess(
  nodeBin(),
  [join(root, "apps/front-lb/dist/cli.js"), "--config", join(work, "front-lb.yaml")],
  {
    logFile: join(work, "front-lb.log"),
  },
);
const haproxy = startProcess("haproxy", ["-f", join(work, "haproxy.cfg"), "-db"], {
  logFile: join(work, "haproxy.log"),
});

async function iperf3(port, streams) {
  const { stdout } = await run(
    "iperf3",
    ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-P", String(streams), "-J"],
    {
      timeout: (seconds + 30) * 1000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const j = JSON.parse(stdout);
  return Math.round((j.end.sum_received.bits_per_second / 1e9) * 100) / 100;
}

const targets = [
  { name: "direct", tls: n1, bulk: iperfPort, pid: undefined },
  { name: "haproxy (mode tcp)", tls: lbPorts.haTls, bulk: lbPorts.haIperf, pid: haproxy.pid },
  { name: "front-lb", tls: lbPorts.frontTls, bulk: lbPorts.frontIperf, pid: frontLb.pid },
];
const results = [];
try {
  try {
    for (const p of Object.values(lbPorts)) await waitForPort(p, "127.0.0.1", 10_000);
  } catch (err) {
    console.error(`front-lb: ${frontLb.output()}\nhaproxy: ${haproxy.output()}`);
    throw err;
  }
  await new Promise((r) => setTimeout(r, 2500)); // first health checks
  for (const t of targets) {
    const rss = t.pid ? sampleRss(t.pid) : undefined;
    const r = { target: t.name };
    r.bulk1Gbps = await iperf3(t.bulk, 1);
    r.bulk8Gbps = await iperf3(t.bulk, 8);
    const ka = await runWrk(`https://127.0.0.1:${t.tls}/small`, { connections, seconds });
    r.keepAliveRps = ka.rps;
    r.keepAliveP99Ms = ka.p99;
    r.keepAliveErrors = ka.errors;
    const nc = await runWrk(`https://127.0.0.1:${t.tls}/small`, {
      connections,
      seconds,
      headers: ["Connection: close"],
    });
    r.newConnPerSec = nc.rps;
    r.newConnP99Ms = nc.p99;
    r.newConnErrors = nc.errors;
    if (rss) r.peakRssMiB = rss.stop();
    results.push(r);
    console.log(JSON.stringify(r));
  }
} finally {
  for (const p of [frontLb, haproxy, nginx, iperf]) await stopProcess(p);
  rmSync(work, { recursive: true, force: true });
}

const ha = results.find((r) => r.target.startsWith("haproxy"));
const fl = results.find((r) => r.target === "front-lb");
const ratio = (k) => Math.round((fl[k] / ha[k]) * 100) / 100;
const ratios = {
  bulk1: ratio("bulk1Gbps"),
  bulk8: ratio("bulk8Gbps"),
  keepAliveRps: ratio("keepAliveRps"),
  newConnPerSec: ratio("newConnPerSec"),
};
const md = `# front-lb benchmark

Run ${new Date().toISOString()} on ${(await import("node:os")).cpus().length} cores, node ${process.version}; ${seconds} s per load, wrk -t1 -c${connections}.
Backends: two nginx HTTPS servers (TLS 1.3, no session resumption) for the TLS loads, one iperf3 server for bulk.
front-lb and HAProxy (1 thread, mode tcp) pass TLS through; both run HTTPS /readyz checks every 2 s.

| target | bulk 1 stream Gbit/s | bulk 8 streams Gbit/s | keep-alive TLS req/s | p99 ms | new TLS conn/s | p99 ms | errors | peak RSS MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${results
  .map(
    (r) =>
      `| ${r.target} | ${r.bulk1Gbps} | ${r.bulk8Gbps} | ${r.keepAliveRps} | ${r.keepAliveP99Ms} | ${r.newConnPerSec} | ${r.newConnP99Ms} | ${r.keepAliveErrors + r.newConnErrors} | ${r.peakRssMiB ?? "—"} |`,
  )
  .join("\n")}

front-lb ÷ HAProxy: bulk 1 stream ${ratios.bulk1}, bulk 8 streams ${ratios.bulk8}, keep-alive req/s ${ratios.keepAliveRps}, new connections/s ${ratios.newConnPerSec} (target ≥ 0.9, floor 0.75); peak RSS ${fl.peakRssMiB} MiB (target ≤ 64).
`;
writeFileSync(join(root, "bench/results/front-lb.md"), md);
writeFileSync(
  join(root, "bench/results/front-lb.json"),
  `${JSON.stringify({ date: new Date().toISOString(), seconds, connections, results, ratios }, null, 2)}\n`,
);
console.log(md);
