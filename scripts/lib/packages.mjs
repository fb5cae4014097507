// What scripts/check-packages.mjs and scripts/pack-app.mjs share: the workspaces of the root
// package.json, an app's dependency closure among them, `npm pack` of one workspace, and installing
// tarballs into an empty project the way a user would, then running a bin's --help there.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** The repository root. */
export const ROOT = resolve(import.meta.dirname, "..", "..");

/**
 * npm's own variables (npm_config_*, npm_package_*, npm_lifecycle_*) are dropped from the environment
 * of the npm commands below, so that `npm run …` or a workspace test runner around a script cannot
 * redirect them (npm_config_workspace, npm_config_local_prefix, …). Where the cache and the registry
 * are, and npm_config_prefer_offline, are kept.
 */
const KEPT_NPM_VARIABLES = new Set([
  "npm_config_cache",
  "npm_config_registry",
  "npm_config_userconfig",
  "npm_config_prefer_offline",
]);

function npmEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^npm_/i.test(k) || KEPT_NPM_VARIABLES.has(k.toLowerCase())) env[k] = v;
  return env;
}

/** spawnSync with output captured as text. */
export const run = (cmd, args, opts = {}) =>
  spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });

const runNpm = (args, opts = {}) => run("npm", args, { env: npmEnv(), ...opts });

/**
 * The workspaces of the root package.json (`dir/*` and `dir` entries), in its order, each group
 * sorted by directory name: [{ dir, manifest }]. Directories that are absent (the image's build
 * context leaves the private sandbox and e2e out) are skipped.
 */
export function listWorkspaces(root = ROOT) {
  const { workspaces = [] } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const dirs = [];
  for (const pattern of workspaces) {
    if (pattern.endsWith("/*")) {
      const parent = join(root, pattern.slice(0, -2));
      if (existsSync(parent)) for (const name of readdirSync(parent).sort()) dirs.push(join(parent, name));
    } else if (!pattern.includes("*")) dirs.push(join(root, pattern));
    else throw new Error(`unsupported workspaces pattern in package.json: ${pattern}`);
  }
  return dirs
    .filter((dir) => existsSync(join(dir, "package.json")))
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }));
}

/**
 * The workspace `name` and every workspace its runtime dependencies (dependencies and
 * optionalDependencies, not devDependencies) reach, transitively, in breadth-first order.
 */
export function dependencyClosure(workspaces, name) {
  const byName = new Map(workspaces.map((w) => [w.manifest.name, w]));
  const closure = [];
  const queue = [name];
  while (queue.length > 0) {
    const next = queue.shift();
    if (closure.some((w) => w.manifest.name === next)) continue;
    const workspace = byName.get(next);
    if (workspace === undefined) throw new Error(`${next} is not a workspace of package.json`);
    closure.push(workspace);
    const { dependencies, optionalDependencies } = workspace.manifest;
    for (const dep of Object.keys({ ...dependencies, ...optionalDependencies }))
      if (byName.has(dep)) queue.push(dep);
  }
  return closure;
}

/**
 * `npm pack` of the package in `dir` into `destination`: { tarball, filename, files, size }.
 * Throws when npm pack fails.
 */
export function packPackage(dir, destination) {
  const packed = runNpm(["pack", "--json", "--pack-destination", destination], { cwd: dir });
  if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr.trim()}`);
  const info = JSON.parse(packed.stdout)[0];
  return {
    tarball: join(destination, info.filename),
    filename: info.filename,
    files: info.files.map((f) => f.path),
    size: info.size,
  };
}

/**
 * Creates `projectDir` as an empty project (`manifest` as its package.json) and `npm install`s the
 * tarballs into it, with `npmArgs` (e.g. --omit=dev). Returns npm's result (status, stdout, stderr).
 */
export function installTarballs(projectDir, tarballs, { manifest, npmArgs = [] }) {
  mkdirSync(projectDir, { recursive: true });
  writeFileSync(join(projectDir, "package.json"), `${JSON.stringify(manifest)}\n`);
  return runNpm(["install", "--no-audit", "--no-fund", ...npmArgs, ...tarballs], { cwd: projectDir });
}

/**
 * Runs the installed `bin --help` in `projectDir`: { ok, status, stdout, stderr }; ok when it exits 0
 * and prints a usage or options text.
 */
export function runBinHelp(projectDir, bin) {
  const {
    status,
    stdout = "",
    stderr = "",
  } = run(join(projectDir, "node_modules", ".bin", bin), ["--help"], {
    cwd: projectDir,
    timeout: 30_000,
  });
  return { ok: status === 0 && /usage|options/i.test(stdout + stderr), status, stdout, stderr };
}
