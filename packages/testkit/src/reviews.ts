/**
 * TokenReview (authentication.k8s.io/v1) and SubjectAccessReview (authorization.k8s.io/v1), with
 * answers a test configures: what a proxy or webhook in front of the cluster asks the API server.
 */

/** `status.user` of a TokenReview. */
export interface ReviewUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** The answer to a TokenReview: authenticated as `user`, or not (with an optional error). */
export type TokenReviewAnswer =
  | { authenticated: true; user: ReviewUser; audiences?: string[] }
  | { authenticated: false; error?: string };

/** Decides a TokenReview from its `spec.token` and `spec.audiences`. */
export type TokenReviewer = (
  token: string,
  audiences: readonly string[],
) => TokenReviewAnswer | Promise<TokenReviewAnswer>;

/** `spec` of a SubjectAccessReview. */
export interface SubjectAccessReviewSpec {
  user?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: {
    namespace?: string;
    verb?: string;
    group?: string;
    version?: string;
    resource?: string;
    subresource?: string;
    name?: string;
  };
  nonResourceAttributes?: { path?: string; verb?: string };
}

/** `status` of a SubjectAccessReview. */
export interface SubjectAccessReviewAnswer {
  allowed: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

/** Decides a SubjectAccessReview. */
export type SubjectAuthorizer = (
  spec: SubjectAccessReviewSpec,
) => SubjectAccessReviewAnswer | Promise<SubjectAccessReviewAnswer>;

/** How many reviews were answered (to check a caller's cache). */
export interface ReviewCounts {
  tokenReviews: number;
  subjectAccessReviews: number;
}

/** The test server's review state: the configured deciders and the counts. */
export class Reviews {
  readonly counts: ReviewCounts = { tokenReviews: 0, subjectAccessReviews: 0 };

  constructor(
    public tokenReviewer: TokenReviewer,
    public authorizer: SubjectAuthorizer,
  ) {}

  async tokenReview(body: { spec?: { token?: unknown; audiences?: unknown } }): Promise<unknown> {
    this.counts.tokenReviews++;
    const token = typeof body.spec?.token === "string" ? body.spec.token : "";
    const audiences = Array.isArray(body.spec?.audiences)
      ? body.spec.audiences.filter((a): a is string => typeof a === "string")
      : [];
    const answer =
      token === "" ? { authenticated: false as const } : await this.tokenReviewer(token, audiences);
    if (!answer.authenticated)
      return { authenticated: false, ...(answer.error ? { error: answer.error } : {}) };
    const u = answer.user;
    return {
      authenticated: true,
      user: {
        username: u.username,
        ...(u.uid !== undefined ? { uid: u.uid } : {}),
        groups: u.groups ?? [],
        ...(u.extra !== undefined ? { extra: u.extra } : {}),
      },
      audiences: answer.audiences ?? audiences,
    };
  }

  async subjectAccessReview(body: { spec?: SubjectAccessReviewSpec }): Promise<SubjectAccessReviewAnswer> {
    this.counts.subjectAccessReviews++;
    const answer = await this.authorizer(body.spec ?? {});
    return {
      allowed: answer.allowed,
      ...(answer.denied ? { denied: true } : {}),
      ...(answer.reason !== undefined ? { reason: answer.reason } : {}),
      ...(answer.evaluationError !== undefined ? { evaluationError: answer.evaluationError } : {}),
    };
  }
}

/** The default authorizer: allows everything, as the test server itself does. */
export const allowAll: SubjectAuthorizer = () => ({
  allowed: true,
  reason: "the test API server allows every authenticated user",
});
