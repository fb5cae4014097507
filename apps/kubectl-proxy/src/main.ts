import { createWriteStream, type WriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createLogger } from "@kproxy/core";
import { connectionOptionsFromFlags, loadConnection } from "@kproxy/kubeconfig";
import { formatFlagHelp, onShutdownSignal, parseFlags } from "@kproxy/runtime";
import { ALL_FLAGS, proxyConfigFromFlags } from "./config.js";
import { type AccessLogEntry, KubectlProxy } from "./server.js";

const USAGE = `Creates a proxy server or application-level gateway between localhost and the Kubernetes API server.

Usage:
  kubectl-proxy [--port=PORT] [--www=static-dir] [--www-prefix=prefix] [--api-prefix=prefix] [options]

`;

export interface MainIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Resolves when the proxy should shut down (default: SIGTERM/SIGINT). */
  shutdown?: Promise<unknown>;
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
  const connection = await loadConnection({
    ...connectionOptionsFromFlags(flags),
    env: io.env ?? process.env,
    logger,
  });
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
    port: config.port,
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
  let address: string;
  try {
    address = await proxy.listen();
  } catch (err) {
    await connection.close();
    accessStream?.end();
    throw err;
  }
  stdout(`Starting to serve on ${address}\n`);
  let removeSignals: (() => void) | undefined;
  await (io.shutdown ??
    new Promise<void>((resolve) => {
      removeSignals = onShutdownSignal(() => resolve());
    }));
  await proxy.close(config.shutdownTimeoutMs);
  removeSignals?.();
  await connection.close();
  if (accessStream !== undefined) await new Promise<void>((resolve) => accessStream?.end(resolve));
  return 0;
}
