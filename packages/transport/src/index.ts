export { type UpstreamErrorCode, upstreamError } from "./errors.js";
export {
  FastConnection,
  type FastForward,
  type FastForwardResult,
  FastHttpServer,
  type FastHttpServerOptions,
  httpDate,
  isDirectDispatcher,
  type ResponseBodyRewrite,
  UpstreamConnection,
  UpstreamPool,
  type UpstreamPoolOptions,
} from "./fast-http.js";
export { type ForwardRequest, type ForwardResult, forwardHttp, requestBody } from "./forward.js";
export {
  cleanPath,
  escapedPath,
  escapeGoPath,
  formatGoUrl,
  type GoUrl,
  joinPath,
  joinPreservingTrailingSlash,
  parseGoUrl,
} from "./gourl.js";
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
export { HTML_URL_ATTRIBUTES, rewriteHtml } from "./html.js";
export {
  type BodyFraming,
  bodyFraming,
  ChunkedScanner,
  type ChunkPayload,
  connectionTokensOf,
  findHeadEnd,
  HttpParseError,
  leadingEmptyLines,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
  statusLine,
} from "./http1.js";
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
  CORS_RESPONSE_HEADERS,
  forwardedUri,
  isRewritableEncoding,
  mediaTypeOf,
  REWRITE_ERROR_CODES,
  type RewriteContext,
  RewritingDispatcher,
  type RewritingOptions,
  rewriteHtmlBody,
  rewriteLink,
  rewriteLocation,
  rewriteUrl,
  rewritingDispatcher,
  stripCorsHeaders,
} from "./rewrite.js";
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
