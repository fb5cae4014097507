/**
 * The real kubectl runs exec and port-forward through kubectl-proxy (`--reject-paths=''`) against the
 * testkit API server: upgrades (WebSocket, with SPDY fallback) are tunnelled both ways.
 */

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestApiServer } from "@kproxy/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningProxy, runToExit, startServing } from "./helpers/proc.js";

const KUBECTL = "/usr/bin/kubectl";
const HAVE_KUBECTL = existsSync(KUBECTL);
if (!HAVE_KUBECTL) console.warn("SKIPPING kubectl e2e test: /usr/bin/kubectl is not installed");

let api: TestApiServer;
let proxy: RunningProxy;
let work: string;

describe.skipIf(!HAVE_KUBECTL)("real kubectl through kubectl-proxy", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "kproxy-e2e-"));
    api = await TestApiServer.start();
    const kubeconfig = join(work, "kubeconfig");
    await api.writeKubeconfig(kubeconfig);
    api.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "shell", namespace: "default" },
      spec: { containers: [{ name: "main", image: "busybox:1.36" }] },
    });
    api.patch(
      "v1",
      "Pod",
      "default",
      "shell",
      {
        status: {
          phase: "Running",
          podIP: "10.244.0.9",
          conditions: [{ type: "Ready", status: "True" }],
          containerStatuses: [
            {
              name: "main",
              ready: true,
              restartCount: 0,
              image: "busybox:1.36",
              imageID: "",
              state: { running: {} },
            },
          ],
        },
      },
      { subresource: "status" },
    );
    proxy = await startServing(
      process.execPath,
      [CLI, "-p", "0", `--kubeconfig=${kubeconfig}`, "--reject-paths="],
      {
        PATH: process.env.PATH ?? "",
        HOME: work,
      },
    );
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await api?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const kubectlEnv = () => ({ PATH: process.env.PATH ?? "", HOME: work, KUBECONFIG: join(work, "none") });

  it("kubectl exec runs through the proxy", async () => {
    const r = await runToExit(
      KUBECTL,
      ["--server", `http://127.0.0.1:${proxy.port}`, "exec", "shell", "--", "echo", "through", "kproxy"],
      kubectlEnv(),
      60_000,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("through kproxy\n");
  }, 90_000);

  it("kubectl port-forward relays bytes both ways through the proxy", async () => {
    const child = spawn(
      KUBECTL,
      ["--server", `http://127.0.0.1:${proxy.port}`, "port-forward", "pod/shell", ":8080"],
      {
        env: kubectlEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    try {
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 30_000;
      let match: RegExpExecArray | null = null;
      while (match === null && Date.now() < deadline) {
        match = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(out);
        if (match === null) await new Promise((r) => setTimeout(r, 50));
      }
      expect(match, out).not.toBeNull();
      const localPort = Number(match?.[1]);
      const echoed = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(localPort, "127.0.0.1", () => socket.write("ping through kproxy"));
        let got = "";
        socket.on("data", (d: Buffer) => {
          got += d.toString();
          if (got.length >= "ping through kproxy".length) {
            socket.destroy();
            resolve(got);
          }
        });
        socket.on("error", reject);
        setTimeout(() => reject(new Error(`no echo; kubectl said: ${out}`)), 20_000);
      });
      expect(echoed).toBe("ping through kproxy");
    } finally {
      child.kill("SIGTERM");
    }
  }, 90_000);
});
