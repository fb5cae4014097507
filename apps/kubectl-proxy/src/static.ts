import { createReadStream, type Stats } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as path from "node:path";
import { cleanPath, escapeGoPath, htmlEscape } from "@kproxy/transport";

const MIME: Record<string, string> = {
  ".avif": "image/avif",
  ".css": "text/css; charset=utf-8",
  ".gif": "image/gif",
  ".htm": "text/html; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".ico": "image/vnd.microsoft.icon",
  ".jpeg": "image/jpeg",
  ".jpg": "image/jpeg",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".mjs": "text/javascript; charset=utf-8",
  ".pdf": "application/pdf",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".webp": "image/webp",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".xml": "text/xml; charset=utf-8",
  ".yaml": "application/yaml",
};

function sniff(buf: Buffer): string {
  const head = buf.subarray(0, 512).toString("latin1").trimStart().toLowerCase();
  if (
    head.startsWith("<!doctype html") ||
    head.startsWith("<html") ||
    head.startsWith("<head") ||
    head.startsWith("<body")
  ) {
    return "text/html; charset=utf-8";
  }
  if (head.startsWith("<?xml")) return "text/xml; charset=utf-8";
  if (buf.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47]))) return "image/png";
  if (buf.subarray(0, 4).toString("latin1") === "%PDF") return "application/pdf";
  for (const b of buf.subarray(0, 512)) {
    if (b <= 0x08 || b === 0x0b || (b >= 0x0e && b <= 0x1a) || (b >= 0x1c && b <= 0x1f))
      return "application/octet-stream";
  }
  return "text/plain; charset=utf-8";
}

function textError(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff" });
  res.end(`${text}\n`);
}

function localRedirect(res: ServerResponse, location: string, rawQuery: string): void {
  res.writeHead(301, { Location: rawQuery !== "" ? `${location}?${rawQuery}` : location });
  res.end();
}

function errorFor(res: ServerResponse, err: unknown): void {
  const code = (err as { code?: string }).code;
  if (code === "ENOENT" || code === "ENOTDIR") textError(res, 404, "404 page not found");
  else if (code === "EACCES" || code === "EPERM") textError(res, 403, "403 Forbidden");
  else textError(res, 500, "500 Internal Server Error");
}

function notModified(req: IncomingMessage, st: Stats): boolean {
  const since = req.headers["if-modified-since"];
  if (since === undefined || (req.method !== "GET" && req.method !== "HEAD")) return false;
  const t = Date.parse(since);
  return !Number.isNaN(t) && Math.floor(st.mtimeMs / 1000) * 1000 <= t;
}

/**
 * Go's http.FileServer under StripPrefix, as kubectl's --www: files with Content-Type by
 * extension or sniffing, Last-Modified / If-Modified-Since, single byte ranges, index.html,
 * directory listings, and the same 301s for directories without "/" and for ".../index.html".
 * `urlPath` is the decoded path after the prefix, rooted ("/a/b.txt").
 */
export async function serveStatic(
  root: string,
  urlPath: string,
  rawQuery: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const clean = cleanPath(urlPath);
  if (urlPath.endsWith("/index.html")) {
    localRedirect(res, "./", rawQuery);
    return;
  }
  const file = path.join(root, ...clean.split("/").filter((s) => s !== ""));
  let st: Stats;
  try {
    st = await stat(file);
  } catch (err) {
    errorFor(res, err);
    return;
  }
  if (st.isDirectory()) {
    if (!urlPath.endsWith("/")) {
      localRedirect(res, `${path.posix.basename(urlPath)}/`, rawQuery);
      return;
    }
    const index = path.join(file, "index.html");
    const indexStat = await stat(index).catch(() => undefined);
    if (indexStat?.isFile()) {
      await serveFile(index, indexStat, req, res);
      return;
    }
    if (notModified(req, st)) {
      res.writeHead(304, { "Last-Modified": st.mtime.toUTCString() });
      res.end();
      return;
    }
    let entries: { name: string; dir: boolean }[];
    try {
      entries = (await readdir(file, { withFileTypes: true }))
        .map((e) => ({ name: e.name, dir: e.isDirectory() }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      errorFor(res, err);
      return;
    }
    let body = '<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n';
    for (const e of entries) {
      const name = e.dir ? `${e.name}/` : e.name;
      const href = escapeGoPath(name);
      body += `<a href="${htmlEscape(name.includes(":") ? `./${href}` : href)}">${htmlEscape(name)}</a>\n`;
    }
    body += "</pre>\n";
    res.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      "Last-Modified": st.mtime.toUTCString(),
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
  if (urlPath.endsWith("/")) {
    localRedirect(res, `../${path.posix.basename(urlPath)}`, rawQuery);
    return;
  }
  await serveFile(file, st, req, res);
}

async function serveFile(file: string, st: Stats, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let type = MIME[path.extname(file).toLowerCase()];
  if (type === undefined) {
    const handle = await open(file, "r").catch(() => undefined);
    if (handle === undefined) {
      textError(res, 403, "403 Forbidden");
      return;
    }
    const buf = Buffer.alloc(512);
    const { bytesRead } = await handle.read(buf, 0, 512, 0);
    await handle.close();
    type = sniff(buf.subarray(0, bytesRead));
  }
  const lastModified = st.mtime.toUTCString();
  if (notModified(req, st)) {
    res.writeHead(304, { "Last-Modified": lastModified });
    res.end();
    return;
  }
  let start = 0;
  let end = st.size - 1;
  let status = 200;
  const headers: Record<string, string> = {
    "Accept-Ranges": "bytes",
    "Content-Type": type,
    "Last-Modified": lastModified,
  };
  const range = req.headers.range;
  if (range !== undefined && /^bytes=\d*-\d*$/.test(range)) {
    const [a, b] = range.slice(6).split("-") as [string, string];
    if (a === "") {
      start = Math.max(0, st.size - Number(b));
    } else {
      start = Number(a);
      if (b !== "") end = Math.min(end, Number(b));
    }
    if (start >= st.size || (a === "" && b === "") || start > end) {
      res.writeHead(416, {
        "Content-Range": `bytes */${st.size}`,
        "Content-Type": "text/plain; charset=utf-8",
        "X-Content-Type-Options": "nosniff",
      });
      res.end("invalid range: failed to overlap\n");
      return;
    }
    status = 206;
    headers["Content-Range"] = `bytes ${start}-${end}/${st.size}`;
  }
  headers["Content-Length"] = String(Math.max(0, end - start + 1));
  res.writeHead(status, headers);
  if (req.method === "HEAD" || st.size === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(file, { start, end });
  stream.on("error", () => res.destroy());
  res.on("close", () => stream.destroy());
  stream.pipe(res);
}
