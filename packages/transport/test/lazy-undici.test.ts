import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const DIST = new URL("../dist/index.js", import.meta.url);

/**
 * Runs in a fresh node: records every module under node_modules/undici that is loaded (import or
 * require), imports the package and uses its lean parts, then makes a rewriting dispatcher.
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
const require = createRequire(process.env.KPROXY_DIST);
const undiciLoaded = () =>
  seen.size > 0 || Object.keys(require.cache).some((k) => k.replaceAll("\\\\", "/").includes("/node_modules/undici/"));
const t = await import(process.env.KPROXY_DIST);
const steps = { imported: undiciLoaded() };
const pool = new t.UpstreamPool({ host: "127.0.0.1", port: 9, target: "127.0.0.1:9" });
t.buildUpstreamHeaders(["Host", "x", "Connection", "close"], "GET", {});
t.rewriteLocation("http://backend:80/a", { pathPrepend: "/p", backendHost: "backend:80", requestHost: "h" });
t.isDirectDispatcher({});
steps.used = undiciLoaded();
const dispatched = [];
const inner = { dispatch: (opts, handler) => (dispatched.push([opts.path, typeof handler.onResponseStart]), true) };
const d = t.rewritingDispatcher(inner, { context: { pathPrepend: "/p", backendHost: "b:80", requestHost: "h" } });
steps.constructed = undiciLoaded();
const undici = require("undici");
steps.isUndiciDispatcher = d instanceof undici.Dispatcher;
steps.name = d.constructor.name;
d.dispatch({ path: "/x", method: "GET", origin: "http://b" }, {});
steps.dispatched = dispatched;
pool.close();
console.log(JSON.stringify(steps));
`;

describe("undici is loaded lazily", () => {
  it("importing @kproxy/transport does not load it; the first rewritingDispatcher() does", async () => {
    expect(existsSync(fileURLToPath(DIST)), "build @kproxy/transport first (dist/index.js)").toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", CHILD], {
      env: { ...process.env, KPROXY_DIST: DIST.href, NODE_OPTIONS: "" },
      timeout: 60_000,
    });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "")).toEqual({
      imported: false,
      used: false,
      constructed: true,
      isUndiciDispatcher: true,
      name: "RewritingDispatcher",
      dispatched: [["/x", "function"]],
    });
  });
});
