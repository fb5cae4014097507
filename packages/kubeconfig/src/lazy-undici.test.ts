import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const DIST = new URL("../dist/index.js", import.meta.url);

/**
 * Runs in a fresh node: records every module under node_modules/undici that is loaded (import or
 * require), loads a connection and uses everything but dispatcher(), then calls dispatcher().
 */
const CHILD = `
import { createRequire, registerHooks } from "node:module";
const seen = new Set();
registerHooks({
  load(url, context, next) {
    if (url.includes("/node_modules/undici/")) seen.add(url);
    return next(url, context);
  },
});
const cache = createRequire(process.env.KPROXY_DIST).cache;
const undiciLoaded = () =>
  seen.size > 0 || Object.keys(cache).some((k) => k.replaceAll("\\\\", "/").includes("/node_modules/undici/"));
const { loadConnection } = await import(process.env.KPROXY_DIST);
const steps = { imported: undiciLoaded() };
const conn = await loadConnection({
  server: "https://127.0.0.1:6443",
  token: "t0ken",
  insecureSkipTlsVerify: true,
  env: { HOME: "/nonexistent", HTTPS_PROXY: "http://proxy.example:3128" },
});
steps.loaded = undiciLoaded();
conn.proxyUrl();
await conn.tlsOptions();
const headers = {};
await conn.applyAuth(headers);
conn.staticCredentials();
conn.invalidateCredentials();
steps.used = undiciLoaded();
await conn.dispatcher();
steps.dispatcher = undiciLoaded();
await conn.close();
steps.authorization = headers.authorization;
console.log(JSON.stringify(steps));
`;

describe("undici is loaded lazily", () => {
  it("importing the package and using a connection without dispatcher() does not load it", async () => {
    expect(existsSync(fileURLToPath(DIST)), "build @kproxy/kubeconfig first (dist/index.js)").toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", CHILD], {
      env: { ...process.env, KPROXY_DIST: DIST.href, NODE_OPTIONS: "" },
      timeout: 60_000,
    });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "")).toEqual({
      imported: false,
      loaded: false,
      used: false,
      // the check sees undici once something loads it
      dispatcher: true,
      authorization: "Bearer t0ken",
    });
  });
});
