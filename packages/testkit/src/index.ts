export { blackholePort } from "./blackhole.js";
export type { FreshNodeOptions } from "./fresh-node.js";
export { runInFreshNode } from "./fresh-node.js";
export type { KubeconfigOptions } from "./kubeconfig.js";
export { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from "./patch.js";
export type { CertificateAuthority, ClientCertOptions, KeyPair, ServerCertOptions } from "./pki.js";
export { createCertificateAuthority } from "./pki.js";
export type { ResourceInfo } from "./resources.js";
export { RESOURCES } from "./resources.js";
export type {
  ReviewCounts,
  ReviewUser,
  SubjectAccessReviewAnswer,
  SubjectAccessReviewSpec,
  SubjectAuthorizer,
  TokenReviewAnswer,
  TokenReviewer,
} from "./reviews.js";
export { parseSeed } from "./seed.js";
export { matchesLabels, parseLabelSelector } from "./selectors.js";
export type {
  FailMatch,
  HealthCheck,
  ListOptions,
  PatchType,
  TestApiServerOptions,
  TokenUser,
} from "./server.js";
export { TestApiServer } from "./server.js";
export type { Status, StatusDetails, StatusReason } from "./status.js";
export { ApiError } from "./status.js";
export type { DeleteOptions, KObject, ObjectMeta } from "./store.js";
