import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { KproxyError } from "@kproxy/core";

const require = createRequire(import.meta.url);

/** The path of an installed kproxy app's binary (its package.json `bin`). */
export function appBinary(pkg: string, bin: string): string {
  const manifestPath = require.resolve(`${pkg}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { bin?: Record<string, string> };
  const rel = manifest.bin?.[bin];
  if (!rel) throw new KproxyError("SANDBOX_NO_BINARY", `${pkg} has no binary named ${bin}`);
  return join(dirname(manifestPath), rel);
}

/** A kproxy app running as a child process, as a user would run it. */
export interface AppProcess {
  name: string;
  /** The first match of the readiness pattern in the app's stdout (e.g. its listen address). */
  ready: RegExpExecArray;
  child: ChildProcess;
  close(): Promise<void>;
}

/**
 * Starts `node <binary> ...args` and resolves once a stdout line matches `readyPattern`; rejects
 * with the app's stderr if it exits first or does not get ready in time.
 */
export function startApp(
  name: string,
  binary: string,
  args: string[],
  readyPattern: RegExp,
  timeoutMs = 30_000,
): Promise<AppProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binary, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new KproxyError("SANDBOX_APP_FAILED", `${name} ${why}${stderr ? `:\n${stderr.trim()}` : ""}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const onData = (d: Buffer) => {
      stdout += d.toString();
      const m = readyPattern.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.stdout.resume();
      child.off("exit", onExit);
      resolve({
        name,
        ready: m,
        child,
        close: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
            child.once("exit", () => {
              clearTimeout(kill);
              done();
            });
            child.kill("SIGTERM");
          }),
      });
    };
    const onExit = (code: number | null) => fail(`exited with code ${code} before it was ready`);
    child.stdout.on("data", onData);
    child.once("exit", onExit);
    child.once("error", (err) => fail(`could not be started: ${err.message}`));
  });
}
