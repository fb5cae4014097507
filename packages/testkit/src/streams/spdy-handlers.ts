import type { Logger } from "@kproxy/core";
import { type ProcessIO, runAttachedProcess, runFakeCommand, StdinQueue } from "./commands.js";
import type { PodStreamContext } from "./index.js";
import { type ExecOptions, parsePort } from "./options.js";
import { headerValue, RstStatus, type SpdySession, type SpdyStream } from "./spdy.js";
import { exitCodeStatus, successStatus } from "./status.js";
import { openPortConnection } from "./target.js";

/** SPDY sub-protocols (X-Stream-Protocol-Version) for exec and attach, best first. */
export const SPDY_EXEC_PROTOCOLS: readonly string[] = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
export const SPDY_PORTFORWARD_PROTOCOL = "portforward.k8s.io";

/** How long the client has to open all the streams a request needs. */
const STREAM_CREATION_TIMEOUT_MS = 30_000;

interface PortForwardPair {
  error?: SpdyStream;
  data?: SpdyStream;
  started: boolean;
}

/**
 * Port-forward over a SPDY session (protocol portforward.k8s.io): the client opens, per connection, an error
 * stream and a data stream carrying headers streamType, port and requestID. Bytes of the data stream go to the
 * pod's port and back; failures are written on the error stream; both end when the port connection ends.
 */
export function serveSpdyPortForward(session: SpdySession, ctx: PodStreamContext, logger: Logger): void {
  const pairs = new Map<string, PortForwardPair>();

  session.on("stream", (stream) => {
    stream.on("error", (err) => logger.debug("portforward(spdy): stream error", { err }));
    const type = headerValue(stream.headers, "streamtype");
    const portHeader = headerValue(stream.headers, "port");
    const requestId = headerValue(stream.headers, "requestid") ?? `port:${portHeader ?? ""}`;
    if (type !== "error" && type !== "data") {
      logger.info("portforward(spdy): refusing stream of unknown type", { type });
      stream.reset(RstStatus.PROTOCOL_ERROR);
      return;
    }
    void stream.reply({});
    const pair = pairs.get(requestId) ?? { started: false };
    pairs.set(requestId, pair);
    if (type === "error") {
      pair.error = stream;
      stream.resume(); // the client sends nothing on it
    } else {
      pair.data = stream;
    }
    const port = parsePort(portHeader);
    if (port === undefined) {
      const message = `invalid port header ${JSON.stringify(portHeader ?? "")}: must be an integer between 1 and 65535`;
      logger.info("portforward(spdy): bad request", { message });
      if (pair.error && !pair.error.writableEnded) pair.error.end(message);
      if (type === "data") stream.reset(RstStatus.PROTOCOL_ERROR);
      pairs.delete(requestId);
      return;
    }
    if (type === "data" && !pair.started) {
      pair.started = true;
      startPortForward(ctx, port, pair, logger, () => pairs.delete(requestId));
    }
  });
}

function startPortForward(
  ctx: PodStreamContext,
  port: number,
  pair: PortForwardPair,
  logger: Logger,
  done: () => void,
): void {
  const data = pair.data as SpdyStream;
  const conn = openPortConnection(ctx, port);
  let finished = false;
  const finish = (message?: string): void => {
    if (finished) return;
    finished = true;
    if (message && pair.error && !pair.error.writableEnded) pair.error.write(message);
    if (pair.error && !pair.error.writableEnded) pair.error.end();
    if (!data.writableEnded && !data.destroyed) data.end();
    done();
  };
  conn.ready.catch((err: Error) => {
    logger.info("portforward(spdy): connection failed", { port, err });
    finish(err.message);
    conn.stream.destroy();
  });
  conn.stream.on("data", (chunk: Buffer) => {
    if (!data.destroyed && !data.writableEnded) {
      if (!data.write(chunk)) {
        conn.stream.pause();
        data.once("drain", () => conn.stream.resume());
      }
    }
  });
  conn.stream.on("end", () => finish());
  conn.stream.on("error", (err) => {
    // Errors before the connection is made are reported by the rejection of `ready`.
    void conn.ready.then(
      () => {
        logger.debug("portforward(spdy): port connection error", { port, err });
        finish(`error forwarding port ${port} to pod ${ctx.namespace}/${ctx.pod}: ${err.message}`);
      },
      () => {},
    );
  });
  data.on("data", (chunk: Buffer) => {
    if (!conn.stream.destroyed && !conn.stream.writableEnded) conn.stream.write(chunk);
  });
  data.on("end", () => {
    if (!conn.stream.destroyed) conn.stream.end();
  });
  data.on("close", () => {
    // A reset by the client (or a torn-down session) ends the connection to the port.
    if (!data.readableEnded) conn.stream.destroy();
    finish();
  });
}

/**
 * Exec or attach over a SPDY session: the client opens streams typed error, stdin, stdout, stderr and resize (as
 * its options require); once they are all there the fake command runs. The exit status is written on the error
 * stream (a Status JSON for v4), then all streams end.
 */
export function serveSpdyExec(
  session: SpdySession,
  protocol: string,
  opts: ExecOptions,
  target: { namespace: string; pod: string; attach: boolean },
  logger: Logger,
): void {
  const version = protocol === "channel.k8s.io" ? 1 : Number(protocol.slice(1, 2));
  const expected = new Set<string>(["error"]);
  if (opts.stdin) expected.add("stdin");
  if (opts.stdout) expected.add("stdout");
  if (opts.stderr) expected.add("stderr");
  if (opts.tty && version >= 3) expected.add("resize");
  const streams = new Map<string, SpdyStream>();
  let started = false;

  const timer = setTimeout(() => {
    if (started) return;
    logger.info("exec(spdy): timed out waiting for the client to create streams", {
      missing: [...expected].filter((t) => !streams.has(t)),
    });
    session.destroy();
  }, STREAM_CREATION_TIMEOUT_MS);
  timer.unref();
  session.on("close", () => clearTimeout(timer));

  session.on("stream", (stream) => {
    stream.on("error", (err) => logger.debug("exec(spdy): stream error", { err }));
    const type = headerValue(stream.headers, "streamtype") ?? "";
    if (!expected.has(type) || streams.has(type) || started) {
      logger.info("exec(spdy): refusing unexpected stream", { type });
      stream.reset(RstStatus.PROTOCOL_ERROR);
      return;
    }
    void stream.reply({});
    streams.set(type, stream);
    if (type !== "stdin") stream.resume(); // resize messages and nothing else are read
    if (streams.size === expected.size) {
      started = true;
      clearTimeout(timer);
      run();
    }
  });

  const run = (): void => {
    const abort = new AbortController();
    session.on("close", () => abort.abort());
    const stdin = new StdinQueue();
    const stdinStream = streams.get("stdin");
    if (stdinStream) {
      stdinStream.on("data", (c: Buffer) => stdin.push(c));
      stdinStream.on("end", () => stdin.end());
      stdinStream.on("close", () => stdin.end());
    } else {
      stdin.end();
    }
    const write = (type: string, d: string | Buffer): void => {
      const s = streams.get(type);
      if (s && !s.writableEnded && !s.destroyed) s.write(d);
    };
    const io: ProcessIO = {
      stdin,
      stdout: (d) => write("stdout", d),
      stderr: (d) => write(opts.tty ? "stdout" : "stderr", d),
      signal: abort.signal,
      pod: target.pod,
      namespace: target.namespace,
      container: opts.container,
      tty: opts.tty,
    };
    const proc = target.attach ? runAttachedProcess(io) : runFakeCommand(opts.command, io);
    void proc
      .catch(() => 1)
      .then((code) => {
        if (session.isClosed) return;
        const error = streams.get("error");
        if (version >= 4) {
          const status =
            code === 0 ? successStatus() : exitCodeStatus(target.attach ? ["attach"] : opts.command, code);
          error?.write(JSON.stringify(status));
        } else if (code !== 0) {
          error?.write(`command terminated with non-zero exit code: exit code ${code}`);
        }
        for (const type of ["stdout", "stderr", "error"]) {
          const s = streams.get(type);
          if (s && !s.writableEnded && !s.destroyed) s.end();
        }
        // The client closes the connection once it has read everything; don't wait forever.
        const t = setTimeout(() => session.destroy(), 10_000);
        t.unref();
        session.on("close", () => clearTimeout(t));
      });
  };
}
