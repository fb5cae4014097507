export {
  ALL_FLAGS,
  DEFAULT_ACCEPT_HOSTS,
  DEFAULT_ACCEPT_PATHS,
  DEFAULT_PORT,
  DEFAULT_REJECT_METHODS,
  DEFAULT_REJECT_PATHS,
  PROXY_FLAGS,
  type ProxyConfig,
  proxyConfigFromFlags,
} from "./config.js";
export { type MainIO, main } from "./main.js";
export { compileGoRegexp, makeRegexpArray, matchesAny } from "./regex.js";
export {
  type FilterRules,
  filterAccepts,
  filterHost,
  normalizePrefix,
  type Route,
  Router,
  type RoutingRules,
} from "./routing.js";
export {
  type AccessLogEntry,
  KubectlProxy,
  type KubectlProxyOptions,
  type UpstreamConnection,
} from "./server.js";
