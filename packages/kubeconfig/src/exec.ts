import { spawn } from "node:child_process";
import type { Clock, Logger } from "@kproxy/core";
import { errorMessage, KproxyError } from "@kproxy/core";
import type { ExecConfig, ResolvedCluster } from "./load.js";

const SUPPORTED_VERSIONS = new Set([
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
]);
/** Bytes of the plugin's stderr kept for the error message. */
const MAX_STDERR = 8 * 1024;
/** Bytes of stdout accepted (an ExecCredential is small; this bounds a runaway plugin). */
const MAX_STDOUT = 4 * 1024 * 1024;

/** What an exec credential plugin returned. */
export interface ExecCredential {
  token: string | undefined;
  clientCertificateData: string | undefined;
  clientKeyData: string | undefined;
  /** Epoch ms; undefined = never expires (until invalidated). */
  expiresAt: number | undefined;
}

export interface ExecProviderOptions {
  config: ExecConfig;
  cluster: ResolvedCluster;
  /** The CA bytes sent as spec.cluster.certificate-authority-data. */
  caData: Buffer | undefined;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: Logger;
  timeoutMs: number;
}

function fail(config: ExecConfig, message: string, stderr?: string, cause?: unknown): KproxyError {
  const trimmed = stderr?.trim();
  const hint = config.installHint ? `\n${config.installHint}` : "";
  return new KproxyError(
    "EXEC_PLUGIN_FAILED",
    `exec plugin ${JSON.stringify(config.command)}: ${message}${trimmed ? `: ${trimmed}` : ""}${hint}`,
    { cause, details: { command: config.command, stderr: trimmed ?? "" } },
  );
}

/** Runs a client-go exec credential plugin, caching its credential until it expires. */
export class ExecCredentialProvider {
  private cached: ExecCredential | undefined;
  private inflight: Promise<ExecCredential> | undefined;
  private generation = 0;

  constructor(private readonly opts: ExecProviderOptions) {
    const cmd = JSON.stringify(opts.config.command);
    if (!SUPPORTED_VERSIONS.has(opts.config.apiVersion)) {
      throw new KproxyError(
        "KUBECONFIG_INVALID",
        `exec plugin ${cmd}: unsupported apiVersion ${JSON.stringify(opts.config.apiVersion)} (supported: client.authentication.k8s.io/v1, client.authentication.k8s.io/v1beta1)`,
      );
    }
    if (opts.config.apiVersion.endsWith("/v1") && opts.config.interactiveMode === undefined) {
      throw new KproxyError(
        "KUBECONFIG_INVALID",
        `exec plugin ${cmd}: interactiveMode must be specified for client.authentication.k8s.io/v1`,
      );
    }
  }

  /** The current credential, running the plugin when there is none or it has expired. */
  async get(): Promise<ExecCredential> {
    const c = this.cached;
    if (c && (c.expiresAt === undefined || this.opts.clock.now() < c.expiresAt)) return c;
    if (this.inflight) return this.inflight;
    const gen = this.generation;
    const p = this.run().then((cred) => {
      if (gen === this.generation) this.cached = cred;
      return cred;
    });
    this.inflight = p;
    try {
      return await p;
    } finally {
      if (this.inflight === p) this.inflight = undefined;
    }
  }

  /** Drops the cached credential; the next get() runs the plugin again. */
  invalidate(): void {
    this.generation++;
    this.cached = undefined;
    this.inflight = undefined;
  }

  private execInfo(): string {
    const { config, cluster, caData } = this.opts;
    const spec: Record<string, unknown> = { interactive: false };
    if (config.provideClusterInfo) {
      const c: Record<string, unknown> = { server: cluster.server };
      if (cluster.tlsServerName) c["tls-server-name"] = cluster.tlsServerName;
      if (cluster.insecure) c["insecure-skip-tls-verify"] = true;
      if (caData) c["certificate-authority-data"] = caData.toString("base64");
      if (cluster.proxyUrl) c["proxy-url"] = cluster.proxyUrl;
      if (cluster.disableCompression) c["disable-compression"] = true;
      if (cluster.execExtension !== undefined) c.config = cluster.execExtension;
      spec.cluster = c;
    }
    return JSON.stringify({ kind: "ExecCredential", apiVersion: config.apiVersion, spec });
  }

  private run(): Promise<ExecCredential> {
    const { config, logger, timeoutMs } = this.opts;
    if (config.interactiveMode === "Always") {
      return Promise.reject(
        fail(config, "the plugin requires interactive mode, but kproxy is not interactive"),
      );
    }
    const env: NodeJS.ProcessEnv = { ...this.opts.env };
    for (const e of config.env) env[e.name] = e.value;
    env.KUBERNETES_EXEC_INFO = this.execInfo();
    logger.debug("running exec credential plugin", { command: config.command });
    return new Promise<ExecCredential>((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      let settled = false;
      const finish = (err: KproxyError | undefined, cred?: ExecCredential) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(cred as ExecCredential);
      };
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(config.command, config.args, { env, stdio: ["ignore", "pipe", "pipe"] });
      } catch (err) {
        finish(fail(config, `cannot start: ${errorMessage(err)}`, undefined, err));
        return;
      }
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        finish(fail(config, `timed out after ${timeoutMs} ms`, stderr));
      }, timeoutMs);
      child.stdout?.setEncoding("utf8");
      child.stderr?.setEncoding("utf8");
      child.stdout?.on("data", (d: string) => {
        stdout += d;
        if (stdout.length > MAX_STDOUT) {
          child.kill("SIGKILL");
          finish(fail(config, "output too large", stderr));
        }
      });
      child.stderr?.on("data", (d: string) => {
        if (stderr.length < MAX_STDERR) stderr = (stderr + d).slice(0, MAX_STDERR);
      });
      child.on("error", (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        const what = code === "ENOENT" ? "executable not found" : `cannot start: ${errorMessage(err)}`;
        finish(fail(config, what, stderr, err));
      });
      child.on("close", (code, signal) => {
        if (code !== 0) {
          finish(fail(config, signal ? `killed by ${signal}` : `exited with code ${code}`, stderr));
          return;
        }
        try {
          finish(undefined, this.parse(stdout));
        } catch (err) {
          finish(err as KproxyError);
        }
      });
    });
  }

  /** Decodes the plugin's ExecCredential. Messages never include stdout (it holds the secret). */
  private parse(stdout: string): ExecCredential {
    const { config } = this.opts;
    let obj: unknown;
    try {
      obj = JSON.parse(stdout);
    } catch {
      throw fail(config, "stdout is not a JSON ExecCredential");
    }
    if (typeof obj !== "object" || obj === null) throw fail(config, "stdout is not a JSON ExecCredential");
    const o = obj as Record<string, unknown>;
    if (o.kind !== "ExecCredential")
      throw fail(config, `returned kind ${JSON.stringify(o.kind)}, want ExecCredential`);
    if (o.apiVersion !== config.apiVersion) {
      throw fail(
        config,
        `returned apiVersion ${JSON.stringify(o.apiVersion)}, want ${JSON.stringify(config.apiVersion)}`,
      );
    }
    const status = o.status;
    if (typeof status !== "object" || status === null) throw fail(config, "returned no status");
    const s = status as Record<string, unknown>;
    const token = typeof s.token === "string" && s.token !== "" ? s.token : undefined;
    const cert =
      typeof s.clientCertificateData === "string" && s.clientCertificateData !== ""
        ? s.clientCertificateData
        : undefined;
    const key = typeof s.clientKeyData === "string" && s.clientKeyData !== "" ? s.clientKeyData : undefined;
    if ((cert === undefined) !== (key === undefined)) {
      throw fail(config, "returned only one of clientCertificateData and clientKeyData");
    }
    if (token === undefined && cert === undefined) {
      throw fail(config, "returned neither a token nor a client certificate and key");
    }
    let expiresAt: number | undefined;
    if (
      s.expirationTimestamp !== undefined &&
      s.expirationTimestamp !== null &&
      s.expirationTimestamp !== ""
    ) {
      expiresAt = typeof s.expirationTimestamp === "string" ? Date.parse(s.expirationTimestamp) : Number.NaN;
      if (Number.isNaN(expiresAt)) throw fail(config, "returned an invalid status.expirationTimestamp");
    }
    return { token, clientCertificateData: cert, clientKeyData: key, expiresAt };
  }
}
