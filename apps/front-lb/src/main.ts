import { unwatchFile, watchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import { createLogger, errorMessage } from "@kproxy/core";
import { formatFlagHelp, onShutdownSignal, parseFlags } from "@kproxy/runtime";
import { FrontLb } from "./app.js";
import { configFromFlags, FRONT_LB_FLAGS, loadConfigFile } from "./config.js";

const USAGE = `An L4 load balancer in front of Kubernetes API servers (TLS passes through).

Usage:
  front-lb --config front-lb.yaml
  front-lb --listen 0.0.0.0:6443 --endpoint 10.0.0.1:6443 --endpoint 10.0.0.2:6443 [options]

`;

export interface MainIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Resolves when front-lb should shut down (default: SIGTERM/SIGINT). */
  shutdown?: Promise<unknown>;
  /** Resolves each time the config should be reloaded (default: SIGHUP). */
  onReload?: (reload: () => void) => void;
}

/** The front-lb command; resolves with the exit code once it has shut down. */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? ((t: string) => process.stdout.write(t));
  const stderr = io.stderr ?? ((t: string) => process.stderr.write(t));
  const flags = parseFlags(FRONT_LB_FLAGS, argv);
  if (flags.help) {
    stdout(USAGE + formatFlagHelp(FRONT_LB_FLAGS));
    return 0;
  }
  const config = configFromFlags(flags);
  if (flags.values.validate === true) {
    stdout(`${JSON.stringify(config, (k, v) => (k.endsWith("Pem") ? "(redacted)" : v), 2)}\n`);
    return 0;
  }
  const logger = createLogger({ level: config.logLevel, write: (line) => stderr(`${line}\n`) });
  const file = String(flags.values.config ?? "");
  // Handle SIGHUP from the start: its default action would end the process.
  let hupBeforeStart = false;
  let onHup = () => {
    hupBeforeStart = true;
  };
  const hupListener = () => onHup();
  if (!io.onReload) process.on("SIGHUP", hupListener);
  let lb: FrontLb;
  try {
    lb = await FrontLb.start(config, { logger });
  } catch (err) {
    process.off("SIGHUP", hupListener);
    throw err;
  }

  let reloading = Promise.resolve();
  let lastText: string | undefined =
    file !== "" ? await readFile(file, "utf8").catch(() => undefined) : undefined;
  const reload = (why: string) => {
    if (file === "") {
      logger.info("reload requested but no --config file is used", { trigger: why });
      return;
    }
    reloading = reloading.then(async () => {
      try {
        const text = await readFile(file, "utf8");
        if (why === "file changed" && text === lastText) return;
        lastText = text;
        const next = loadConfigFile(file);
        await lb.reload(next);
      } catch (err) {
        lb.reloadFailed(err);
        logger.error("reload failed: keeping the running configuration", {
          trigger: why,
          error: errorMessage(err),
        });
      }
    });
  };
  onHup = () => reload("SIGHUP");
  if (io.onReload) io.onReload(() => reload("SIGHUP"));
  if (hupBeforeStart) reload("SIGHUP");
  if (file !== "")
    watchFile(file, { interval: 1000 }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino)
        reload("file changed");
    });

  let removeSignals: () => void = () => {};
  const signal =
    io.shutdown ??
    new Promise<unknown>((resolve) => {
      removeSignals = onShutdownSignal(resolve);
    });
  const got = await signal;
  logger.info("shutting down: draining connections", {
    signal: typeof got === "string" ? got : undefined,
    timeoutMs: lb.currentConfig.shutdownTimeoutMs,
  });
  if (file !== "") unwatchFile(file);
  process.off("SIGHUP", hupListener);
  await reloading;
  await lb.shutdown();
  removeSignals();
  logger.info("stopped");
  return 0;
}
