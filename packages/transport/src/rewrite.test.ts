import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { deflateRawSync, gunzipSync, gzipSync, inflateRawSync } from "node:zlib";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanPath, escapeGoPath, formatGoUrl, joinPreservingTrailingSlash, parseGoUrl } from "./gourl.js";
import { rewriteHtml } from "./html.js";
import {
  forwardedUri,
  type RewriteContext,
  rewriteHtmlBody,
  rewriteLocation,
  rewritingDispatcher,
} from "./rewrite.js";

// The Transport of apimachinery's transport_test.go.
const ctx: RewriteContext = {
  scheme: "http",
  host: "foo.com",
  pathPrepend: "/proxy/node/node1:10250",
  backendHost: "mynode.com",
  requestHost: "mynode.com",
};

describe("Location rewriting (upstream vectors)", () => {
  it("prefixes host-relative and same-backend locations, leaves other sites alone", () => {
    expect(rewriteLocation("/redirected/target/", ctx)).toBe(
      "http://foo.com/proxy/node/node1:10250/redirected/target/",
    );
    expect(rewriteLocation("http://mynode.com/redirected/target/", ctx)).toBe(
      "http://foo.com/proxy/node/node1:10250/redirected/target/",
    );
    expect(rewriteLocation("http://example.com/redirected/target/", ctx)).toBe(
      "http://example.com/redirected/target/",
    );
  });

  it("keeps the request host when the Transport has no scheme and host", () => {
    const c: RewriteContext = {
      pathPrepend: "/proxy/node/node1:10250",
      backendHost: "mynode.com",
      requestHost: "10.0.0.1:8001",
    };
    expect(rewriteLocation("http://10.0.0.1:8001/redirected/target/", c)).toBe(
      "http://10.0.0.1:8001/proxy/node/node1:10250/redirected/target/",
    );
    // The usual bastion case: backend links become host-relative links under the prefix.
    expect(rewriteLocation("http://mynode.com/login?next=%2Fa#top", c)).toBe(
      "/proxy/node/node1:10250/login?next=%2Fa#top",
    );
  });

  it("does not add the prefix twice, keeps relative links", () => {
    expect(rewriteLocation("/proxy/node/node1:10250/already", ctx)).toBe(
      "http://foo.com/proxy/node/node1:10250/already",
    );
    expect(rewriteLocation("relative/path", ctx)).toBe("relative/path");
  });

  it("fails like Go on a Location that does not parse", () => {
    expect(() => rewriteLocation("/bad%zzescape", ctx)).toThrow(
      /^error trying to parse Location header: parse "\/bad%zzescape": invalid URL escape "%zz"$/,
    );
    expect(() => rewriteLocation("http://host:port/", ctx)).toThrow(/invalid port/);
  });
});

describe("HTML rewriting (upstream vectors)", () => {
  const rw = (html: string) => rewriteHtmlBody(Buffer.from(html, "latin1"), "", ctx).toString("latin1");

  it("rewrites absolute links of the listed tags and attributes only", () => {
    expect(rw('<a href="kubelet.log">kubelet.log</a>')).toBe('<a href="kubelet.log">kubelet.log</a>');
    expect(rw('<a href="/google.log">google.log</a>')).toBe(
      '<a href="http://foo.com/proxy/node/node1:10250/google.log">google.log</a>',
    );
    expect(rw('<a href="/google.log/">x</a>')).toBe(
      '<a href="http://foo.com/proxy/node/node1:10250/google.log/">x</a>',
    );
    expect(rw('<script src="http://google.com/x.js"/>')).toBe('<script src="http://google.com/x.js"/>');
    expect(rw('<script src="http://mynode.com/kubernetes.js"/>')).toBe(
      '<script src="http://foo.com/proxy/node/node1:10250/kubernetes.js"/>',
    );
    expect(rw('<img src="/kubernetes_abs.jpg"/>')).toBe(
      '<img src="http://foo.com/proxy/node/node1:10250/kubernetes_abs.jpg"/>',
    );
    expect(rw('<form action="/submit"><input formaction="/other" src="/i.png"></form>')).toBe(
      '<form action="http://foo.com/proxy/node/node1:10250/submit"><input formaction="http://foo.com/proxy/node/node1:10250/other" src="http://foo.com/proxy/node/node1:10250/i.png"></form>',
    );
    // not in the table: left as they are (values normalised, as Go re-serialises start tags)
    expect(rw("<div data-href='/x'>t</div>")).toBe('<div data-href="/x">t</div>');
    expect(rw('<img srcset="/a.png 2x">')).toBe('<img srcset="/a.png 2x">');
  });

  it("copies text, comments, doctype and script bodies byte for byte", () => {
    const doc =
      '<!DOCTYPE html>\n<!-- <a href="/c"> -->\n<script>var a = "<a href=\'/js\'>";</script>\n<p>caf\xc3\xa9 &amp; <b>bold</b></p>';
    expect(rw(doc)).toBe(doc);
  });

  it("normalises quoting and escaping of rewritten tags like Go's tokenizer", () => {
    expect(rw("<A HREF=/x?a=1&amp;b=2 title='it&#39;s'>")).toBe(
      '<a href="http://foo.com/proxy/node/node1:10250/x?a=1&amp;b=2" title="it&#39;s">',
    );
    expect(rw("<link rel=stylesheet href=/s.css>")).toBe(
      '<link rel="stylesheet" href="http://foo.com/proxy/node/node1:10250/s.css">',
    );
  });

  it("leaves a truncated tag at the end as it is", () => {
    expect(rewriteHtml('<p>ok</p><a href="/x', () => "changed")).toBe('<p>ok</p><a href="/x');
  });

  it("handles gzip and raw deflate bodies, and rejects a corrupt one", () => {
    const html = '<a href="/g">g</a>';
    const want = '<a href="http://foo.com/proxy/node/node1:10250/g">g</a>';
    expect(gunzipSync(rewriteHtmlBody(gzipSync(html), "gzip", ctx)).toString()).toBe(want);
    expect(inflateRawSync(rewriteHtmlBody(deflateRawSync(html), "deflate", ctx)).toString()).toBe(want);
    expect(() => rewriteHtmlBody(Buffer.from("not gzip"), "gzip", ctx)).toThrow(/error decoding gzip body/);
  });
});

describe("Go URL helpers", () => {
  it("escapes paths like URL.EscapedPath and X-Forwarded-Uri like upstream", () => {
    expect(escapeGoPath("/log.log\x00<script>alert(1)</script>")).toBe(
      "/log.log%00%3Cscript%3Ealert%281%29%3C/script%3E",
    );
    expect(forwardedUri("/proxy/node/node1:10250", "/logs/log.log\x00<script>alert(1)</script>")).toBe(
      "/proxy/node/node1:10250/logs/log.log%00%3Cscript%3Ealert%281%29%3C/script%3E",
    );
    expect(forwardedUri("/p", "/dir/")).toBe("/p/dir/");
    expect(cleanPath("/a//b/../c/.")).toBe("/a/c");
    expect(joinPreservingTrailingSlash("", "/a/../b/")).toBe("/b/");
    expect(formatGoUrl(parseGoUrl("http://u@h:1/a%2Fb?q=1#f"))).toBe("http://u@h:1/a%2Fb?q=1#f");
    expect(formatGoUrl(parseGoUrl("mailto:x@y"))).toBe("mailto:x@y");
  });
});

describe("rewritingDispatcher", () => {
  let server: Server;
  let origin: string;
  const agent = new Agent();
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === "/redirect") {
        res.writeHead(302, {
          Location: `http://${req.headers.host}/there`,
          "Access-Control-Allow-Origin": "*",
        });
        res.end();
      } else if (req.url === "/page.gz") {
        const body = gzipSync('<a href="/x">x</a>');
        res.writeHead(200, {
          "Content-Type": "text/html; charset=utf-8",
          "Content-Encoding": "gzip",
          "Content-Length": body.length,
        });
        res.end(body);
      } else if (req.url === "/big") {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end(`<a href="/x">${"y".repeat(5000)}</a>`);
      } else {
        res.writeHead(200, { "Content-Type": "text/plain", "Access-Control-Allow-Methods": "GET" });
        res.end('<a href="/x">');
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await agent.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const c = (): RewriteContext => ({
    pathPrepend: "/api/v1/namespaces/ns/services/web:http/proxy",
    backendHost: origin.slice(7),
    requestHost: "bastion.example:443",
  });

  it("rewrites Location and strips CORS headers; leaves other types alone", async () => {
    const d = rewritingDispatcher(agent, { context: c() });
    const r1 = await request(`${origin}/redirect`, { dispatcher: d });
    await r1.body.dump();
    expect(r1.statusCode).toBe(302);
    expect(r1.headers.location).toBe("/api/v1/namespaces/ns/services/web:http/proxy/there");
    expect(r1.headers["access-control-allow-origin"]).toBeUndefined();
    const r2 = await request(`${origin}/plain`, { dispatcher: d });
    expect(await r2.body.text()).toBe('<a href="/x">');
    expect(r2.headers["access-control-allow-methods"]).toBeUndefined();
  });

  it("rewrites gzip HTML with an exact Content-Length, decoded when the proxy asked for gzip", async () => {
    const r1 = await request(`${origin}/page.gz`, {
      dispatcher: rewritingDispatcher(agent, { context: c() }),
    });
    const raw = Buffer.from(await r1.body.arrayBuffer());
    expect(r1.headers["content-encoding"]).toBe("gzip");
    expect(Number(r1.headers["content-length"])).toBe(raw.length);
    expect(gunzipSync(raw).toString()).toBe(
      '<a href="/api/v1/namespaces/ns/services/web:http/proxy/x">x</a>',
    );
    const r2 = await request(`${origin}/page.gz`, {
      dispatcher: rewritingDispatcher(agent, { context: c(), requestedGzip: true }),
    });
    expect(r2.headers["content-encoding"]).toBeUndefined();
    expect(await r2.body.text()).toBe('<a href="/api/v1/namespaces/ns/services/web:http/proxy/x">x</a>');
  });

  it("passes pages over the size limit through unrewritten", async () => {
    const skipped: string[] = [];
    const r = await request(`${origin}/big`, {
      dispatcher: rewritingDispatcher(agent, {
        context: c(),
        maxHtmlBytes: 1000,
        onSkip: (s) => skipped.push(s),
      }),
    });
    const text = await r.body.text();
    expect(text.startsWith('<a href="/x">')).toBe(true);
    expect(text.length).toBe(5017);
    expect(skipped).toHaveLength(1);
  });
});
