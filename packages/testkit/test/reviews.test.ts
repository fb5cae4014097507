import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestApiServer } from "../src/index.js";
import { call } from "./helpers.js";

describe("TokenReview and SubjectAccessReview", () => {
  let server: TestApiServer;
  beforeAll(async () => {
    server = await TestApiServer.start({
      tls: false,
      tokens: { "alice-token": { user: "alice", groups: ["devs"] } },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  const tokenReview = (token: string) =>
    call(server, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
    });
  const sar = (spec: unknown) =>
    call(server, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec },
    });

  it("authenticates the server's own tokens by default", async () => {
    const ok = await tokenReview("alice-token");
    expect(ok.status).toBe(201);
    expect(ok.json.kind).toBe("TokenReview");
    expect(ok.json.status).toMatchObject({
      authenticated: true,
      user: { username: "alice", groups: ["devs", "system:authenticated"] },
    });
    expect((await tokenReview("nope")).json.status).toEqual({ authenticated: false });
  });

  it("answers with the configured reviewer and authorizer, and counts reviews", async () => {
    const before = server.reviewCounts;
    server.setTokenReview((token) =>
      token === "t1"
        ? { authenticated: true, user: { username: "bob", uid: "u1", groups: ["g"], extra: { k: ["v"] } } }
        : { authenticated: false, error: "token expired" },
    );
    server.setAuthorizer((spec) =>
      spec.user === "bob" && spec.resourceAttributes?.resource === "services"
        ? { allowed: true }
        : { allowed: false, reason: "no rule" },
    );
    expect((await tokenReview("t1")).json.status.user).toEqual({
      username: "bob",
      uid: "u1",
      groups: ["g"],
      extra: { k: ["v"] },
    });
    expect((await tokenReview("t2")).json.status).toEqual({ authenticated: false, error: "token expired" });
    const allowed = await sar({
      user: "bob",
      resourceAttributes: { verb: "get", resource: "services", subresource: "proxy" },
    });
    expect(allowed.json.status).toEqual({ allowed: true });
    const denied = await sar({ user: "eve", resourceAttributes: { verb: "get", resource: "services" } });
    expect(denied.json.status).toEqual({ allowed: false, reason: "no rule" });
    expect(server.reviewCounts.tokenReviews - before.tokenReviews).toBe(2);
    expect(server.reviewCounts.subjectAccessReviews - before.subjectAccessReviews).toBe(2);
  });

  it("is create-only and needs authentication", async () => {
    expect((await call(server, "GET", "/apis/authentication.k8s.io/v1/tokenreviews")).status).toBe(405);
    const anon = await call(server, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      token: null,
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "x" } },
    });
    expect(anon.status).toBe(401);
  });
});
