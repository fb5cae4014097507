import { splitHostPort } from "@kproxy/transport";
import { describe, expect, it } from "vitest";
import { makeRegexpArray } from "../src/regex.js";
import { filterHost, Router } from "../src/routing.js";

const filter = {
  acceptPaths: makeRegexpArray("^.*"),
  rejectPaths: makeRegexpArray("^/api/.*/pods/.*/exec"),
  acceptHosts: makeRegexpArray("^localhost$,^\\[::1\\]$"),
  rejectMethods: makeRegexpArray("^$"),
  keepIPv6Brackets: false,
};

describe("routing like kubectl", () => {
  it("splits host and port like net.SplitHostPort", () => {
    expect(splitHostPort("a:1")).toEqual({ host: "a", port: "1" });
    expect(splitHostPort("[::1]:8001")).toEqual({ host: "::1", port: "8001" });
    expect(splitHostPort("[::1]")).toBeUndefined();
    expect(splitHostPort("a:b:c")).toBeUndefined();
    expect(filterHost("[::1]:8001", false)).toBe("::1");
    expect(filterHost("[::1]:8001", true)).toBe("[::1]");
    expect(filterHost("localhost", false)).toBe("localhost");
  });

  it("strips prefixes that do not start with /api and keeps the query", () => {
    const r = new Router({ apiPrefix: "/custom/", wwwPrefix: undefined, filter, serverPath: "" });
    expect(r.route("GET", "/custom/api/v1/pods?watch=1", "localhost")).toMatchObject({
      kind: "proxy",
      upstreamPath: "/api/v1/pods?watch=1",
    });
    expect(r.route("GET", "/custom", "localhost")).toEqual({ kind: "redirect", location: "/custom/" });
    expect(r.route("GET", "/other", "localhost")).toEqual({ kind: "not-found" });
    const api = new Router({ apiPrefix: "/api/", wwwPrefix: undefined, filter, serverPath: "" });
    expect(api.route("GET", "/api/v1", "localhost")).toMatchObject({ upstreamPath: "/api/v1" });
  });

  it("redirects unclean paths and filters the decoded path", () => {
    const r = new Router({ apiPrefix: "/", wwwPrefix: "/static/", filter, serverPath: "/k8s/c" });
    expect(r.route("GET", "/a//b/../c?x=1", "localhost")).toEqual({ kind: "redirect", location: "/a/c?x=1" });
    expect(r.route("POST", "/api/v1/namespaces/d/pods/p/exec", "localhost").kind).toBe("forbidden");
    expect(r.route("POST", "/api/v1/namespaces/d/pods/p/%65xec", "localhost").kind).toBe("forbidden");
    expect(r.route("GET", "/api/v1/pods", "evil").kind).toBe("forbidden");
    expect(r.route("GET", "/api/v1/pods", "localhost")).toMatchObject({ upstreamPath: "/k8s/c/api/v1/pods" });
    expect(r.route("GET", "/static/x.txt", "evil")).toMatchObject({ kind: "static", path: "/x.txt" });
    expect(r.route("GET", "/api/%zz", "localhost").kind).toBe("bad-request");
    expect(r.route("GET", "http://localhost/api", "evil")).toMatchObject({
      kind: "proxy",
      host: "localhost",
    });
  });
});
