#!/usr/bin/env node
/** kproxy-testkit: run the in-memory Kubernetes API server from the command line. */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createLogger, errorMessage } from "@kproxy/core";
import { parseSeed } from "./seed.js";
import { TestApiServer } from "./server.js";
import type { KObject } from "./store.js";

const USAGE = `usage: kproxy-testkit serve [--port 6443] [--host 127.0.0.1] [--http]
                            [--kubeconfig-out PATH] [--seed FILE.json|FILE.yaml]
                            [--no-endpointslice-controller] [--log-level info]

Runs an in-memory Kubernetes API server that the real kubectl accepts.
`;

function fail(msg: string): never {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: "string", default: "6443" },
        host: { type: "string", default: "127.0.0.1" },
        http: { type: "boolean", default: false },
        "kubeconfig-out": { type: "string" },
        seed: { type: "string" },
        "no-endpointslice-controller": { type: "boolean", default: false },
        "log-level": { type: "string", default: "info" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  }
  try {
    parsed = parse();
  } catch (err) {
    fail(errorMessage(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (positionals.length !== 1 || positionals[0] !== "serve")
    fail(
      positionals.length === 0
        ? "missing command (try: kproxy-testkit serve)"
        : `unknown command "${positionals.join(" ")}"`,
    );
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    fail(`--port must be a port number, got "${values.port}"`);
  const level = values["log-level"];
  if (!["debug", "info", "warn", "error"].includes(level))
    fail(`--log-level must be debug, info, warn or error`);
  let seed: KObject[] = [];
  if (values.seed) {
    try {
      seed = parseSeed(await readFile(values.seed, "utf8"), values.seed);
    } catch (err) {
      fail(`cannot read seed file ${values.seed}: ${errorMessage(err)}`);
    }
  }
  const logger = createLogger({ level: level as "info" });
  let server: TestApiServer;
  try {
    server = await TestApiServer.start({
      port,
      host: values.host,
      tls: !values.http,
      seed,
      endpointSliceController: !values["no-endpointslice-controller"],
      logger,
    });
  } catch (err) {
    fail(errorMessage(err));
  }
  if (values["kubeconfig-out"]) {
    try {
      await server.writeKubeconfig(values["kubeconfig-out"]);
    } catch (err) {
      await server.close();
      fail(`cannot write kubeconfig: ${errorMessage(err)}`);
    }
  }
  process.stdout.write(`kproxy-testkit listening on ${server.url}\n`);
  if (values["kubeconfig-out"]) process.stdout.write(`kubeconfig written to ${values["kubeconfig-out"]}\n`);
  else process.stdout.write(`admin token: ${server.adminToken}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { signal });
    void server.close().then(() => process.exit(0));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main(process.argv.slice(2)).catch((err: unknown) => fail(errorMessage(err)));
