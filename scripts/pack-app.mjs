#!/usr/bin/env node
// Installs built apps the way a user would, for the container images of the root Dockerfile:
//
//   node scripts/pack-app.mjs --out /out kubectl-proxy apiserver-proxy front-lb
//
// For each app (its directory name under apps/ or its package name): `npm pack` of the app and of
// every workspace its runtime dependencies reach (its @kproxy closure, from the package.json files),
// `npm install --omit=dev` of those tarballs into the empty project <out>/<app>, then the installed
// bin's --help. <out>/<app> then holds package.json and node_modules/ only: dist/ and the runtime
// dependencies, no sources, tests, devDependencies or monorepo. Run it after `turbo run build`.
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  dependencyClosure,
  installTarballs,
  listWorkspaces,
  packPackage,
  runBinHelp,
} from "./lib/packages.mjs";

const USAGE = "usage: node scripts/pack-app.mjs --out DIR APP...";

class UsageError extends Error {}

/** The output directory, and the apps to install, each with its bin, target directory and closure. */
function plan(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: "string" } },
    allowPositionals: true,
  });
  if (values.out === undefined || positionals.length === 0)
    throw new UsageError("--out and an app are required");
  const out = resolve(values.out);
  const workspaces = listWorkspaces();
  const apps = positionals.map((wanted) => {
    const app = workspaces.find(
      (w) =>
        w.manifest.name === wanted || (basename(w.dir) === wanted && basename(dirname(w.dir)) === "apps"),
    );
    if (app === undefined) throw new Error(`${wanted}: no such app (a directory of apps/ or a package name)`);
    const bin = Object.keys(app.manifest.bin ?? {})[0];
    if (bin === undefined) throw new Error(`${app.manifest.name} has no bin in its package.json`);
    const target = join(out, basename(app.dir));
    if (existsSync(target) && readdirSync(target).length > 0)
      throw new Error(`${target} exists and is not empty`);
    return { app, bin, target, closure: dependencyClosure(workspaces, app.manifest.name) };
  });
  return { out, apps };
}

function install(apps, tarballDir) {
  const tarballs = new Map(); // package name → tarball: each workspace is packed once
  for (const { app, bin, target, closure } of apps) {
    for (const { dir, manifest } of closure) {
      if (tarballs.has(manifest.name)) continue;
      if (!existsSync(join(dir, "dist"))) throw new Error(`${manifest.name} is not built (no dist/)`);
      tarballs.set(manifest.name, packPackage(dir, tarballDir).tarball);
    }
    const names = closure.map((w) => w.manifest.name);
    const installed = installTarballs(
      target,
      names.map((n) => tarballs.get(n)),
      { manifest: { name: `${basename(app.dir)}-image`, private: true }, npmArgs: ["--omit=dev"] },
    );
    if (installed.status !== 0)
      throw new Error(`${app.manifest.name}: npm install failed: ${installed.stderr.trim()}`);
    const help = runBinHelp(target, bin);
    if (!help.ok)
      throw new Error(`${app.manifest.name}: ${bin} --help exited ${help.status}: ${help.stderr.trim()}`);
    console.log(`${app.manifest.name}: installed ${names.join(", ")} into ${target}; ${bin} --help ok`);
  }
}

let tarballDir;
try {
  const { out, apps } = plan(process.argv.slice(2));
  // Beside the targets, at a fixed place: the installed package.json files name the tarballs
  // (file:../.tarballs/…), so that an image's /app does not change from one build to the next.
  tarballDir = join(out, ".tarballs");
  mkdirSync(tarballDir, { recursive: true });
  install(apps, tarballDir);
} catch (error) {
  const usage = error instanceof UsageError || error.code?.startsWith("ERR_PARSE_ARGS");
  console.error(`pack-app: ${error.message}${usage ? `\n${USAGE}` : ""}`);
  process.exitCode = usage ? 2 : 1;
} finally {
  if (tarballDir !== undefined) rmSync(tarballDir, { recursive: true, force: true });
}
