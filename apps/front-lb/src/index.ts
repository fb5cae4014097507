export {
  FrontLb,
  type FrontLbOptions,
  type FrontLbStatus,
  type StartedFrontLb,
  startFrontLb,
} from "./app.js";
export {
  type AcceptProxyProtocol,
  type AdminConfig,
  type ConfigIssue,
  configFromFlags,
  DEFAULT_ADMIN_ADDRESS,
  type DiscoveryConfig,
  type EndpointConfig,
  endpointKeyOf,
  FRONT_LB_FLAGS,
  type FrontLbConfig,
  HEALTH_DEFAULTS,
  type HealthCheckConfig,
  type HealthCheckType,
  LISTENER_DEFAULTS,
  type ListenerConfig,
  loadConfigFile,
  type OutlierConfig,
  parseConfigYaml,
  parseHostPort,
  type SendProxyProtocol,
  validateConfig,
} from "./config.js";
export { ClusterDiscovery, type DiscoveryStatus, readCache, saveCache } from "./discovery.js";
export { type EndpointSource, type EndpointStatus, FrontListener, type ListenerStatus } from "./listener.js";
export { type MainIO, main } from "./main.js";
export { type FrontLbMetrics, frontLbMetrics } from "./metrics.js";
export { renderStatsPage } from "./stats-page.js";
