/** Network fixtures for tests of timeouts: a port that never answers. Loopback only. */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";

/**
 * A loopback port whose SYNs go unanswered: a child process listens with a backlog of 1, fills it
 * and blocks its event loop, so further connects hang (Linux drops SYNs on a full accept queue).
 * The child blocks for at most 120 s; `close()` kills it.
 */
export async function blackholePort(): Promise<{ port: number; close(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "-e",
      "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(String(s.address().port)+'\\n');setTimeout(()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,120000),50)});",
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", () => reject(new Error("blackhole child exited")));
  });
  await new Promise((r) => setTimeout(r, 200));
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, "127.0.0.1");
    s.on("error", () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      child.kill("SIGKILL");
    },
  };
}
