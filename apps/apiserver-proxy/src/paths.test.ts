import type { FlagValues } from "@kproxy/core";
import { parseFlags } from "@kproxy/runtime";
import { describe, expect, it } from "vitest";
import { ALL_FLAGS, configFromFlags } from "./config.js";
import { hasDryRun, parseProxyPath, parseProxyPathCached, pathPrepend, verbOf } from "./paths.js";

function parsed(url: string) {
  const p = parseProxyPath(url);
  if (!p.ok) throw new Error(`not a proxy path: ${url}`);
  return p.request;
}

describe("parseProxyPath (upstream's getRequestOptions + JoinPreservingTrailingSlash)", () => {
  it("splits services, pods and nodes URLs", () => {
    expect(parsed("/api/v1/namespaces/ns/services/https:web:443/proxy/a/b?x=1")).toMatchObject({
      kind: "service",
      namespace: "ns",
      id: "https:web:443",
      backendPath: "/a/b",
      rawQuery: "x=1",
    });
    expect(parsed("/api/v1/namespaces/ns/pods/p-0:8080/proxy/")).toMatchObject({
      kind: "pod",
      id: "p-0:8080",
      backendPath: "/",
    });
    expect(parsed("/api/v1/nodes/n1:10250/proxy/metrics")).toMatchObject({
      kind: "node",
      namespace: undefined,
      backendPath: "/metrics",
    });
  });

  it("cleans the sub-path, keeps a trailing slash, decodes %2F, and has no path without a sub-path", () => {
    expect(parsed("/api/v1/namespaces/ns/services/s/proxy/a//b/../c/").backendPath).toBe("/a/c/");
    expect(parsed("/api/v1/namespaces/ns/services/s/proxy/a%2Fb").backendPath).toBe("/a/b");
    expect(parsed("/api/v1/namespaces/ns/services/s/proxy/../../etc").backendPath).toBe("/etc");
    expect(parsed("/api/v1/namespaces/ns/services/s/proxy").backendPath).toBe("");
    expect(parsed("/api/v1/namespaces/ns/services/s/proxy/").backendPath).toBe("/");
  });

  it("rejects other URLs (404) and undecodable paths (400)", () => {
    expect(parseProxyPath("/api/v1/namespaces/ns/services/s")).toEqual({ ok: false, status: 404 });
    expect(parseProxyPath("/api/v1/namespaces/ns/pods/p/exec")).toEqual({ ok: false, status: 404 });
    expect(parseProxyPath("/api/v1/namespaces/ns/configmaps/c/proxy/")).toEqual({ ok: false, status: 404 });
    expect(parseProxyPath("/apis/apps/v1/namespaces/ns/deployments/d/proxy/")).toEqual({
      ok: false,
      status: 404,
    });
    expect(parseProxyPath("/api/v1/namespaces/ns/services/s/proxy/%zz")).toEqual({ ok: false, status: 400 });
  });

  it("remembers parses with the same answers, also after many distinct targets", () => {
    const urls = [
      "/api/v1/namespaces/ns/services/https:web:443/proxy/a/b?x=1",
      "/api/v1/namespaces/ns/services/s/proxy/a//b/../c/",
      "/api/v1/namespaces/ns/services/s/proxy",
      "/api/v1/nodes/n1:10250/proxy/metrics",
      "/api/v1/namespaces/ns/services/s/proxy/%zz",
      "/apis/apps/v1/deployments",
    ];
    for (const url of urls) {
      const first = parseProxyPathCached(url);
      expect(first).toEqual(parseProxyPath(url));
      expect(parseProxyPathCached(url)).toBe(first);
    }
    // Many distinct targets (a scan): the memory is emptied when full, and answers stay right.
    for (let i = 0; i < 10_000; i++) parseProxyPathCached(`/api/v1/namespaces/ns/services/s${i}/proxy/`);
    const again = parseProxyPathCached(urls[0] as string);
    expect(again).toEqual(parseProxyPath(urls[0] as string));
  });

  it("computes PathPrepend, the RBAC verb and the dryRun check", () => {
    expect(pathPrepend("/api/v1/namespaces/ns/services/svc:http/proxy/metrics", "/metrics")).toBe(
      "/api/v1/namespaces/ns/services/svc:http/proxy",
    );
    expect(verbOf("HEAD")).toBe("get");
    expect(verbOf("POST")).toBe("create");
    expect(verbOf("OPTIONS")).toBe("");
    expect(hasDryRun("a=1&dryRun=All")).toBe(true);
    expect(hasDryRun("dryRun")).toBe(true);
    expect(hasDryRun("notdryRun=1")).toBe(false);
  });
});

describe("configFromFlags", () => {
  const cfg = (...argv: string[]) => configFromFlags(parseFlags(ALL_FLAGS, argv) as FlagValues);
  const tls = ["--tls-cert-file=c", "--tls-private-key-file=k"];

  it("has upstream-like defaults", () => {
    expect(cfg(...tls)).toMatchObject({
      bindAddress: "0.0.0.0",
      securePort: 8443,
      authorizationMode: "Webhook",
      balance: "random",
      tokenCacheTtlMs: 120_000,
      authorizedTtlMs: 300_000,
      unauthorizedTtlMs: 30_000,
      devAllowLoopbackEndpoints: false,
      preferredAddressTypes: ["Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"],
    });
  });

  it("rejects bad values with FLAG_INVALID naming the flag", () => {
    expect(() => cfg()).toThrow(/--tls-cert-file and --tls-private-key-file are required/);
    expect(() => cfg(...tls, "--authorization-mode=RBAC")).toThrow(
      /--authorization-mode must be Webhook or AlwaysAllow/,
    );
    expect(() => cfg(...tls, "--balance=fastest")).toThrow(/--balance: unknown balancing strategy "fastest"/);
    expect(() => cfg(...tls, "--kubelet-preferred-address-types=Public")).toThrow(
      /unknown address type "Public"/,
    );
    expect(() => cfg(...tls, "--secure-port=70000")).toThrow(/--secure-port must be a port number/);
    expect(() => cfg(...tls, "--kubelet-client-key=k")).toThrow(/go together/);
    expect(
      cfg(...tls, "--balance=round-robin", "--authorization-webhook-cache-authorized-ttl=10s")
        .authorizedTtlMs,
    ).toBe(10_000);
  });
});
