import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import type { MessagePort } from "node:worker_threads";
import { Worker } from "node:worker_threads";
import { createLogger, errorMessage, isKproxyError, KproxyError, type Logger } from "@kproxy/core";
import { type ClusterConnection, connectionOptionsFromFlags, loadConnection } from "@kproxy/kubeconfig";
import { formatFlagHelp, onShutdownSignal, parseFlags } from "@kproxy/runtime";
import { ALL_FLAGS, type ProxyConfig, proxyConfigFromFlags } from "./config.js";
import { type AccessLogEntry, KubectlProxy } from "./server.js";

const USAGE = `Creates a proxy server or application-level gateway between localhost and the Kubernetes API server.

Usage:
  kubectl-proxy [--port=PORT] [--www=static-dir] [--www-prefix=prefix] [--api-prefix=prefix] [options]

`;

/**
 * Young generation of each serving thread, in MiB. A proxy's garbage dies young; V8's default
 * nursery (tens of MiB on a machine with much memory) only adds RSS, and it keeps the Buffers of
 * streamed bodies alive longer. Measured with 200 MiB streamed each way: 4 MiB keeps the peak RSS
 * growth of a thread near 45 MiB where 16–64 MiB let it reach 70–140 MiB, at no cost in req/s.
 */
const WORKER_YOUNG_GENERATION_MB = 4;

/** The worker thread entry, beside this module in dist/ (absent when running from src/). */
const WORKER_SCRIPT = fileURLToPath(new URL("./worker.js", import.meta.url));

export interface MainIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Resolves when the proxy should shut down (default: SIGTERM/SIGINT). */
  shutdown?: Promise<unknown>;
}

interface Serving {
  proxy: KubectlProxy;
  accessStream: WriteStream | undefined;
}

/** Builds the proxy for a thread: its own access-log stream, the shared settings. */
async function createProxy(
  config: ProxyConfig,
  connection: ClusterConnection,
  logger: Logger,
  stderr: (text: string) => void,
  listen: { port: number; reusePort: boolean },
): Promise<Serving> {
  let accessStream: WriteStream | undefined;
  let accessLog: ((entry: AccessLogEntry) => void) | undefined;
  if (config.accessLog === "-") accessLog = (entry) => stderr(`${JSON.stringify(entry)}\n`);
  else if (config.accessLog !== undefined) {
    const stream = createWriteStream(config.accessLog, { flags: "a", mode: 0o600 });
    accessStream = stream;
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", reject);
    });
    accessLog = (entry) => stream.write(`${JSON.stringify(entry)}\n`);
  }
  const proxy = new KubectlProxy({
    connection,
    port: listen.port,
    reusePort: listen.reusePort,
    address: config.address,
    ...(config.unixSocket !== undefined ? { unixSocket: config.unixSocket } : {}),
    apiPrefix: config.apiPrefix,
    ...(config.www !== undefined ? { www: config.www } : {}),
    wwwPrefix: config.wwwPrefix,
    filter: config.filter,
    keepaliveMs: config.keepaliveMs,
    appendServerPath: config.appendServerPath,
    disableCompression: connection.disableCompression,
    ...(config.tls !== undefined ? { tls: config.tls } : {}),
    logger,
    ...(accessLog !== undefined ? { accessLog } : {}),
  });
  return { proxy, accessStream };
}

async function stopServing(serving: Serving, connection: ClusterConnection, graceMs: number) {
  await serving.proxy.close(graceMs);
  await connection.close();
  const stream = serving.accessStream;
  if (stream !== undefined) await new Promise<void>((resolve) => stream.end(resolve));
}

/** How many serving threads: --workers, else min(2, CPUs); one for a Unix socket or without dist/worker.js. */
function workerCount(config: ProxyConfig): number {
  if (config.unixSocket !== undefined) return 1;
  const wanted = config.workers > 0 ? config.workers : Math.min(2, availableParallelism());
  if (wanted <= 1 || !existsSync(WORKER_SCRIPT)) return 1;
  return wanted;
}

/** The kubectl-proxy command. Resolves with the exit code once the proxy has shut down. */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? ((t: string) => process.stdout.write(t));
  const stderr = io.stderr ?? ((t: string) => process.stderr.write(t));
  const flags = parseFlags(ALL_FLAGS, argv);
  if (flags.help) {
    stdout(USAGE + formatFlagHelp(ALL_FLAGS));
    return 0;
  }
  const config = proxyConfigFromFlags(flags);
  const logger = createLogger({
    level: config.verbosity >= 3 ? "debug" : "info",
    write: (line) => stderr(`${line}\n`),
  });
  for (const warning of config.warnings) stderr(`${warning}\n`);
  const env = io.env ?? process.env;
  const connection = await loadConnection({ ...connectionOptionsFromFlags(flags), env, logger });
  if (!config.appendServerPath && connection.serverPath !== "" && connection.serverPath !== "/") {
    stderr(
      `Your kube context contains a server path ${connection.serverPath}, use --append-server-path to automatically append the path to each request\n`,
    );
  }
  if (config.www !== undefined) {
    const st = await stat(config.www).catch((err: Error) => err);
    if (st instanceof Error) stderr(`Failed to stat static file directory ${config.www}: ${st.message}\n`);
    else if (!st.isDirectory()) stderr(`Static file directory ${config.www} is not a directory\n`);
  }
  const workers = workerCount(config);
  let serving: Serving;
  try {
    serving = await createProxy(config, connection, logger, stderr, {
      port: config.port,
      reusePort: workers > 1,
    });
  } catch (err) {
    await connection.close();
    throw err;
  }
  let address: string;
  try {
    address = await serving.proxy.listen();
  } catch (err) {
    await stopServing(serving, connection, 0);
    throw err;
  }
  let pool: WorkerPool | undefined;
  if (workers > 1) {
    // The main thread bound the port (so --port=0 picks one port for all, and errors read as
    // kubectl's); the workers join it with SO_REUSEPORT, then the main thread stops listening
    // and only supervises: every serving thread has the same small young generation.
    pool = new WorkerPool(argv, env, serving.proxy.port, logger);
    try {
      await pool.start(workers);
    } catch (err) {
      await pool.close(0);
      await stopServing(serving, connection, 0);
      throw err;
    }
    await serving.proxy.close(config.shutdownTimeoutMs);
  }
  stdout(`Starting to serve on ${address}\n`);
  let removeSignals: (() => void) | undefined;
  const stopped = pool?.allExited ?? new Promise<never>(() => {});
  const exitCode = await Promise.race([
    (
      io.shutdown ??
      new Promise<void>((resolve) => {
        removeSignals = onShutdownSignal(() => resolve());
      })
    ).then(() => 0),
    stopped,
  ]);
  await Promise.all([
    pool?.close(config.shutdownTimeoutMs),
    stopServing(serving, connection, config.shutdownTimeoutMs),
  ]);
  removeSignals?.();
  return exitCode;
}

/** What the main thread tells a worker thread. */
export interface WorkerData {
  argv: string[];
  env: Record<string, string | undefined>;
  port: number;
}

type WorkerMessage =
  | { type: "ready" }
  | { type: "error"; code: string; message: string; details?: Record<string, unknown> };

/** Worker threads that serve the port the main thread chose. */
class WorkerPool {
  private readonly workers = new Set<Worker>();
  private closing = false;
  private resolveAllExited!: (code: number) => void;
  /** Resolves with 1 if every worker died without being asked to stop. */
  readonly allExited = new Promise<number>((resolve) => {
    this.resolveAllExited = resolve;
  });

  constructor(
    private readonly argv: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly port: number,
    private readonly logger: Logger,
  ) {}

  async start(count: number): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < count; i++) ready.push(this.spawn(i));
    await Promise.all(ready);
  }

  private spawn(index: number): Promise<void> {
    const data: WorkerData = { argv: [...this.argv], env: { ...this.env }, port: this.port };
    const worker = new Worker(WORKER_SCRIPT, {
      workerData: data,
      env: data.env,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    this.workers.add(worker);
    return new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on("message", (msg: WorkerMessage) => {
        if (msg.type === "ready") {
          started = true;
          resolve();
        } else if (msg.type === "error") {
          reject(new KproxyError(msg.code, msg.message, msg.details ? { details: msg.details } : undefined));
        }
      });
      worker.on("error", (err) => {
        if (!started) reject(err);
        else this.logger.error(`serving thread ${index} failed: ${errorMessage(err)}`);
      });
      worker.on("exit", (code) => {
        this.workers.delete(worker);
        if (!started) reject(new KproxyError("WORKER_FAILED", `serving thread ${index} exited with ${code}`));
        else if (!this.closing && this.workers.size === 0) this.resolveAllExited(1);
      });
    });
  }

  /** Asks every worker to finish in-flight requests (for up to graceMs) and waits for them. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.workers].map(
        (worker) =>
          new Promise<void>((resolve) => {
            worker.once("exit", () => resolve());
            worker.postMessage({ type: "close", graceMs });
            // a worker that does not finish in time (plus a margin) is terminated
            setTimeout(() => void worker.terminate(), graceMs + 5_000).unref();
          }),
      ),
    );
  }
}

/** A serving thread: the same flags as the main thread, listening on the port it chose. */
export async function runWorker(data: WorkerData, port: MessagePort): Promise<void> {
  const stderr = (t: string) => process.stderr.write(t);
  let connection: ClusterConnection | undefined;
  let serving: Serving | undefined;
  try {
    const flags = parseFlags(ALL_FLAGS, data.argv);
    const config = proxyConfigFromFlags(flags);
    const logger = createLogger({
      level: config.verbosity >= 3 ? "debug" : "info",
      write: (line) => stderr(`${line}\n`),
    });
    connection = await loadConnection({ ...connectionOptionsFromFlags(flags), env: data.env, logger });
    serving = await createProxy(config, connection, logger, stderr, { port: data.port, reusePort: true });
    await serving.proxy.listen();
  } catch (err) {
    const message: WorkerMessage = {
      type: "error",
      code: isKproxyError(err) ? err.code : "WORKER_FAILED",
      message: errorMessage(err),
    };
    if (isKproxyError(err) && err.details !== undefined) {
      try {
        message.details = structuredClone({ ...err.details });
      } catch {}
    }
    port.postMessage(message);
    await connection?.close();
    port.close();
    return;
  }
  const live = serving;
  const conn = connection;
  port.on("message", (msg: { type: string; graceMs?: number }) => {
    if (msg.type !== "close") return;
    void stopServing(live, conn, msg.graceMs ?? 0).finally(() => port.close());
  });
  port.postMessage({ type: "ready" } satisfies WorkerMessage);
}
