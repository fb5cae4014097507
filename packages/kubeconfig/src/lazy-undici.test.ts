import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runInFreshNode } from "@kproxy/testkit";
import { describe, expect, it } from "vitest";

const DIST = new URL("../dist/index.js", import.meta.url);

/**
 * Runs in a fresh node: records every module under node_modules/undici that is loaded (import or
 * require), loads a connection and uses everything but dispatcher(), then calls dispatcher().
 */
const CHILD = `
const { loadConnection } = await import(ENTRY);
const steps = { imported: watchedLoaded() };
const conn = await loadConnection({
  server: "https://127.0.0.1:6443",
  token: "t0ken",
  insecureSkipTlsVerify: true,
  env: { HOME: "/nonexistent", HTTPS_PROXY: "http://proxy.example:3128" },
});
steps.loaded = watchedLoaded();
conn.proxyUrl();
await conn.tlsOptions();
const headers = {};
await conn.applyAuth(headers);
conn.staticCredentials();
conn.invalidateCredentials();
steps.used = watchedLoaded();
await conn.dispatcher();
steps.dispatcher = watchedLoaded();
await conn.close();
steps.authorization = headers.authorization;
console.log(JSON.stringify(steps));
`;

describe("undici is loaded lazily", () => {
  it("importing the package and using a connection without dispatcher() does not load it", async () => {
    expect(existsSync(fileURLToPath(DIST)), "build @kproxy/kubeconfig first (dist/index.js)").toBe(true);
    const steps = await runInFreshNode(CHILD, { entry: DIST, watch: "/node_modules/undici/" });
    expect(steps).toEqual({
      imported: false,
      loaded: false,
      used: false,
      // the check sees undici once something loads it
      dispatcher: true,
      authorization: "Bearer t0ken",
    });
  });
});
