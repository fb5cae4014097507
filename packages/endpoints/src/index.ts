export { deepEqual, FrozenMap, FrozenSet } from "./collections.js";
export type { EndpointsErrorCode, ResolveErrorDetails } from "./errors.js";
export { ENDPOINTS_ERROR_CODES } from "./errors.js";
export type {
  ContainerPortInfo,
  EndpointSliceObject,
  KubeObject,
  LoadBalancerIngress,
  NodeAddress,
  NodeInfo,
  NodeObject,
  ObjectMeta,
  PodInfo,
  PodObject,
  ServiceInfo,
  ServiceObject,
  ServicePortInfo,
  SliceInfo,
} from "./objects.js";
export {
  DEFAULT_KUBELET_PORT,
  SERVICE_NAME_LABEL,
  toNodeInfo,
  toPodInfo,
  toServiceInfo,
  toSliceInfo,
  ZONE_LABEL,
} from "./objects.js";
export type {
  LookupAll,
  ProxyId,
  ProxyKind,
  ResolvedNode,
  ResolvedPod,
  ResolvedServiceEndpoint,
  ResolveNodeOptions,
  ServiceLookup,
  ServiceLookupOptions,
} from "./resolve.js";
export {
  checkProxyableHost,
  DEFAULT_PREFERRED_ADDRESS_TYPES,
  isProxyableIP,
  joinHostPort,
  lookupService,
  resolveNode,
  resolvePod,
  resolveService,
  splitSchemeNamePort,
} from "./resolve.js";
export type { ChangeSet, KeyDiff, SnapshotDiff, TrackedKind } from "./snapshot.js";
export {
  ChangeTracker,
  diffSnapshots,
  EMPTY_CHANGES,
  endpointKey,
  mergeEndpointSlices,
  parseServicePortName,
  readyEndpoints,
  Snapshot,
  servicePortName,
  usableEndpoints,
} from "./snapshot.js";
export type {
  BackoffOptions,
  EndpointsWatcherOptions,
  InformerStatus,
  ResourceWatchOptions,
  WatchSelection,
} from "./watcher.js";
export { backoffDelayMs, DEFAULT_BACKOFF, EndpointsWatcher } from "./watcher.js";
