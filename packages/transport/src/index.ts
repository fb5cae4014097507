export { type UpstreamErrorCode, upstreamError } from "./errors.js";
export { type ForwardRequest, type ForwardResult, forwardHttp, requestBody } from "./forward.js";
export {
  appendForwardedFor,
  buildUpstreamHeaders,
  connectionTokens,
  type FlatHeaders,
  filterResponseHeaders,
  HOP_BY_HOP_HEADERS,
  isHopByHop,
  isUpgradeRequest,
  type UpstreamHeaderOptions,
  type UpstreamHeaders,
} from "./headers.js";
export {
  tunnelUpgrade,
  type UpgradeDial,
  type UpgradeRequest,
  type UpgradeResult,
  writeRawResponse,
} from "./upgrade.js";
