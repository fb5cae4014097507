export type { ClusterConnection, LoadConnectionOptions } from "./connection.js";
export {
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_TOKEN_FILE_CACHE_MS,
  loadConnection,
  parseServer,
} from "./connection.js";
export type { ConnectionOptions } from "./flags.js";
export { CONNECTION_FLAGS, connectionOptionsFromFlags } from "./flags.js";
export { DEFAULT_IN_CLUSTER_DIR, DEFAULT_SERVER, kubeconfigFiles } from "./load.js";

/** The stable error codes this package throws (as KproxyError.code). */
export const KUBECONFIG_ERROR_CODES = Object.freeze([
  "KUBECONFIG_NOT_FOUND",
  "KUBECONFIG_UNREADABLE",
  "KUBECONFIG_INVALID",
  "CONTEXT_NOT_FOUND",
  "CLUSTER_NOT_FOUND",
  "USER_NOT_FOUND",
  "CREDENTIAL_FILE_NOT_FOUND",
  "EXEC_PLUGIN_FAILED",
  "NO_SERVER",
  "AUTH_CONFLICT",
  "INVALID_FLAG",
  "CONNECTION_CLOSED",
  "PROXY_INVALID",
] as const);
