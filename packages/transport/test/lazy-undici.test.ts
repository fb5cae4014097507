import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runInFreshNode } from "@kproxy/testkit";
import { describe, expect, it } from "vitest";

const DIST = new URL("../dist/index.js", import.meta.url);

/**
 * Runs in a fresh node: records every module under node_modules/undici that is loaded (import or
 * require), imports the package and uses its lean parts, then makes a rewriting dispatcher.
 */
const CHILD = `
const t = await import(ENTRY);
const steps = { imported: watchedLoaded() };
const pool = new t.UpstreamPool({ host: "127.0.0.1", port: 9, target: "127.0.0.1:9" });
t.buildUpstreamHeaders(["Host", "x", "Connection", "close"], "GET", {});
t.rewriteLocation("http://backend:80/a", { pathPrepend: "/p", backendHost: "backend:80", requestHost: "h" });
t.isDirectDispatcher({});
steps.used = watchedLoaded();
const dispatched = [];
const inner = { dispatch: (opts, handler) => (dispatched.push([opts.path, typeof handler.onResponseStart]), true) };
const d = t.rewritingDispatcher(inner, { context: { pathPrepend: "/p", backendHost: "b:80", requestHost: "h" } });
steps.constructed = watchedLoaded();
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
    const steps = await runInFreshNode(CHILD, { entry: DIST, watch: "/node_modules/undici/" });
    expect(steps).toEqual({
      imported: false,
      used: false,
      constructed: true,
      isUndiciDispatcher: true,
      name: "RewritingDispatcher",
      dispatched: [["/x", "function"]],
    });
  });
});
