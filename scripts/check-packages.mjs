#!/usr/bin/env node
// Packaging check (npm run check:packages): packs every published workspace package, lints the
// packed result with publint and @arethetypeswrong/cli, installs all tarballs into an empty
// temporary project, imports each library and runs each binary's --help. Fails on any problem.
// Private workspaces (sandbox, e2e) are not published and not checked.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  installTarballs,
  listWorkspaces,
  packPackage,
  ROOT as root,
  run,
  runBinHelp,
} from "./lib/packages.mjs";

const problems = [];
const fail = (pkg, what) => {
  problems.push(`${pkg}: ${what}`);
  console.error(`  FAIL ${what}`);
};

const packages = listWorkspaces(root).filter((w) => !w.manifest.private);
const only = process.argv.slice(2);
if (only.length > 0)
  packages.splice(0, packages.length, ...packages.filter((p) => only.includes(p.manifest.name)));
if (packages.length === 0) {
  console.error("no packages found");
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), "kproxy-pack-"));
const tarballs = [];
try {
  for (const { dir, manifest } of packages) {
    const name = manifest.name;
    console.log(`\n${name}`);
    const readme = join(dir, "README.md");
    if (!existsSync(readme)) fail(name, "no README.md");
    else if (!/```(ts|typescript|js|sh|bash|console)?\n[\s\S]+?```/.test(readFileSync(readme, "utf8")))
      fail(name, "README.md has no example code block");
    if (!existsSync(join(dir, "dist"))) fail(name, "not built (no dist/): run npm run build first");

    let packed;
    try {
      packed = packPackage(dir, work);
    } catch (error) {
      fail(name, error.message);
      continue;
    }
    const { tarball, files } = packed;
    tarballs.push(tarball);
    console.log(`  packed ${packed.filename} (${files.length} files, ${packed.size} bytes)`);
    if (files.some((f) => f.startsWith("src/") || f.endsWith(".test.js")))
      fail(name, "tarball contains sources or tests");

    const publint = run("npx", ["--no-install", "publint", "run", dir, "--strict", "--pack", "npm"], {
      cwd: root,
    });
    if (publint.status !== 0) fail(name, `publint:\n${publint.stdout}${publint.stderr}`);
    else console.log("  publint ok");

    const attw = run("npx", ["--no-install", "attw", tarball, "--profile", "esm-only", "--format", "ascii"], {
      cwd: root,
    });
    if (attw.status !== 0) fail(name, `arethetypeswrong:\n${attw.stdout}${attw.stderr}`);
    else console.log("  attw ok");
  }

  console.log("\ninstalling every tarball into an empty project");
  const app = join(work, "consumer");
  const install = installTarballs(app, tarballs, {
    manifest: { name: "consumer", private: true, type: "module" },
    npmArgs: ["--prefer-offline"],
  });
  if (install.status !== 0) {
    fail("install", install.stderr.trim());
  } else {
    for (const { manifest } of packages) {
      const name = manifest.name;
      if (manifest.exports?.["."]) {
        const probe = run(
          "node",
          [
            "--input-type=module",
            "-e",
            `const m = await import(${JSON.stringify(name)}); if (Object.keys(m).length === 0) throw new Error("no exports"); console.log(Object.keys(m).length + " exports");`,
          ],
          { cwd: app },
        );
        if (probe.status !== 0) fail(name, `import failed: ${probe.stderr.trim()}`);
        else console.log(`${name}: import ok (${probe.stdout.trim()})`);
      }
      for (const bin of Object.keys(manifest.bin ?? {})) {
        const help = runBinHelp(app, bin);
        if (!help.ok) fail(name, `${bin} --help exited ${help.status}: ${help.stderr.trim()}`);
        else console.log(`${name}: ${bin} --help ok`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
  console.error(`\npackaging check failed: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`\npackaging check passed: ${packages.length} packages`);
