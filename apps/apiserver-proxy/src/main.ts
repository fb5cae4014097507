import { createWriteStream, type WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createLogger, errorMessage, KproxyError } from "@kproxy/core";
import { connectionOptionsFromFlags, loadConnection } from "@kproxy/kubeconfig";
import { formatFlagHelp, onShutdownSignal, PROMETHEUS_CONTENT_TYPE, parseFlags } from "@kproxy/runtime";
import { startApiserverProxy } from "./app.js";
import { ALL_FLAGS, configFromFlags } from "./config.js";
import type { AccessLogEntry } from "./server.js";
import { connectToPrimary, labelExposition, mergeExpositions, WORKER_ENV, WorkerPool } from "./workers.js";

const USAGE = `Serves the API server's service, pod and node proxy (/api/v1/namespaces/NS/services/NAME/proxy/...)
as a standalone HTTPS bastion: clients authenticate with a client certificate or a bearer token
(TokenReview), every request is authorized with a SubjectAccessReview, and the proxy dials only
addresses taken from the cluster's objects.

Usage:
  apiserver-proxy --tls-cert-file=FILE --tls-private-key-file=FILE [--client-ca-file=FILE] [options]

`;

export interface MainIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Resolves when the proxy should shut down (default: SIGTERM/SIGINT). */
  shutdown?: Promise<unknown>;
}

async function readPem(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new KproxyError(
      "FILE_UNREADABLE",
      `--${flag}: cannot read ${JSON.stringify(path)}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
}

/** The apiserver-proxy command. Resolves with the exit code once the proxy has shut down. */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? ((t: string) => process.stdout.write(t));
  const stderr = io.stderr ?? ((t: string) => process.stderr.write(t));
  const flags = parseFlags(ALL_FLAGS, argv);
  if (flags.help) {
    stdout(USAGE + formatFlagHelp(ALL_FLAGS));
    return 0;
  }
  const config = configFromFlags(flags);
  const logger = createLogger({
    level: config.verbosity >= 4 ? "debug" : "info",
    write: (line) => stderr(`${line}\n`),
  });
  const [cert, key, clientCa, kubeletCert, kubeletKey, kubeletCa] = await Promise.all([
    readPem(config.tlsCertFile, "tls-cert-file"),
    readPem(config.tlsPrivateKeyFile, "tls-private-key-file"),
    config.clientCaFile !== undefined ? readPem(config.clientCaFile, "client-ca-file") : undefined,
    config.kubeletClientCertificate !== undefined
      ? readPem(config.kubeletClientCertificate, "kubelet-client-certificate")
      : undefined,
    config.kubeletClientKey !== undefined
      ? readPem(config.kubeletClientKey, "kubelet-client-key")
      : undefined,
    config.kubeletCertificateAuthority !== undefined
      ? readPem(config.kubeletCertificateAuthority, "kubelet-certificate-authority")
      : undefined,
  ]);
  let accessStream: WriteStream | undefined;
  let accessLog: ((entry: AccessLogEntry) => void) | undefined;
  if (config.accessLog === "-") accessLog = (entry) => stderr(`${JSON.stringify(entry)}\n`);
  else if (config.accessLog !== "") {
    const stream = createWriteStream(config.accessLog, { flags: "a", mode: 0o600 });
    accessStream = stream;
    await new Promise<void>((resolve, reject) => {
      stream.once("open", () => resolve());
      stream.once("error", (err) =>
        reject(new KproxyError("FILE_UNREADABLE", `--access-log: ${errorMessage(err)}`, { cause: err })),
      );
    });
    accessLog = (entry) => stream.write(`${JSON.stringify(entry)}\n`);
  }
  const env = io.env ?? process.env;
  const workerIndex = Number(env[WORKER_ENV] ?? "0");
  const isWorker = workerIndex > 0 && process.send !== undefined;
  const pool =
    config.workers > 1 && !isWorker && process.argv[1] !== undefined
      ? new WorkerPool(config.workers, process.argv[1], argv, logger)
      : undefined;
  const connection = await loadConnection({ ...connectionOptionsFromFlags(flags), env, logger });
  let proxy: Awaited<ReturnType<typeof startApiserverProxy>>;
  try {
    proxy = await startApiserverProxy({
      connection,
      tls: { cert, key },
      ...(clientCa !== undefined ? { clientCa } : {}),
      bindAddress: config.bindAddress,
      port: config.securePort,
      reusePort: config.workers > 1,
      adminBindAddress: config.adminBindAddress,
      adminPort: isWorker ? -1 : config.adminPort,
      ...(pool !== undefined
        ? {
            alsoReady: () => pool.allReady(),
            adminRoutes: {
              "/metrics": async (_req, res) => {
                const own = labelExposition(proxy.metrics.registry.expose(), "0");
                const others = await pool.collect();
                const body = mergeExpositions([
                  own,
                  ...others.map((o) => labelExposition(o.text, String(o.index))),
                ]);
                res.writeHead(200, {
                  "Content-Type": PROMETHEUS_CONTENT_TYPE,
                  "Content-Length": Buffer.byteLength(body),
                });
                res.end(body);
              },
            },
          }
        : {}),
      authorizationMode: config.authorizationMode,
      anonymousAuth: config.anonymousAuth,
      tokenCacheTtlMs: config.tokenCacheTtlMs,
      authorizedTtlMs: config.authorizedTtlMs,
      unauthorizedTtlMs: config.unauthorizedTtlMs,
      balance: config.balance,
      preferredAddressTypes: config.preferredAddressTypes,
      kubelet: {
        ...(kubeletCert !== undefined ? { cert: kubeletCert } : {}),
        ...(kubeletKey !== undefined ? { key: kubeletKey } : {}),
        ...(kubeletCa !== undefined ? { ca: kubeletCa } : {}),
      },
      rewriteHtml: config.rewriteHtml,
      outlier: {
        consecutiveFailures: config.consecutiveFailures,
        ejectionTimeMs: config.ejectionTimeMs,
        maxEjectionPercent: config.maxEjectionPercent,
      },
      devAllowLoopbackEndpoints: config.devAllowLoopbackEndpoints,
      syncTimeoutMs: config.syncTimeoutMs,
      logger,
      ...(accessLog !== undefined ? { accessLog } : {}),
    });
  } catch (err) {
    await connection.close();
    accessStream?.end();
    throw err;
  }
  let removeSignals: (() => void) | undefined;
  let primaryGone: (() => void) | undefined;
  const primaryGonePromise = new Promise<void>((resolve) => {
    primaryGone = resolve;
  });
  if (isWorker)
    connectToPrimary(
      () => proxy.metrics.registry.expose(),
      () => primaryGone?.(),
    ).ready();
  else {
    pool?.start();
    stdout(`Serving securely on ${config.bindAddress}:${proxy.port}\n`);
    if (proxy.adminUrl !== undefined) stdout(`Health and metrics on ${proxy.adminUrl}\n`);
  }
  await Promise.race([
    io.shutdown ??
      new Promise<void>((resolve) => {
        removeSignals = onShutdownSignal(() => resolve());
      }),
    primaryGonePromise,
  ]);
  logger.info("shutting down", {
    graceMs: config.shutdownGraceMs,
    ...(isWorker ? { worker: workerIndex } : {}),
  });
  await Promise.all([proxy.close(config.shutdownGraceMs), pool?.stop(config.shutdownGraceMs)]);
  removeSignals?.();
  if (isWorker && process.connected) process.disconnect(); // the IPC channel would keep the process alive
  await connection.close();
  if (accessStream !== undefined) await new Promise<void>((resolve) => accessStream?.end(resolve));
  return 0;
}
