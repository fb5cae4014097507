import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "@kproxy/core";
import { type ClusterConnection, loadConnection } from "@kproxy/kubeconfig";
import { TestApiServer } from "@kproxy/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authenticator, type ProxyAttributes, WebhookAuthorizer } from "../src/index.js";

describe("review caches", () => {
  let api: TestApiServer;
  let connection: ClusterConnection;
  let dir: string;
  const attrs: ProxyAttributes = {
    verb: "get",
    namespace: "ns",
    resource: "services",
    subresource: "proxy",
    name: "web",
  };

  beforeAll(async () => {
    api = await TestApiServer.start();
    dir = await mkdtemp(join(tmpdir(), "asp-auth-"));
    await api.writeKubeconfig(join(dir, "kubeconfig"));
    connection = await loadConnection({ kubeconfig: join(dir, "kubeconfig") });
  });
  afterAll(async () => {
    await connection.close();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps an allowed answer for the authorized TTL and a denied one for the unauthorized TTL", async () => {
    const clock = new ManualClock(1_000_000);
    let allow = true;
    api.setAuthorizer(() => ({ allowed: allow, reason: allow ? "" : "nope" }));
    const authz = new WebhookAuthorizer({
      connection,
      authorizedTtlMs: 60_000,
      unauthorizedTtlMs: 5_000,
      clock,
    });
    const user = { username: "u", groups: ["system:authenticated"] };
    const count = () => api.reviewCounts.subjectAccessReviews;
    const start = count();
    expect(await authz.authorize(user, attrs)).toEqual({ allowed: true, reason: "" });
    allow = false;
    clock.advance(59_000);
    expect(await authz.authorize(user, attrs)).toEqual({ allowed: true, reason: "" });
    expect(await authz.authorize({ ...user }, attrs)).toEqual({ allowed: true, reason: "" }); // same answer for an equal user
    expect(count() - start).toBe(1);
    clock.advance(2_000);
    expect(await authz.authorize(user, attrs)).toEqual({ allowed: false, reason: "nope" });
    allow = true;
    clock.advance(4_000);
    expect((await authz.authorize(user, attrs)).allowed).toBe(false);
    clock.advance(2_000);
    expect((await authz.authorize(user, attrs)).allowed).toBe(true);
    expect(count() - start).toBe(3);
    // Another name is another decision.
    await authz.authorize(user, { ...attrs, name: "other" });
    expect(count() - start).toBe(4);
  });

  /** Bearer tokens only, answers cached for 30 s. */
  const tokenAuthenticator = (clock: ManualClock) =>
    new Authenticator({ connection, tokenTtlMs: 30_000, anonymous: false, clientCertificates: false, clock });

  it("answers a connection's repeated token from its own memo, never for another token, only until the cache entry expires", async () => {
    const clock = new ManualClock(1_000_000);
    let revoked = false;
    api.setTokenReview((token) =>
      token === "good" && !revoked
        ? { authenticated: true, user: { username: "g", groups: [] } }
        : token === "other"
          ? { authenticated: true, user: { username: "o", groups: [] } }
          : { authenticated: false },
    );
    const authn = tokenAuthenticator(clock);
    const socket = {}; // one client connection
    const req = (token: string) =>
      ({ headers: { authorization: `Bearer ${token}` }, socket }) as unknown as IncomingMessage;
    const name = async (token: string) => (await authn.authenticate(req(token)))?.username;
    const start = api.reviewCounts.tokenReviews;
    const reviews = () => api.reviewCounts.tokenReviews - start;
    expect(await name("good")).toBe("g");
    expect(await name("good")).toBe("g");
    expect(reviews()).toBe(1);
    // Another token on the same connection is reviewed, and does not answer for the first.
    expect(await name("other")).toBe("o");
    expect(await name("bad")).toBeUndefined();
    expect(await name("good")).toBe("g");
    expect(reviews()).toBe(3);
    // Revoked: still the cached answer until the entry expires, then the new answer.
    revoked = true;
    clock.advance(29_000);
    expect(await name("good")).toBe("g");
    expect(reviews()).toBe(3);
    clock.advance(2_000);
    expect(await name("good")).toBeUndefined();
    expect(reviews()).toBe(4);
    // A cleared cache is not bypassed by the memo.
    revoked = false;
    clock.advance(11_000); // past the failure TTL
    expect(await name("good")).toBe("g");
    expect(await name("good")).toBe("g");
    const before = reviews();
    authn.tokens.clear();
    expect(await name("good")).toBe("g");
    expect(reviews()).toBe(before + 1);
  });

  it("makes concurrent identical TokenReviews once and caches them for the token TTL", async () => {
    const clock = new ManualClock(1_000_000);
    api.setTokenReview((token) =>
      token === "good"
        ? { authenticated: true, user: { username: "g", groups: ["x"] } }
        : { authenticated: false },
    );
    const authn = tokenAuthenticator(clock);
    const req = (token: string) =>
      ({ headers: { authorization: `Bearer ${token}` }, socket: {} }) as unknown as IncomingMessage;
    const start = api.reviewCounts.tokenReviews;
    const users = await Promise.all([1, 2, 3].map(() => authn.authenticate(req("good"))));
    expect(users.map((u) => u?.username)).toEqual(["g", "g", "g"]);
    expect(users[0]?.groups).toEqual(["x", "system:authenticated"]);
    expect(api.reviewCounts.tokenReviews - start).toBe(1);
    clock.advance(29_000);
    await authn.authenticate(req("good"));
    expect(api.reviewCounts.tokenReviews - start).toBe(1);
    clock.advance(2_000);
    await authn.authenticate(req("good"));
    expect(api.reviewCounts.tokenReviews - start).toBe(2);
    expect(await authn.authenticate(req("bad"))).toBeUndefined();
    expect(
      await authn.authenticate({
        headers: { authorization: "Basic eDp5" },
        socket: {},
      } as unknown as IncomingMessage),
    ).toBeUndefined();
  });
});
