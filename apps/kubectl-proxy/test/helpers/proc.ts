import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist", "cli.js");

export interface RunningProxy {
  proc: ChildProcess;
  /** The address from "Starting to serve on <addr>". */
  address: string;
  port: number;
  stdout: () => string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `command args` and waits for its "Starting to serve on" line. */
export function startServing(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 20_000,
): Promise<RunningProxy> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
    const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) proc.kill(signal);
      const t = setTimeout(
        () => proc.pid !== undefined && proc.exitCode === null && proc.kill("SIGKILL"),
        10_000,
      );
      const code = await exited;
      clearTimeout(t);
      return code;
    };
    const timer = setTimeout(() => {
      void stop("SIGKILL");
      reject(new Error(`${command} did not start: ${out} ${err}`));
    }, timeoutMs);
    proc.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /Starting to serve on (\S+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        const address = m[1] as string;
        resolve({
          proc,
          address,
          port: Number(address.slice(address.lastIndexOf(":") + 1)),
          stdout: () => out,
          stderr: () => err,
          stop,
        });
      }
    });
    proc.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited ${code} before serving: ${out} ${err}`));
    });
  });
}

/** Runs a command to completion; resolves with its exit code and output. */
export function runToExit(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 20_000,
) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const proc = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
