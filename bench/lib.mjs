// Shared helpers for kproxy benchmarks: certificates, processes, wrk, RSS sampling.
// Benchmarks talk only to loopback; every load run is bounded in time.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

/** Writes a CA and a server certificate for 127.0.0.1/localhost into dir with openssl. */
export function makeCerts(dir) {
  const sh = (args) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  sh(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
  sh(["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench-ca", "-days", "2", "-out", "ca.crt"]);
  sh(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
  sh(["req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr"]);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  sh([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
    "-out",
    "server.crt",
  ]);
  return { ca: join(dir, "ca.crt"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

/** Starts a process; its output goes to a log file. Returns the child. */
export function startProcess(cmd, args, { logFile, env, cwd } = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env }, cwd });
  const chunks = [];
  child.stdout.on("data", (d) => chunks.push(d));
  child.stderr.on("data", (d) => chunks.push(d));
  child.on("exit", () => {
    if (logFile) writeFileSync(logFile, Buffer.concat(chunks));
  });
  child.output = () => Buffer.concat(chunks).toString();
  return child;
}

export async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5000);
  await done;
  clearTimeout(t);
}

export async function waitForPort(port, host = "127.0.0.1", timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect(port, host);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A free TCP port on loopback. */
export async function freePort() {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function treePids(pid) {
  const out = [pid];
  const taskDir = `/proc/${pid}/task`;
  if (!existsSync(taskDir)) return out;
  for (const tid of readdirSync(taskDir)) {
    try {
      const kids = readFileSync(`${taskDir}/${tid}/children`, "utf8").trim();
      for (const k of kids ? kids.split(/\s+/) : []) out.push(...treePids(Number(k)));
    } catch {}
  }
  return out;
}

function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time (user + system) used so far by a process, its threads and its child processes that are
 * still running (workers), in microseconds; NaN when the process is gone.
 */
export function cpuMicros(pid) {
  let ticks = 0;
  for (const p of treePids(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      if (p === pid) return Number.NaN;
    }
  }
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

/** Samples the RSS of a process and its descendants every 100 ms; stop() returns the peak in MiB. */
export function sampleRss(pid) {
  let peak = 0;
  const tick = () => {
    const total = treePids(pid).reduce((s, p) => s + rssKiB(p), 0);
    if (total > peak) peak = total;
  };
  tick();
  const timer = setInterval(tick, 100);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return Math.round((peak / 1024) * 10) / 10;
    },
  };
}

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

/** Runs wrk (bounded by -d) and returns {rps, p50, p99, errors}. */
export function runWrk(url, { threads = 1, connections = 32, seconds = 10, headers = [] } = {}) {
  const args = [
    "-t",
    String(threads),
    "-c",
    String(connections),
    "-d",
    `${seconds}s`,
    "--latency",
    "--timeout",
    "10s",
  ];
  for (const h of headers) args.push("-H", h);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), (seconds + 30) * 1000);
    child.on("exit", (code) => {
      clearTimeout(killer);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
      const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((s, v) => s + Number(v), 0) : 0);
      if (code !== 0 || Number.isNaN(rps)) reject(new Error(`wrk failed (${code}): ${out}`));
      else resolve({ rps: Math.round(rps), p50, p99, errors });
    });
  });
}

/**
 * Node and its arguments to run an app's built binary as its shebang line does, e.g.
 * `#!/usr/bin/env -S node --max-semi-space-size=2` → [node, ["--max-semi-space-size=2", cliPath]].
 */
export function binCommand(cliPath) {
  const first = readFileSync(cliPath, "utf8").split("\n")[0] ?? "";
  const shebang = /^#!\S*env -S (\S+)(.*)$/.exec(first);
  const nodeFlags = shebang ? shebang[2].trim().split(/\s+/).filter(Boolean) : [];
  return [nodeBin(), [...nodeFlags, cliPath]];
}

export function nodeBin() {
  return process.execPath;
}

/**
 * Starts nginx (one worker, as root so it can read the run's temp files, no access log) with the
 * given `server { … }` blocks and extra `http` directives, and waits for `ports`.
 */
export async function startNginx(
  work,
  { servers, httpDirectives = "", workerConnections = 4096, ports = [] },
) {
  const conf = join(work, "nginx.conf");
  writeFileSync(
    conf,
    `user root;
worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log warn;
events { worker_connections ${workerConnections}; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${work}/nginx-body;
${httpDirectives}
${servers}
}
`,
  );
  const nginx = startProcess("nginx", ["-c", conf, "-g", "daemon off;"], {
    logFile: join(work, "nginx.out"),
  });
  for (const port of ports) await waitForPort(port);
  return nginx;
}
