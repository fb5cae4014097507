// Checks the root Dockerfile without Docker: what its build stage copies, builds and installs, and what
// each app's final stage (`docker build --target <app> .`) runs, exposes and carries, against the
// package.json files, .dockerignore, the apps' defaults and deploy/; then runs the build stage's
// install (scripts/pack-app.mjs) for apiserver-proxy on the built packages and the installed bin.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { PROXY_FLAGS as APISERVER_PROXY_FLAGS } from "@kproxy/apiserver-proxy";
import { DEFAULT_ADMIN_ADDRESS, FRONT_LB_FLAGS, parseHostPort } from "@kproxy/front-lb";
import { DEFAULT_PORT, PROXY_FLAGS as KUBECTL_PROXY_FLAGS } from "@kproxy/kubectl-proxy";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const APPS = ["kubectl-proxy", "apiserver-proxy", "front-lb"] as const;
type App = (typeof APPS)[number];
/** Where the build stage installs each app (scripts/pack-app.mjs --out), and the images' WORKDIR. */
const OUT_DIR = "/out";
const INSTALL_DIR = "/app";

// ---------------------------------------------------------------------------- Dockerfile

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  /** The `AS` name. */
  readonly name: string;
  /** The image or the earlier stage it starts FROM. */
  readonly base: string;
  readonly instructions: Instruction[];
}

/** Leading `--flag=value` options of an instruction, and the rest. */
function splitFlags(args: string): { flags: string[]; rest: string[] } {
  const words = args.split(/\s+/).filter((w) => w !== "");
  const at = words.findIndex((w) => !w.startsWith("--"));
  return at < 0 ? { flags: words, rest: [] } : { flags: words.slice(0, at), rest: words.slice(at) };
}

/** The stages, with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = "";
    if (full === "") continue;
    const [, word = "", args = ""] = /^(\S+)\s*(.*)$/s.exec(full) ?? [];
    const keyword = word.toUpperCase();
    if (keyword === "FROM") {
      const [base = "", as, name] = splitFlags(args).rest;
      if (as?.toUpperCase() !== "AS" || name === undefined) throw new Error(`unnamed stage: FROM ${args}`);
      stages.push({ name, base, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (stage === undefined) throw new Error(`${keyword} before FROM`);
      stage.instructions.push({ keyword, args });
    }
  }
  return stages;
}

const dockerfileText = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const stages = parseDockerfile(dockerfileText);
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.name === name);
  if (found === undefined) throw new Error(`the Dockerfile has no stage ${name}`);
  return found;
};
/** A stage and the stages it is built FROM, the first first. */
const chain = (name: string): Stage[] => {
  const s = stage(name);
  return stages.some((t) => t.name === s.base) ? [...chain(s.base), s] : [s];
};
/** What a target runs with: the instructions of its stage and of the stages it is built FROM. */
const effective = (name: string) => chain(name).flatMap((s) => s.instructions);
const all = (list: Instruction[], keyword: string) => list.filter((i) => i.keyword === keyword);
const last = (list: Instruction[], keyword: string) => all(list, keyword).at(-1);
const build = stages.find((s) => s.name === "build")?.instructions ?? [];
const buildRuns = all(build, "RUN").map((i) => splitFlags(i.args).rest.join(" "));
/** The build stage's RUN of scripts/pack-app.mjs, as words. */
const packRun = buildRuns.find((r) => r.includes("scripts/pack-app.mjs"))?.split(" ") ?? [];

// ---------------------------------------------------------------------------- build context

function globRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Whether .dockerignore keeps `path` (or a directory above it) out of the build context. */
function dockerignored(path: string): boolean {
  const file = join(ROOT, ".dockerignore");
  if (!existsSync(file)) return false;
  const parts = path.replace(/\/+$/, "").split("/");
  let ignored = false;
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negated = line.startsWith("!");
    const re = globRegExp((negated ? line.slice(1) : line).replace(/^\/+|\/+$/g, ""));
    if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join("/")))) ignored = !negated;
  }
  return ignored;
}

/** The build stage's COPYs from the build context: their sources and destination. */
const contextCopies = all(build, "COPY")
  .map((i) => splitFlags(i.args))
  .filter((c) => !c.flags.some((f) => f.startsWith("--from")))
  .map((c) => ({ sources: c.rest.slice(0, -1), dest: c.rest.at(-1) ?? "" }));

/**
 * Where a repository file lands in the build stage (relative to its WORKDIR), or undefined when no
 * COPY takes it from the build context.
 */
function copiedTo(path: string): string | undefined {
  for (const { sources, dest } of contextCopies)
    for (const src of sources) {
      if (path !== src && !path.startsWith(`${src}/`)) continue;
      if (dockerignored(path)) return undefined;
      const into = dest.replace(/^\.\/?/, "");
      if (statSync(join(ROOT, src)).isDirectory()) return posix.join(into, path.slice(src.length));
      return into === "" || into.endsWith("/") || sources.length > 1 ? posix.join(into, basename(src)) : into;
    }
  return undefined;
}

/** The relative imports of a JavaScript or TypeScript file, as repository paths. */
function relativeImports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/\bfrom\s+"(\.\.?\/[^"]+)"/g)].map((m) => {
    const path = posix.normalize(posix.join(posix.dirname(file), m[1]!));
    return existsSync(join(ROOT, path)) ? path : `${path}.ts`;
  });
}

interface Manifest {
  name: string;
  version: string;
  license?: string;
  private?: boolean;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const readJson = <T>(file: string) => JSON.parse(readFileSync(join(ROOT, file), "utf8")) as T;
const readYaml = <T>(file: string) => parse(readFileSync(join(ROOT, file), "utf8")) as T;

/** The workspace directories npm ci links, from the lockfile. */
const lockedWorkspaces = Object.values(
  readJson<{ packages: Record<string, { link?: boolean; resolved?: string }> }>("package-lock.json").packages,
).flatMap((p) => (p.link && p.resolved !== undefined ? [p.resolved] : []));

// ---------------------------------------------------------------------------- the whole file

describe("Dockerfile", () => {
  it("has a build stage, a runtime stage and one final stage per app, FROM runtime", () => {
    expect(stages[0]?.name).toBe("build");
    expect(stages.filter((s) => s.base === "runtime").map((s) => s.name)).toEqual([...APPS]);
    // the images' base and the build's are the same Node 24 on Debian (bookworm: its env(1) has the
    // -S the bins' shebangs use)
    for (const name of ["build", "runtime"])
      expect(stage(name).base).toMatch(/^node:24-(bookworm|trixie)(-slim)?(@sha256:[0-9a-f]{64})?$/);
    expect(stage("build").base).toBe(stage("runtime").base);
  });

  it("copies into the build stage only files that exist and are in the build context", () => {
    const sources = contextCopies.flatMap((c) => c.sources);
    expect(sources).toContain("package-lock.json");
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), `${src} exists`).toBe(true);
      expect(dockerignored(src), `${src} is not in .dockerignore`).toBe(false);
    }
  });

  it("copies every published workspace, each where npm ci, turbo and tsup look for it", () => {
    const published = lockedWorkspaces.filter((dir) => !readJson<Manifest>(`${dir}/package.json`).private);
    expect(published.length).toBeGreaterThan(APPS.length);
    const needed = new Set(["package.json", "package-lock.json", "turbo.json"]);
    for (const dir of published) {
      for (const file of ["package.json", "tsconfig.json", "tsup.config.ts", "src/index.ts"])
        if (existsSync(join(ROOT, dir, file))) needed.add(`${dir}/${file}`);
      // the root files their build configs reach: tsconfig.base.json, tsup.shared.ts
      const { extends: base } = readJson<{ extends?: string }>(`${dir}/tsconfig.json`);
      if (base !== undefined) needed.add(posix.normalize(posix.join(dir, base)));
      for (const file of relativeImports(`${dir}/tsup.config.ts`)) needed.add(file);
    }
    for (const file of needed) expect(copiedTo(file), file).toBe(file);
    // the private ones (sandbox, e2e) may stay out: no app depends on them, and npm ci skips them
    for (const dir of lockedWorkspaces)
      if (copiedTo(`${dir}/package.json`) === undefined)
        expect(readJson<Manifest>(`${dir}/package.json`).private, dir).toBe(true);
  });

  it("runs npm ci, then turbo build, then scripts/pack-app.mjs for every app into /out", () => {
    const at = (re: RegExp) => buildRuns.findIndex((r) => re.test(r));
    expect(at(/^npm ci\b/)).toBeGreaterThanOrEqual(0);
    expect(at(/\bturbo run build\b/)).toBeGreaterThan(at(/^npm ci\b/));
    expect(at(/^node scripts\/pack-app\.mjs /)).toBeGreaterThan(at(/\bturbo run build\b/));
    expect(packRun.slice(0, 4)).toEqual(["node", "scripts/pack-app.mjs", "--out", OUT_DIR]);
    expect(packRun.slice(4)).toEqual([...APPS]);
    // the script and what it imports are in the build stage, where it looks for them
    const script = "scripts/pack-app.mjs";
    for (const file of [script, ...relativeImports(script)]) expect(copiedTo(file), file).toBe(file);
  });

  it("the runtime stage: uid/gid 65532 created and used, npm removed, NODE_ENV=production", () => {
    const runtime = stage("runtime").instructions;
    const user = /^(\d+):(\d+)$/.exec(last(runtime, "USER")?.args ?? "");
    expect(user, "USER uid:gid").not.toBeNull();
    const runs = all(runtime, "RUN")
      .map((i) => i.args)
      .join(" ");
    expect(runs).toContain(`groupadd --gid ${user![2]} `);
    expect(runs).toContain(`useradd --uid ${user![1]} --gid ${user![2]} `);
    for (const path of ["/usr/local/lib/node_modules/npm", "/usr/local/bin/npm", "/usr/local/bin/npx"])
      expect(runs).toMatch(new RegExp(`\\brm -r?f [^&]*${path.replace(/\//g, "\\/")}(\\s|$)`));
    expect(all(runtime, "ENV").some((i) => /\bNODE_ENV=production\b/.test(i.args))).toBe(true);
    expect(last(runtime, "WORKDIR")?.args).toBe(INSTALL_DIR);
  });
});

// ---------------------------------------------------------------------------- each app's target

interface AppCase {
  readonly app: App;
  /** The ports the image must EXPOSE, from the app's defaults or the config its CMD reads. */
  readonly ports: () => number[];
  /** The default arguments (CMD), or null. */
  readonly cmd: string[] | null;
}
const flagDefault = (flags: readonly { name: string; default?: unknown }[], name: string) =>
  flags.find((f) => f.name === name)?.default;
interface FrontLbConfig {
  admin: { address: string };
  listeners: { address: string }[];
}
const FRONT_LB_CONFIG = "deploy/front-lb/front-lb.yaml";
const portOf = (address: string) => parseHostPort(address)?.port;

const CASES: AppCase[] = [
  { app: "kubectl-proxy", ports: () => [DEFAULT_PORT], cmd: null },
  {
    app: "apiserver-proxy",
    ports: () => ["secure-port", "admin-port"].map((f) => Number(flagDefault(APISERVER_PROXY_FLAGS, f))),
    cmd: null,
  },
  {
    app: "front-lb",
    ports: () => {
      const config = readYaml<FrontLbConfig>(FRONT_LB_CONFIG);
      return [...config.listeners.map((l) => portOf(l.address)), portOf(config.admin.address)].map(Number);
    },
    cmd: ["--config", `/etc/front-lb/${basename(FRONT_LB_CONFIG)}`],
  },
];

const appManifest = (app: App) => readJson<Manifest>(`apps/${app}/package.json`);
const binOf = (app: App) => Object.keys(appManifest(app).bin ?? {})[0] ?? "";
const exposed = (app: App) =>
  all(effective(app), "EXPOSE")
    .flatMap((i) => i.args.split(/\s+/))
    .map((p) => Number(p.replace(/\/tcp$/, "")))
    .sort((a, b) => a - b);
const userOf = (app: App) => /^(\d+)(?::(\d+))?$/.exec(last(effective(app), "USER")?.args ?? "");
const cmdOf = (app: App) => JSON.parse(last(effective(app), "CMD")?.args ?? "null") as string[] | null;
/** The image the documented `docker build --target <app> -t IMAGE .` tags. */
const imageOf = (app: App) => `ghcr.io/kproxy/${binOf(app)}:${appManifest(app).version}`;
const buildCommand = (app: App) => `docker build --target ${app} -t ${imageOf(app)} .`;

describe.each(CASES)("the $app target", ({ app, ports, cmd }) => {
  const manifest = appManifest(app);
  const bin = binOf(app);
  const image = () => effective(app);

  it("runs the app's bin as a non-root numeric user, NODE_ENV=production", () => {
    expect(bin).toBe(app);
    const u = userOf(app);
    expect(u, "USER uid[:gid]").not.toBeNull();
    expect(Number(u![1])).toBeGreaterThan(0);
    if (u![2] !== undefined) expect(Number(u![2])).toBeGreaterThan(0);
    expect(all(image(), "ENV").some((i) => /\bNODE_ENV=production\b/.test(i.args))).toBe(true);
  });

  it("has the installed bin as exec-form ENTRYPOINT (so the shebang's Node flags apply)", () => {
    const entry = last(image(), "ENTRYPOINT")?.args ?? "";
    expect(entry.startsWith("["), "exec form").toBe(true);
    expect(JSON.parse(entry)).toEqual([`${INSTALL_DIR}/node_modules/.bin/${bin}`]);
    expect(last(image(), "WORKDIR")?.args).toBe(INSTALL_DIR);
    expect(readFileSync(join(ROOT, `apps/${app}/src/cli.ts`), "utf8")).toMatch(/^#!\/usr\/bin\/env /);
  });

  it("ships only the production install the build stage made for it", () => {
    const copies = all(image(), "COPY").map((i) => splitFlags(i.args));
    expect(copies.length).toBe(1);
    expect(copies[0]?.flags).toEqual(["--from=build"]);
    expect(copies[0]?.rest).toEqual([`${OUT_DIR}/${app}`, INSTALL_DIR]);
    expect(packRun).toContain(app);
    expect(buildRuns.some((r) => r.includes(`--filter=${manifest.name}...`))).toBe(true);
    expect(dockerignored(`apps/${app}/node_modules`)).toBe(true);
    expect(dockerignored(`apps/${app}/dist`)).toBe(true);
  });

  it("EXPOSEs the app's ports, with the default arguments they come from", () => {
    expect(exposed(app)).toEqual([...ports()].sort((a, b) => a - b));
    expect(cmdOf(app)).toEqual(cmd);
  });

  it("carries the OCI labels and documents its build command (Dockerfile, README)", () => {
    const labels = all(image(), "LABEL")
      .map((i) => i.args)
      .join(" ");
    const label = (k: string) =>
      new RegExp(`org\\.opencontainers\\.image\\.${k}="([^"]*)"`).exec(labels)?.[1];
    expect(label("title")).toBe(bin);
    expect(label("licenses")).toBe(manifest.license);
    expect(label("source")).toMatch(/^https:\/\/github\.com\//);
    expect(label("url")).toBe(`${label("source")}/tree/main/apps/${app}`);
    expect(label("description")).toMatch(/\S/);
    expect(dockerfileText).toContain(`#   ${buildCommand(app)}\n`);
    expect(readFileSync(join(ROOT, `apps/${app}/README.md`), "utf8")).toContain(`\n${buildCommand(app)}\n`);
  });
});

// ---------------------------------------------------------------------------- app-specific agreements

describe("the images agree with the apps and deploy/", () => {
  it("kubectl-proxy: the exposed port is --port's default", () => {
    expect(flagDefault(KUBECTL_PROXY_FLAGS, "port")).toBe(DEFAULT_PORT);
  });

  it("apiserver-proxy: deploy/apiserver-proxy/deployment.yaml (image, user, ports, non-root)", () => {
    const yaml = readFileSync(join(ROOT, "deploy/apiserver-proxy/deployment.yaml"), "utf8");
    const values = (re: RegExp) => [...yaml.matchAll(re)].map((m) => m[1]!);
    const user = userOf("apiserver-proxy")!;
    const ports = exposed("apiserver-proxy");
    expect(values(/^\s*image:\s*(\S+)\s*$/gm)).toEqual([imageOf("apiserver-proxy")]);
    expect(values(/^\s*runAsNonRoot:\s*(\S+)/gm)).toEqual(["true"]);
    expect(values(/^\s*runAsUser:\s*(\d+)/gm)).toEqual([user[1]]);
    expect(values(/^\s*runAsGroup:\s*(\d+)/gm)).toEqual([user[2]]);
    expect(
      values(/^\s*containerPort:\s*(\d+)/gm)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(ports);
    const arg = (flag: string) => values(new RegExp(`^\\s*- --${flag}=(\\S+)`, "gm")).map(Number);
    expect([...arg("secure-port"), ...arg("admin-port")].sort((a, b) => a - b)).toEqual(ports);
    // readOnlyRootFilesystem: the image declares no VOLUME to write to, and the app writes nothing
    // by default (access log to stderr).
    expect(values(/^\s*readOnlyRootFilesystem:\s*(\S+)/gm)).toEqual(["true"]);
    expect(all(effective("apiserver-proxy"), "VOLUME")).toEqual([]);
    expect(flagDefault(APISERVER_PROXY_FLAGS, "access-log")).toBe("-");
  });

  it("front-lb: the admin port of its config is front-lb's default one", () => {
    const config = readYaml<FrontLbConfig>(FRONT_LB_CONFIG);
    expect(portOf(config.admin.address)).toBe(portOf(DEFAULT_ADMIN_ADDRESS));
    expect(flagDefault(FRONT_LB_FLAGS, "admin-address")).toBe(DEFAULT_ADMIN_ADDRESS);
  });

  it("front-lb: deploy/front-lb/static-pod.yaml (image, user, args, ports, config mount)", () => {
    interface StaticPod {
      spec: {
        securityContext: { runAsNonRoot: boolean; runAsUser: number; runAsGroup: number };
        containers: {
          image: string;
          args: string[];
          ports: { containerPort: number }[];
          securityContext: { readOnlyRootFilesystem: boolean };
          volumeMounts: { mountPath: string }[];
        }[];
      };
    }
    const pod = readYaml<StaticPod>("deploy/front-lb/static-pod.yaml");
    const container = pod.spec.containers[0]!;
    const user = userOf("front-lb")!;
    expect(container.image.split(":")[0]).toBe(imageOf("front-lb").split(":")[0]);
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    expect(String(pod.spec.securityContext.runAsUser)).toBe(user[1]);
    expect(String(pod.spec.securityContext.runAsGroup)).toBe(user[2]);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(all(effective("front-lb"), "VOLUME")).toEqual([]);
    expect(container.args).toEqual(cmdOf("front-lb"));
    expect(container.volumeMounts.map((m) => m.mountPath)).toContain(dirname(cmdOf("front-lb")![1]!));
    expect(container.ports.map((p) => p.containerPort).sort((a, b) => a - b)).toEqual(exposed("front-lb"));
  });
});

// ---------------------------------------------------------------------------- the build stage's install

/**
 * Runs a command to its end, or kills its whole process group (the npm processes it started too)
 * after `timeoutMs`: { status (null when killed), output }.
 */
function runGroup(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<{ status: number | null; output: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs} ms)`;
      process.kill(-child.pid!, "SIGKILL");
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

describe("scripts/pack-app.mjs (the build stage's install), on the built packages", () => {
  it("installs apiserver-proxy's closure for production, and its bin runs", {
    timeout: 180_000,
  }, async () => {
    const app: App = "apiserver-proxy";
    const out = mkdtempSync(join(tmpdir(), "kproxy-image-"));
    try {
      // npm needs the registry (the tarballs' third-party dependencies are resolved as a user's
      // install would); e2e/turbo.json passes the proxy and CA variables through turbo.
      const env = { ...process.env, npm_config_prefer_offline: "true", npm_config_update_notifier: "false" };
      const args = ["scripts/pack-app.mjs", "--out", out, app];
      const packed = await runGroup(process.execPath, args, ROOT, env, 170_000);
      expect(packed.status, packed.output).toBe(0);

      // what COPY --from=build takes: the empty project, its lockfile and node_modules, nothing else
      const installed = join(out, app);
      expect(readdirSync(out)).toEqual([app]);
      expect(readdirSync(installed).sort()).toEqual(["node_modules", "package-lock.json", "package.json"]);
      const help = spawnSync(join(installed, "node_modules/.bin", binOf(app)), ["--help"], {
        cwd: installed,
        encoding: "utf8",
        timeout: 30_000,
      });
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout + help.stderr).toMatch(/--secure-port/);

      // Exactly the app's @kproxy closure: every @kproxy package is the app or a runtime dependency
      // of an installed one, and every such dependency is installed. Each has dist/, no sources or tests.
      const modules = join(installed, "node_modules");
      const kproxy = readdirSync(join(modules, "@kproxy")).map((n) => `@kproxy/${n}`);
      const installedManifest = (name: string) =>
        JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")) as Manifest;
      const required = new Set([appManifest(app).name]);
      for (const name of kproxy) {
        const { dependencies, optionalDependencies } = installedManifest(name);
        for (const dep of Object.keys({ ...dependencies, ...optionalDependencies }))
          if (dep.startsWith("@kproxy/")) required.add(dep);
      }
      expect(kproxy.sort()).toEqual([...required].sort());
      expect(kproxy.length).toBeGreaterThan(1);
      for (const name of kproxy) {
        const files = readdirSync(join(modules, name));
        expect(files, name).toContain("dist");
        expect(files, name).not.toContain("src");
        expect(files, name).not.toContain("test");
      }

      // No devDependency (the packages' own, the repository's) unless a third-party runtime
      // dependency needs it (@kubernetes/client-node depends on @types/node).
      const lock = JSON.parse(readFileSync(join(installed, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dev?: boolean; dependencies?: Record<string, string> }>;
      };
      const neededByThirdParty = new Set(
        Object.entries(lock.packages)
          .filter(([path]) => path.startsWith("node_modules/") && !path.startsWith("node_modules/@kproxy/"))
          .flatMap(([, p]) => Object.keys(p.dependencies ?? {})),
      );
      const devDependencies = [readJson<Manifest>("package.json"), ...kproxy.map(installedManifest)].flatMap(
        (m) => Object.keys(m.devDependencies ?? {}),
      );
      expect(devDependencies).toEqual(
        expect.arrayContaining(["vitest", "tsup", "typescript", "@kproxy/testkit"]),
      );
      for (const dev of devDependencies)
        if (!neededByThirdParty.has(dev)) expect(existsSync(join(modules, dev)), dev).toBe(false);
      for (const [path, p] of Object.entries(lock.packages)) expect(p.dev, path).not.toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
