/**
 * --workers N: N processes serve the same port (SO_REUSEPORT: the kernel spreads connections).
 * The first process (the primary) forks the others, runs the admin listener for all of them
 * (/readyz: every worker ready; /metrics: every worker's samples, labelled worker="i"), restarts a
 * worker that dies, and stops them all on shutdown.
 */
import { type ChildProcess, fork } from "node:child_process";
import { errorMessage, type Logger } from "@kproxy/core";

/** Set in a worker's environment to its index (1…N-1). */
export const WORKER_ENV = "KPROXY_APISERVER_PROXY_WORKER";

type FromWorker = { type: "ready" } | { type: "metrics"; id: number; text: string };
type ToWorker = { type: "metrics"; id: number };

/** Adds `worker="<n>"` to every sample line of a Prometheus text exposition. */
export function labelExposition(text: string, worker: string): string {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) {
      out.push(line);
      continue;
    }
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    if (brace >= 0 && brace < space)
      out.push(`${line.slice(0, brace + 1)}worker="${worker}",${line.slice(brace + 1)}`);
    else out.push(`${line.slice(0, space)}{worker="${worker}"}${line.slice(space)}`);
  }
  return out.join("\n");
}

/** Merges expositions: HELP/TYPE once per metric, samples of every worker together. */
export function mergeExpositions(texts: readonly string[]): string {
  const order: string[] = [];
  const groups = new Map<string, { head: string[]; samples: string[] }>();
  for (const text of texts) {
    let current: { head: string[]; samples: string[] } | undefined;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const m = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (m) {
        const name = m[2] as string;
        let g = groups.get(name);
        if (g === undefined) {
          g = { head: [], samples: [] };
          groups.set(name, g);
          order.push(name);
        }
        if (!g.head.includes(line)) g.head.push(line);
        current = g;
        continue;
      }
      current?.samples.push(line);
    }
  }
  const out: string[] = [];
  for (const name of order) {
    const g = groups.get(name) as { head: string[]; samples: string[] };
    out.push(...g.head, ...g.samples);
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}

interface Worker {
  index: number;
  child: ChildProcess;
  ready: boolean;
}

/** The primary's side: forks and supervises the other workers. */
export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private nextId = 1;
  private readonly pending = new Map<number, (text: string) => void>();
  private stopping = false;

  constructor(
    private readonly count: number,
    private readonly script: string,
    private readonly argv: readonly string[],
    private readonly logger: Logger,
  ) {}

  start(): void {
    for (let i = 1; i < this.count; i++) this.spawn(i);
  }

  private spawn(index: number): void {
    const child = fork(this.script, [...this.argv], {
      env: { ...process.env, [WORKER_ENV]: String(index) },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    const w: Worker = { index, child, ready: false };
    this.workers.set(index, w);
    child.on("message", (msg: FromWorker) => {
      if (msg.type === "ready") w.ready = true;
      else if (msg.type === "metrics") {
        this.pending.get(msg.id)?.(msg.text);
        this.pending.delete(msg.id);
      }
    });
    child.on("exit", (code, signal) => {
      this.workers.delete(index);
      if (this.stopping) return;
      this.logger.error("worker exited; restarting it", { worker: index, code, signal });
      setTimeout(() => {
        if (!this.stopping) this.spawn(index);
      }, 1000).unref();
    });
  }

  /** Every forked worker is up and synced. */
  allReady(): boolean {
    if (this.workers.size < this.count - 1) return false;
    for (const w of this.workers.values()) if (!w.ready) return false;
    return true;
  }

  /** Each worker's metrics exposition (empty for one that does not answer within 2 s). */
  async collect(): Promise<{ index: number; text: string }[]> {
    return Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<{ index: number; text: string }>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.pending.delete(id);
              resolve({ index: w.index, text: "" });
            }, 2000);
            this.pending.set(id, (text) => {
              clearTimeout(timer);
              resolve({ index: w.index, text });
            });
            try {
              w.child.send({ type: "metrics", id } satisfies ToWorker);
            } catch (err) {
              this.logger.warn("cannot reach worker", { worker: w.index, error: errorMessage(err) });
            }
          }),
      ),
    );
  }

  /** SIGTERM to every worker; resolves once they have exited (SIGKILL after `graceMs` + 5 s). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => w.child.kill("SIGKILL"), graceMs + 5000);
            w.child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            w.child.kill("SIGTERM");
          }),
      ),
    );
  }
}

/** The worker's side: tell the primary when ready, answer metrics requests, stop with it. */
export function connectToPrimary(expose: () => string, onPrimaryGone: () => void): { ready(): void } {
  process.on("message", (msg: ToWorker) => {
    if (msg?.type === "metrics")
      process.send?.({ type: "metrics", id: msg.id, text: expose() } satisfies FromWorker);
  });
  process.once("disconnect", onPrimaryGone);
  return { ready: () => process.send?.({ type: "ready" } satisfies FromWorker) };
}
