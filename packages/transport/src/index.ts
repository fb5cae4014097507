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
  type HttpProbeOptions,
  httpProbe,
  type ProbeResult,
  type TcpProbeOptions,
  type TlsProbeOptions,
  tcpProbe,
} from "./probes.js";
export {
  encodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  type ParsedProxyHeader,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyAddresses,
  type ProxyHeader,
  type ProxyProtocolVersion,
  type ProxyTlv,
  parseProxyHeader,
  proxyAddressesOf,
  type ReadProxyHeaderOptions,
  readProxyHeader,
} from "./proxy-protocol.js";
export {
  type DialOptions,
  dialTcp,
  type Relay,
  type RelayEndReason,
  type RelayOptions,
  type RelayStats,
  relayTcp,
} from "./tcp-relay.js";
export {
  tunnelUpgrade,
  type UpgradeDial,
  type UpgradeRequest,
  type UpgradeResult,
  writeRawResponse,
} from "./upgrade.js";
