import { describe, expect, it } from "vitest";
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE, startAdminServer } from "./index.js";

describe("MetricsRegistry (text exposition 0.0.4)", () => {
  it("exposes counters, gauges and histograms with labels exactly as Prometheus parses them", () => {
    const r = new MetricsRegistry();
    const c = r.counter("kproxy_x_connections_total", "Connections accepted.", ["listener", "endpoint"]);
    c.inc({ listener: "api", endpoint: "10.0.0.1:6443" });
    c.labels({ listener: "api", endpoint: "10.0.0.1:6443" }).inc(2);
    const g = r.gauge("kproxy_x_up", "Up.\nSecond line \\ here", ["endpoint"]);
    g.set({ endpoint: 'we"ird\\\nname' }, 1);
    const h = r.histogram("kproxy_x_check_duration_seconds", "Check latency.", {
      labelNames: ["endpoint"],
      buckets: [0.1, 1],
    });
    h.observe({ endpoint: "a" }, 0.05);
    h.observe({ endpoint: "a" }, 0.5);
    h.observe({ endpoint: "a" }, 3);
    const plain = r.counter("kproxy_x_reloads_total", "Reloads.");
    plain.inc();
    expect(r.expose()).toBe(
      [
        "# HELP kproxy_x_connections_total Connections accepted.",
        "# TYPE kproxy_x_connections_total counter",
        'kproxy_x_connections_total{listener="api",endpoint="10.0.0.1:6443"} 3',
        "# HELP kproxy_x_up Up.\\nSecond line \\\\ here",
        "# TYPE kproxy_x_up gauge",
        'kproxy_x_up{endpoint="we\\"ird\\\\\\nname"} 1',
        "# HELP kproxy_x_check_duration_seconds Check latency.",
        "# TYPE kproxy_x_check_duration_seconds histogram",
        'kproxy_x_check_duration_seconds_bucket{endpoint="a",le="0.1"} 1',
        'kproxy_x_check_duration_seconds_bucket{endpoint="a",le="1"} 2',
        'kproxy_x_check_duration_seconds_bucket{endpoint="a",le="+Inf"} 3',
        'kproxy_x_check_duration_seconds_sum{endpoint="a"} 3.55',
        'kproxy_x_check_duration_seconds_count{endpoint="a"} 3',
        "# HELP kproxy_x_reloads_total Reloads.",
        "# TYPE kproxy_x_reloads_total counter",
        "kproxy_x_reloads_total 1",
        "",
      ].join("\n"),
    );
  });

  it("runs collect hooks before exposing and forgets removed series", () => {
    const r = new MetricsRegistry();
    const g = r.gauge("active", "Active.", ["k"]);
    let n = 0;
    r.onCollect(() => g.set({ k: "a" }, ++n));
    expect(r.expose()).toContain('active{k="a"} 1');
    expect(r.expose()).toContain('active{k="a"} 2');
    g.set({ k: "b" }, 5);
    g.remove({ k: "b" });
    expect(r.expose()).not.toContain('k="b"');
  });

  it("rejects bad names, wrong labels, decreasing counters and conflicting registrations", () => {
    const r = new MetricsRegistry();
    expect(() => r.counter("bad-name", "x")).toThrow(expect.objectContaining({ code: "METRICS_INVALID" }));
    expect(() => r.histogram("h", "x", { labelNames: ["le"] })).toThrow(/invalid label name "le"/);
    const c = r.counter("c_total", "x", ["a"]);
    expect(() => c.inc({ b: "1" })).toThrow(/takes labels \{a\}/);
    c.inc({ a: "1" });
    // Also once the series exists: an extra or a missing label is an error, not that series.
    expect(() => c.inc({ a: "1", b: "2" })).toThrow(/takes labels \{a\}, got \{a, b\}/);
    expect(() => c.inc()).toThrow(/takes labels \{a\}/);
    expect(c.get({ a: "1" })).toBe(1);
    expect(() => c.inc({ a: "1" }, -1)).toThrow(/only increase/);
    expect(r.counter("c_total", "x", ["a"])).toBe(c);
    expect(() => r.gauge("c_total", "x", ["a"])).toThrow(/already registered/);
    expect(() => r.histogram("h2", "x", { buckets: [1, 1] })).toThrow(/increasing/);
  });
});

describe("startAdminServer", () => {
  it("serves /healthz, /readyz, /metrics and extra routes; 404 and 405 otherwise", async () => {
    const registry = new MetricsRegistry();
    registry.counter("kproxy_t_total", "T.").inc();
    let ready: boolean | { ok: boolean; reason: string } = { ok: false, reason: "no endpoints" };
    const admin = await startAdminServer({
      port: 0,
      metrics: registry,
      ready: () => ready,
      routes: {
        "/status": (_req, res) => {
          res.setHeader("content-type", "application/json");
          res.end('{"ok":true}');
        },
        "/boom": () => {
          throw new Error("secret detail");
        },
      },
    });
    try {
      const get = async (p: string, init?: RequestInit) => {
        const res = await fetch(admin.url + p, init);
        return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
      };
      expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
      expect(await get("/readyz")).toMatchObject({ status: 503, body: "no endpoints\n" });
      ready = true;
      expect(await get("/readyz")).toMatchObject({ status: 200 });
      expect(await get("/metrics")).toMatchObject({
        status: 200,
        type: PROMETHEUS_CONTENT_TYPE,
        body: expect.stringContaining("kproxy_t_total 1\n"),
      });
      expect(await get("/status")).toMatchObject({ status: 200, body: '{"ok":true}' });
      const boom = await get("/boom");
      expect(boom.status).toBe(500);
      expect(boom.body).not.toContain("secret");
      expect((await get("/nope")).status).toBe(404);
      expect((await get("/healthz", { method: "POST" })).status).toBe(405);
    } finally {
      await admin.close();
    }
  });

  it("fails with ADMIN_LISTEN_FAILED when the port is taken", async () => {
    const a = await startAdminServer({ port: 0 });
    try {
      await expect(startAdminServer({ port: a.port })).rejects.toMatchObject({ code: "ADMIN_LISTEN_FAILED" });
    } finally {
      await a.close();
    }
  });
});
