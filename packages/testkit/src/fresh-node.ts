/**
 * Runs an ES module body in a fresh `node` and returns the JSON it printed last, with a hook that
 * records which modules load: for tests of what importing a package costs ("does importing X load
 * undici?").
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

export interface FreshNodeOptions {
  /** The module the body works with: the body sees it as `ENTRY` (its URL, for `import(ENTRY)`). */
  entry: URL;
  /** A piece of a module URL or path, e.g. "/node_modules/undici/": `watchedLoaded()` is true once one loaded. */
  watch: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

/**
 * In the body: `ENTRY` (a URL string), `require` (resolving from ENTRY), and `watchedLoaded()` (true
 * once a module whose URL contains `watch` was imported or required). The body must end by printing
 * one line of JSON (`console.log(JSON.stringify(result))`), which is parsed and returned.
 */
export async function runInFreshNode(body: string, options: FreshNodeOptions): Promise<unknown> {
  const script = `
import { createRequire, registerHooks } from "node:module";
const ENTRY = ${JSON.stringify(options.entry.href)};
const WATCH = ${JSON.stringify(options.watch)};
const seen = new Set();
registerHooks({
  load(url, context, next) {
    if (url.includes(WATCH)) seen.add(url);
    return next(url, context);
  },
});
const require = createRequire(ENTRY);
const watchedLoaded = () =>
  seen.size > 0 || Object.keys(require.cache).some((k) => k.replaceAll("\\\\", "/").includes(WATCH));
${body}
`;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, NODE_OPTIONS: "" },
    timeout: options.timeoutMs ?? 60_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
}
