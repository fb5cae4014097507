/**
 * A tiny fake container runtime: a handful of commands implemented in-process (no real process is ever spawned),
 * enough for `kubectl exec` and `kubectl attach` to behave like they do against a real pod.
 */

/** Standard input of a fake process: chunks pushed by the transport, read by the command. */
export class StdinQueue {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private waiter: (() => void) | undefined;

  push(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The next chunk, or null once stdin is closed and drained (or the signal aborted). */
  async read(signal?: AbortSignal): Promise<Buffer | null> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) return chunk;
      if (this.ended || signal?.aborted) return null;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener("abort", done);
          this.waiter = undefined;
          resolve();
        };
        this.waiter = done;
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  private wake(): void {
    this.waiter?.();
  }
}

export interface ProcessIO {
  stdin: StdinQueue;
  stdout(data: string | Buffer): void;
  stderr(data: string | Buffer): void;
  /** Aborted when the client goes away: commands must stop promptly. */
  signal: AbortSignal;
  pod: string;
  namespace: string;
  container: string;
  tty: boolean;
}

/** The longest `sleep` the fake runtime honours, in seconds. */
export const MAX_SLEEP_SECONDS = 600;

type Command = (args: string[], io: ProcessIO) => Promise<number>;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function envLines(io: ProcessIO): string[] {
  const lines = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `HOSTNAME=${io.pod}`,
    "HOME=/root",
    `KPROXY_TESTKIT_NAMESPACE=${io.namespace}`,
    `KPROXY_TESTKIT_CONTAINER=${io.container}`,
  ];
  if (io.tty) lines.push("TERM=xterm");
  return lines;
}

const COMMANDS: Record<string, Command> = {
  async echo(args, io) {
    let newline = true;
    if (args[0] === "-n") {
      newline = false;
      args = args.slice(1);
    }
    io.stdout(args.join(" ") + (newline ? "\n" : ""));
    return 0;
  },
  async cat(args, io) {
    if (args.length > 0 && !(args.length === 1 && args[0] === "-")) {
      for (const file of args) io.stderr(`cat: ${file}: No such file or directory\n`);
      return 1;
    }
    for (;;) {
      const chunk = await io.stdin.read(io.signal);
      if (chunk === null) return 0;
      io.stdout(chunk);
    }
  },
  async true() {
    return 0;
  },
  async false() {
    return 1;
  },
  async hostname(_args, io) {
    io.stdout(`${io.pod}\n`);
    return 0;
  },
  async env(_args, io) {
    io.stdout(`${envLines(io).join("\n")}\n`);
    return 0;
  },
  async sleep(args, io) {
    const arg = args[0];
    const seconds = arg === undefined ? Number.NaN : Number(arg.replace(/s$/, ""));
    if (!Number.isFinite(seconds) || seconds < 0) {
      io.stderr(arg === undefined ? "sleep: missing operand\n" : `sleep: invalid time interval '${arg}'\n`);
      return 1;
    }
    await sleep(Math.min(seconds, MAX_SLEEP_SECONDS) * 1000, io.signal);
    return 0;
  },
  async sh(args, io) {
    if (args[0] === "-c") {
      const script = args[1];
      if (script === undefined) {
        io.stderr("sh: -c: option requires an argument\n");
        return 2;
      }
      return runScript(script, io);
    }
    // An interactive-ish shell: one line of stdin at a time.
    let pending = "";
    let last = 0;
    if (io.tty) io.stdout("# ");
    for (;;) {
      const chunk = await io.stdin.read(io.signal);
      if (chunk === null) return last;
      pending += chunk.toString("utf8");
      let nl = pending.search(/\r?\n|\r/);
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + (pending[nl] === "\r" && pending[nl + 1] === "\n" ? 2 : 1));
        if (io.tty) io.stdout("\r\n");
        const result = await runScriptLine(line, io);
        if (result.exit) return result.code;
        last = result.code;
        if (io.tty) io.stdout("# ");
        nl = pending.search(/\r?\n|\r/);
      }
    }
  },
};
COMMANDS.bash = COMMANDS.sh as Command;

/** Splits a shell word list, honouring single and double quotes and backslash escapes. */
export function shellSplit(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated quoted string`);
  if (inWord) words.push(word);
  return words;
}

/** Splits a script on `;`, newlines, `&&` and `||` outside quotes. */
function splitStatements(script: string): Array<{ text: string; op: ";" | "&&" | "||" }> {
  const out: Array<{ text: string; op: ";" | "&&" | "||" }> = [];
  let cur = "";
  let op: ";" | "&&" | "||" = ";";
  let quote: string | undefined;
  for (let i = 0; i < script.length; i++) {
    const c = script[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      cur += c;
    } else if (c === ";" || c === "\n") {
      out.push({ text: cur, op });
      cur = "";
      op = ";";
    } else if ((c === "&" || c === "|") && script[i + 1] === c) {
      out.push({ text: cur, op });
      cur = "";
      op = c === "&" ? "&&" : "||";
      i++;
    } else {
      cur += c;
    }
  }
  out.push({ text: cur, op });
  return out.filter((s) => s.text.trim() !== "");
}

async function runScript(script: string, io: ProcessIO): Promise<number> {
  let last = 0;
  for (const stmt of splitStatements(script)) {
    if (stmt.op === "&&" && last !== 0) continue;
    if (stmt.op === "||" && last === 0) continue;
    const result = await runScriptLine(stmt.text, io);
    if (result.exit) return result.code;
    last = result.code;
    if (io.signal.aborted) return 130;
  }
  return last;
}

async function runScriptLine(line: string, io: ProcessIO): Promise<{ code: number; exit: boolean }> {
  let words: string[];
  try {
    words = shellSplit(line);
  } catch (err) {
    io.stderr(`sh: syntax error: ${(err as Error).message}\n`);
    return { code: 2, exit: true };
  }
  if (words.length === 0) return { code: 0, exit: false };
  // Redirect stdout to stderr: `echo oops >&2`.
  let toStderr = false;
  const last = words[words.length - 1];
  if (last === ">&2" || last === "1>&2") {
    toStderr = true;
    words = words.slice(0, -1);
  }
  const [name, ...args] = words as [string, ...string[]];
  if (name === "exit") {
    const code = args[0] === undefined ? 0 : Number.parseInt(args[0], 10);
    if (!Number.isInteger(code)) {
      io.stderr(`sh: exit: Illegal number: ${args[0]}\n`);
      return { code: 2, exit: true };
    }
    return { code: ((code % 256) + 256) % 256, exit: true };
  }
  const sub: ProcessIO = toStderr ? { ...io, stdout: io.stderr } : io;
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.stderr(`sh: ${name}: not found\n`);
    return { code: 127, exit: false };
  }
  return { code: await cmd(args, sub), exit: false };
}

/**
 * Runs a fake command and resolves with its exit code. Unknown executables write the message a real container
 * runtime gives and exit with 127.
 */
export async function runFakeCommand(argv: string[], io: ProcessIO): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) return 0;
  const base = name.includes("/") ? name.slice(name.lastIndexOf("/") + 1) : name;
  const cmd = COMMANDS[base];
  if (!cmd) {
    io.stderr(
      `OCI runtime exec failed: exec failed: unable to start container process: exec: "${name}": executable file not found in $PATH: unknown\n`,
    );
    return 127;
  }
  try {
    return await cmd(args, io);
  } catch (err) {
    io.stderr(`${base}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** The program `kubectl attach` finds running in the container: a greeting, then `cat`. */
export async function runAttachedProcess(io: ProcessIO): Promise<number> {
  io.stdout(`attached to ${io.namespace}/${io.pod} container ${io.container}: echoing stdin\n`);
  return (COMMANDS.cat as Command)([], io);
}
