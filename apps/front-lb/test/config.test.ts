import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseFlags } from "@kproxy/runtime";
import { describe, expect, it } from "vitest";
import { configFromFlags, FRONT_LB_FLAGS, parseConfigYaml, validateConfig } from "../src/index.js";

const YAML = `# front-lb
admin:
  address: 127.0.0.1:9000
listeners:
  - name: api
    address: 0.0.0.0:6443
    balance: least-connections
    proxyProtocol: { send: v2 }
    drainTimeout: never
    endpoints:
      - 10.0.0.1:6443
      - address: "[fd00::2]:6443"
        weight: 3
    healthCheck:
      type: tcp
      interval: 500ms
      fall: 1
  - name: konnectivity
    address: :8132
    endpoints: [10.0.0.1:8132]
    healthCheck: { type: none }
`;

describe("YAML config", () => {
  it("fills defaults and keeps what is given", () => {
    const c = parseConfigYaml(YAML, "lb.yaml");
    expect(c.admin).toEqual({ host: "127.0.0.1", port: 9000 });
    const [api, konn] = c.listeners;
    expect(api).toMatchObject({
      name: "api",
      host: "0.0.0.0",
      port: 6443,
      balance: "least-connections",
      sendProxyProtocol: "v2",
      acceptProxyProtocol: "none",
      drainTimeoutMs: null,
      connectTimeoutMs: 5000,
      idleTimeoutMs: 600_000,
      retries: 2,
      endpoints: [
        { key: "10.0.0.1:6443", host: "10.0.0.1", port: 6443, weight: 1 },
        { key: "[fd00::2]:6443", host: "fd00::2", port: 6443, weight: 3 },
      ],
      healthCheck: { type: "tcp", intervalMs: 500, fall: 1, rise: 2, path: "/readyz", insecure: true },
    });
    expect(konn).toMatchObject({
      host: undefined,
      port: 8132,
      drainTimeoutMs: 30_000,
      healthCheck: { type: "none" },
    });
    expect(c.shutdownTimeoutMs).toBe(30_000);
  });

  it("points every error at its file, line and column", () => {
    const bad = `listeners:
  - name: api
    address: 127.0.0.1:6443
    balance: fastest
    endpoints:
      - 10.0.0.1
    healthCheck:
      interval: 2x
      rise: 0
    conectTimeout: 1s
`;
    let err: unknown;
    try {
      parseConfigYaml(bad, "/etc/front-lb.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "CONFIG_INVALID" });
    const message = (err as Error).message;
    expect(message).toContain('/etc/front-lb.yaml:4:14: listeners[0].balance: unknown strategy "fastest"');
    expect(message).toContain(
      '/etc/front-lb.yaml:6:9: listeners[0].endpoints[0]: invalid endpoint address "10.0.0.1"',
    );
    expect(message).toContain(
      '/etc/front-lb.yaml:8:17: listeners[0].healthCheck.interval: invalid duration "2x"',
    );
    expect(message).toContain(
      "/etc/front-lb.yaml:9:13: listeners[0].healthCheck.rise: must be an integer from 1 to 100, got 0",
    );
    expect(message).toContain(
      '/etc/front-lb.yaml:10:5: listeners[0].conectTimeout: unknown field "conectTimeout"',
    );
    expect(message).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("reports YAML syntax errors and duplicate keys with their line", () => {
    expect(() => parseConfigYaml("listeners:\n  - name: a\n    name: b\n", "x.yaml")).toThrow(
      /x\.yaml:3:5: .*[Mm]ap keys must be unique/,
    );
    expect(() => parseConfigYaml("listeners: [\n", "y.yaml")).toThrow(/y\.yaml:\d+:\d+: /);
  });

  it("refuses listeners without endpoints, duplicate names and addresses, and unreadable CA files", () => {
    const e = (raw: unknown) => {
      try {
        validateConfig(raw);
      } catch (err) {
        return (err as Error).message;
      }
      return "";
    };
    expect(e({ listeners: [{ address: "127.0.0.1:1" }] })).toContain("needs endpoints, discovery, or both");
    expect(e({})).toContain("at least one listener is required");
    expect(
      e({
        listeners: [
          { name: "a", address: "127.0.0.1:1", endpoints: ["1.1.1.1:1"] },
          { name: "a", address: "127.0.0.1:1", endpoints: ["1.1.1.1:1", "1.1.1.1:1"] },
        ],
      }),
    ).toMatch(/duplicate endpoint 1\.1\.1\.1:1[\s\S]*duplicate listener name "a"[\s\S]*used twice/);
    expect(
      e({
        listeners: [
          { address: "127.0.0.1:1", endpoints: ["a:1"], healthCheck: { ca: "/nonexistent/ca.crt" } },
        ],
      }),
    ).toContain("cannot read /nonexistent/ca.crt: ENOENT");
  });
});

describe("flags", () => {
  it("build one listener from flags", () => {
    const c = configFromFlags(
      parseFlags(FRONT_LB_FLAGS, [
        "--listen=127.0.0.1:7443",
        "--endpoint=10.0.0.1:6443",
        "--endpoint",
        "10.0.0.2:6443",
        "--balance=source-ip",
        "--health-check=tcp",
        "--health-interval=1s",
        "--drain-timeout=0s",
        "--send-proxy-protocol=v1",
        "--admin-address=",
      ]),
    );
    expect(c.admin).toBeUndefined();
    expect(c.listeners[0]).toMatchObject({
      name: "default",
      port: 7443,
      balance: "source-ip",
      drainTimeoutMs: 0,
      sendProxyProtocol: "v1",
      healthCheck: { type: "tcp", intervalMs: 1000 },
    });
    expect(c.listeners[0]!.endpoints.map((e) => e.key)).toEqual(["10.0.0.1:6443", "10.0.0.2:6443"]);
  });

  it("refuse listener flags next to --config, but let --admin-address override the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "front-lb-"));
    const file = join(dir, "lb.yaml");
    writeFileSync(file, YAML);
    expect(() =>
      configFromFlags(parseFlags(FRONT_LB_FLAGS, ["--config", file, "--endpoint=1.2.3.4:1"])),
    ).toThrow(expect.objectContaining({ code: "CONFIG_CONFLICT" }));
    const c = configFromFlags(
      parseFlags(FRONT_LB_FLAGS, ["--config", file, "--admin-address=127.0.0.1:9999"]),
    );
    expect(c.admin).toEqual({ host: "127.0.0.1", port: 9999 });
    expect(c.listeners).toHaveLength(2);
    expect(() => configFromFlags(parseFlags(FRONT_LB_FLAGS, []))).toThrow(/nothing to do/);
    expect(() =>
      configFromFlags(parseFlags(FRONT_LB_FLAGS, ["--config", join(dir, "missing.yaml")])),
    ).toThrow(expect.objectContaining({ code: "CONFIG_UNREADABLE" }));
  });
});
