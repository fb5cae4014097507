export { type ApiserverProxyOptions, type RunningApiserverProxy, startApiserverProxy } from "./app.js";
export {
  Authenticator,
  type AuthenticatorOptions,
  type Authorizer,
  alwaysAllow,
  type Decision,
  forbiddenMessage,
  type ProxyAttributes,
  type ReviewConnection,
  TtlCache,
  type UserInfo,
  WebhookAuthorizer,
  type WebhookAuthorizerOptions,
} from "./auth.js";
export {
  ALL_FLAGS,
  type ApiserverProxyConfig,
  type AuthorizationMode,
  configFromFlags,
  PROXY_FLAGS,
} from "./config.js";
export { type MainIO, main } from "./main.js";
export { ProxyMetrics } from "./metrics.js";
export {
  hasDryRun,
  type ParsedPath,
  PROXY_METHODS,
  type ProxyRequest,
  parseProxyPath,
  pathPrepend,
  verbOf,
} from "./paths.js";
export { type AccessLogEntry, ProxyServer, type ProxyServerOptions } from "./server.js";
export { failure, type KubeStatus, statusFromError } from "./status.js";
export { type Target, type TargetKind, TargetResolver, type TargetResolverOptions } from "./targets.js";
export { labelExposition, mergeExpositions, WORKER_ENV } from "./workers.js";
