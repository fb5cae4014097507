#!/usr/bin/env node
// Benchmark: front-lb vs HAProxy (mode tcp) vs direct, same run, same backends.
// Loads (each bounded in time, loopback only):
//   - bulk throughput with iperf3 (one iperf3 server for every target): 1 stream client → server,
//     1 stream server → client (-R), 8 streams client → server; the first second is omitted (-O 1);
//   - requests/s over kept-alive TLS connections (wrk, TLS passes through to two nginx HTTPS endpoints);
//   - new TLS connections/s (wrk with "Connection: close": one TLS handshake per request);
//   - peak RSS of the balancer under these loads, and its CPU use during each load.
// Every target gets a warm-up pass first; then the targets are run --repeat times, in a rotated
// order each time, and each figure is the median of the repetitions.
// The machine may be shared: run it under `flock /tmp/bench.lock` so benchmarks do not overlap.
// Usage: node bench/front-lb/run.mjs [--seconds 5] [--connections 32] [--repeat 3]
// Results: bench/results/front-lb.md and .json. Needs nginx, haproxy, wrk, iperf3, openssl.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import {
  binCommand,
  cpuMicros,
  freePort,
  makeCerts,
  runWrk,
  startNginx,
  startProcess,
  stopProcess,
  waitForPort,
} from "../lib.mjs";

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    repeat: { type: "string", default: "3" },
    // A subset for quick checks, e.g. --only front-lb (ratios need haproxy and front-lb).
    only: { type: "string" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const repeat = Math.max(1, Number(values.repeat));
const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const work = mkdtempSync(join(tmpdir(), "kproxy-bench-flb-"));
const certs = makeCerts(work);
writeFileSync(join(work, "small"), "x".repeat(2048));
const load = () => loadavg().map((l) => Math.round(l * 100) / 100);
const loadBefore = load();

// ---- backends: nginx HTTPS on two ports (the "API servers"), iperf3 -s
const [n1, n2, iperfPort] = [await freePort(), await freePort(), await freePort()];
const nginxServers = `  server {
    listen 127.0.0.1:${n1} ssl; listen 127.0.0.1:${n2} ssl;
    ssl_certificate ${certs.cert}; ssl_certificate_key ${certs.key};
    location / { default_type text/plain; root ${work}; rewrite ^/readyz$ /small break; rewrite ^/small$ /small break; }
  }`;
const nginxDirectives = `  ssl_session_cache off;
  ssl_session_tickets off;`;
const nginx = await startNginx(work, {
  servers: nginxServers,
  workerConnections: 8192,
  httpDirectives: nginxDirectives,
});
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
writeFileSync(
  join(work, "front-lb.yaml"),
  `admin: { address: 127.0.0.1:0 }
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
    healthCheck: { type: none }
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
  server i 127.0.0.1:${iperfPort}
`,
);
// front-lb runs as its binary does (`front-lb …`: the shebang line of dist/cli.js, with its Node flags).
const [node, frontLbArgs] = binCommand(join(root, "apps/front-lb/dist/cli.js"));
const frontLb = startProcess(node, [...frontLbArgs, "--config", join(work, "front-lb.yaml")], {
  logFile: join(work, "front-lb.log"),
});
const haproxy = startProcess("haproxy", ["-f", join(work, "haproxy.cfg"), "-db"], {
  logFile: join(work, "haproxy.log"),
});

/**
 * Samples a process's memory every 100 ms: peak VmRSS, and peak RssAnon (its private memory; VmRSS
 * also counts the pages of the executable and libraries it has touched, which are shared and clean).
 */
function sampleMemory(pid) {
  const peak = { rss: 0, anon: 0 };
  const tick = () => {
    try {
      const st = readFileSync(`/proc/${pid}/status`, "utf8");
      peak.rss = Math.max(peak.rss, Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0));
      peak.anon = Math.max(peak.anon, Number(/RssAnon:\s+(\d+)/.exec(st)?.[1] ?? 0));
    } catch {}
  };
  tick();
  const timer = setInterval(tick, 100);
  const mib = (kib) => Math.round((kib / 1024) * 10) / 10;
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { rss: mib(peak.rss), anon: mib(peak.anon) };
    },
  };
}

/** CPU seconds (user + system) used so far by a process. */
const cpuSeconds = (pid) => (cpuMicros(pid) || 0) / 1e6;
/** Runs `fn` and returns [its result, the CPU % of pid meanwhile]. */
async function withCpu(pid, fn) {
  const c0 = pid ? cpuSeconds(pid) : 0;
  const t0 = performance.now();
  const r = await fn();
  const pct = pid
    ? Math.round(((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)) * 100)
    : undefined;
  return [r, pct];
}

async function iperf3(port, streams, { reverse = false, secs = seconds, omit = 1 } = {}) {
  const args = ["-c", "127.0.0.1", "-p", String(port), "-t", String(secs), "-O", String(omit)];
  args.push("-P", String(streams), "--connect-timeout", "5000", ...(reverse ? ["-R"] : []), "-J");
  // The iperf3 server takes one test at a time (and can be left waiting by a connection that is
  // not an iperf3 client: the bulk listeners have no health checks for that reason); try again.
  for (let attempt = 1; ; attempt++) {
    try {
      const { stdout } = await run("iperf3", args, {
        timeout: (secs + omit + 20) * 1000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const j = JSON.parse(stdout);
      const cpu = j.end.cpu_utilization_percent ?? {};
      return {
        gbps: Math.round((j.end.sum_received.bits_per_second / 1e9) * 100) / 100,
        // iperf3's own CPU use: is the load generator the bottleneck?
        clientCpu: Math.round(cpu.host_total ?? 0),
        serverCpu: Math.round(cpu.remote_total ?? 0),
      };
    } catch (err) {
      const server = iperf.exitCode !== null ? `exited ${iperf.exitCode}` : "running";
      console.error(
        `iperf3 -p ${port} failed (attempt ${attempt}; server ${server}: ${iperf.output().slice(-400)})`,
      );
      if (attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

const targets = [
  { name: "direct", tls: n1, bulk: iperfPort, pid: undefined },
  { name: "haproxy (mode tcp)", tls: lbPorts.haTls, bulk: lbPorts.haIperf, pid: haproxy.pid },
  { name: "front-lb", tls: lbPorts.frontTls, bulk: lbPorts.frontIperf, pid: frontLb.pid },
].filter((t) => values.only === undefined || values.only.split(",").some((o) => t.name.startsWith(o)));

async function measure(t) {
  const r = { target: t.name };
  let b;
  [b, r.bulk1Cpu] = await withCpu(t.pid, () => iperf3(t.bulk, 1));
  r.bulk1Gbps = b.gbps;
  r.iperfCpu1 = [b.clientCpu, b.serverCpu];
  [b, r.bulk1RCpu] = await withCpu(t.pid, () => iperf3(t.bulk, 1, { reverse: true }));
  r.bulk1RGbps = b.gbps;
  r.iperfCpu1R = [b.clientCpu, b.serverCpu];
  [b, r.bulk8Cpu] = await withCpu(t.pid, () => iperf3(t.bulk, 8));
  r.bulk8Gbps = b.gbps;
  r.iperfCpu8 = [b.clientCpu, b.serverCpu];
  let w;
  [w, r.keepAliveCpu] = await withCpu(t.pid, () =>
    runWrk(`https://127.0.0.1:${t.tls}/small`, { connections, seconds }),
  );
  r.keepAliveRps = w.rps;
  r.keepAliveP99Ms = w.p99;
  r.keepAliveErrors = w.errors;
  [w, r.newConnCpu] = await withCpu(t.pid, () =>
    runWrk(`https://127.0.0.1:${t.tls}/small`, { connections, seconds, headers: ["Connection: close"] }),
  );
  r.newConnPerSec = w.rps;
  r.newConnP99Ms = w.p99;
  r.newConnErrors = w.errors;
  return r;
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : Math.round(((s[m - 1] + s[m]) / 2) * 100) / 100;
};

const runs = new Map(targets.map((t) => [t.name, []]));
const rss = new Map();
const idleRss = new Map();
try {
  try {
    for (const p of Object.values(lbPorts)) await waitForPort(p, "127.0.0.1", 10_000);
  } catch (err) {
    console.error(`front-lb: ${frontLb.output()}\nhaproxy: ${haproxy.output()}`);
    throw err;
  }
  await new Promise((r) => setTimeout(r, 2500)); // first health checks
  for (const t of targets) if (t.pid) idleRss.set(t.name, sampleMemory(t.pid).stop());
  // Warm-up: one short pass of each load per target (not recorded).
  for (const t of targets) {
    await iperf3(t.bulk, 1, { secs: 1, omit: 0 });
    await runWrk(`https://127.0.0.1:${t.tls}/small`, { connections, seconds: 1 });
  }
  for (let rep = 0; rep < repeat; rep++) {
    const order = targets.map((_, i) => targets[(i + rep) % targets.length]);
    for (const t of order) {
      const sampler = t.pid ? sampleMemory(t.pid) : undefined;
      const r = await measure(t);
      if (sampler) {
        const m = sampler.stop();
        r.peakRssMiB = m.rss;
        r.peakAnonMiB = m.anon;
        const prev = rss.get(t.name) ?? { rss: 0, anon: 0 };
        rss.set(t.name, { rss: Math.max(prev.rss, m.rss), anon: Math.max(prev.anon, m.anon) });
      }
      runs.get(t.name).push(r);
      console.log(JSON.stringify({ rep, ...r }));
    }
  }
} finally {
  for (const p of [frontLb, haproxy, nginx, iperf]) await stopProcess(p);
  rmSync(work, { recursive: true, force: true });
}
const loadAfter = load();

const keys = [
  "bulk1Gbps",
  "bulk1RGbps",
  "bulk8Gbps",
  "keepAliveRps",
  "keepAliveP99Ms",
  "newConnPerSec",
  "newConnP99Ms",
  "bulk1Cpu",
  "bulk1RCpu",
  "bulk8Cpu",
  "keepAliveCpu",
  "newConnCpu",
];
const results = targets.map((t) => {
  const rs = runs.get(t.name);
  const m = { target: t.name };
  for (const k of keys) m[k] = median(rs.map((r) => r[k]));
  m.errors = rs.reduce((s, r) => s + r.keepAliveErrors + r.newConnErrors, 0);
  for (const k of ["iperfCpu1", "iperfCpu1R", "iperfCpu8"])
    m[k] = [median(rs.map((r) => r[k][0])), median(rs.map((r) => r[k][1]))];
  if (t.pid) {
    m.idleRssMiB = idleRss.get(t.name).rss;
    m.idleAnonMiB = idleRss.get(t.name).anon;
    m.peakRssMiB = rss.get(t.name).rss;
    m.peakAnonMiB = rss.get(t.name).anon;
  }
  return m;
});

const ha = results.find((r) => r.target.startsWith("haproxy"));
const fl = results.find((r) => r.target === "front-lb");
if (!ha || !fl) {
  console.log(JSON.stringify(results, null, 2));
  process.exit(0);
}
const ratio = (k) => Math.round((fl[k] / ha[k]) * 100) / 100;
const ratios = {
  bulk1: ratio("bulk1Gbps"),
  bulk1Reverse: ratio("bulk1RGbps"),
  bulk8: ratio("bulk8Gbps"),
  keepAliveRps: ratio("keepAliveRps"),
  newConnPerSec: ratio("newConnPerSec"),
};
const cpu = (v) => (v === undefined ? "—" : `${v}`);
const md = `# front-lb benchmark

Run ${new Date().toISOString()} on ${cpus().length} cores, node ${process.version}; ${seconds} s per load
(iperf3 omits one more second of ramp-up), wrk -t1 -c${connections}; a warm-up pass, then ${repeat} repetitions in
rotated order: every figure is the median. Load average (1, 5, 15 min): ${loadBefore.join(", ")} before, ${loadAfter.join(", ")} after.
Backends: two nginx HTTPS servers (TLS 1.3, no session resumption) for the TLS loads, one iperf3 server for bulk
(the same one for every target). front-lb (one thread, run as its binary: \`node ${nodeFlags.join(" ")}\`) and HAProxy
(\`nbthread 1\`, mode tcp) pass TLS through; both run HTTPS health checks every 2 s on the TLS endpoints, none on
the iperf3 server (a TCP check connecting to it in the middle of a test's setup can wedge it).

| target | bulk 1 stream Gbit/s | bulk 1 stream reverse | bulk 8 streams | keep-alive TLS req/s | p99 ms | new TLS conn/s | p99 ms | errors | RSS idle / peak MiB | private idle / peak MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${results
  .map(
    (r) =>
      `| ${r.target} | ${r.bulk1Gbps} | ${r.bulk1RGbps} | ${r.bulk8Gbps} | ${r.keepAliveRps} | ${r.keepAliveP99Ms} | ${r.newConnPerSec} | ${r.newConnP99Ms} | ${r.errors} | ${r.peakRssMiB !== undefined ? `${r.idleRssMiB} / ${r.peakRssMiB}` : "—"} | ${r.peakAnonMiB !== undefined ? `${r.idleAnonMiB} / ${r.peakAnonMiB}` : "—"} |`,
  )
  .join("\n")}

front-lb ÷ HAProxy: bulk 1 stream ${ratios.bulk1}, reverse ${ratios.bulk1Reverse}, 8 streams ${ratios.bulk8}, keep-alive req/s ${ratios.keepAliveRps}, new connections/s ${ratios.newConnPerSec} (target ≥ 0.9, floor 0.75); peak RSS ${fl.peakRssMiB} MiB (target ≤ 64), of which ${fl.peakAnonMiB} MiB private.
RSS counts the pages of the executable a process has touched: for Node that is ~35 MiB before any
code runs and ~50 MiB once http, tls and the app are loaded (shared and clean, the kernel can drop them);
"private" is RssAnon, the memory the process itself allocated (heap, buffers).

CPU % during each load (medians; 100 = one core). The balancer, then iperf3 client / server:

| target | bulk 1 | bulk 1 reverse | bulk 8 | keep-alive | new conn | iperf3 bulk 1 | iperf3 reverse | iperf3 bulk 8 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${results
  .map(
    (r) =>
      `| ${r.target} | ${cpu(r.bulk1Cpu)} | ${cpu(r.bulk1RCpu)} | ${cpu(r.bulk8Cpu)} | ${cpu(r.keepAliveCpu)} | ${cpu(r.newConnCpu)} | ${r.iperfCpu1.join(" / ")} | ${r.iperfCpu1R.join(" / ")} | ${r.iperfCpu8.join(" / ")} |`,
  )
  .join("\n")}
`;
writeFileSync(join(root, "bench/results/front-lb.md"), md);
writeFileSync(
  join(root, "bench/results/front-lb.json"),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      seconds,
      connections,
      repeat,
      loadAverage: { before: loadBefore, after: loadAfter },
      results,
      ratios,
      runs: Object.fromEntries(runs),
    },
    null,
    2,
  )}\n`,
);
console.log(md);
