import type { TestApiServer } from "../src/index.js";

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test helper over arbitrary JSON
  json: any;
}

/** A request to a plain-HTTP test server with the admin token. */
export async function call(
  server: TestApiServer,
  method: string,
  path: string,
  opts: { body?: unknown; raw?: string; contentType?: string; accept?: string; token?: string | null } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? server.adminToken}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
  if (opts.accept) headers.accept = opts.accept;
  const res = await fetch(`${server.url}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Open a watch and collect its events until `stop()` or the server ends it. */
export function openWatch(server: TestApiServer, path: string) {
  const events: { type: string; object: Record<string, any> }[] = [];
  const controller = new AbortController();
  let ended = false;
  let status = 0;
  const done = (async () => {
    try {
      const res = await fetch(`${server.url}${path}`, {
        headers: { authorization: `Bearer ${server.adminToken}` },
        signal: controller.signal,
      });
      status = res.status;
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i = buf.indexOf("\n");
        while (i >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim() !== "") events.push(JSON.parse(line));
          i = buf.indexOf("\n");
        }
      }
    } catch {
      // aborted or connection dropped
    } finally {
      ended = true;
    }
  })();
  return {
    events,
    get ended() {
      return ended;
    },
    get status() {
      return status;
    },
    stop: async () => {
      controller.abort();
      await done;
    },
    done,
  };
}

export async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
