/**
 * The shared vocabulary of the control pipeline (kube-proxy's words) and the traffic pipeline
 * (Envoy's words): a service port has a set of endpoints that a balancer picks from.
 * Types only; values are built by @kproxy/endpoints and are always frozen.
 */

/** L4 protocol of a service port (Kubernetes `protocol`). */
export type Protocol = "TCP" | "UDP" | "SCTP";

/** EndpointSlice `addressType`. */
export type AddressType = "IPv4" | "IPv6" | "FQDN";

/**
 * kube-proxy's ServicePortName as text: `namespace/name:portName`. An unnamed port keeps the
 * colon (`default/web:`), exactly as kube-proxy prints it.
 */
export type ServicePortName = string;

/** What an endpoint is backed by (EndpointSlice `targetRef`). */
export interface EndpointTargetRef {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
}

/** One address and port that traffic for a service port may go to. */
export interface Endpoint {
  /** The first address of the EndpointSlice endpoint (an IP, or a DNS name for FQDN slices). */
  readonly address: string;
  /** The endpoint port (the slice's port, i.e. the resolved targetPort). */
  readonly port: number;
  readonly addressType: AddressType;
  /** `conditions.ready` unset or true. */
  readonly ready: boolean;
  /** `conditions.serving` unset or true. */
  readonly serving: boolean;
  /** `conditions.terminating` set and true. */
  readonly terminating: boolean;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly hostname?: string;
  readonly targetRef?: EndpointTargetRef;
  /** `hints.forZones[].name` (topology-aware routing). */
  readonly zoneHints?: readonly string[];
  /** `hints.forNodes[].name` (PreferSameNode). */
  readonly nodeHints?: readonly string[];
}

/** All endpoints of one service port, merged across the service's EndpointSlices. */
export interface EndpointSet {
  readonly servicePortName: ServicePortName;
  readonly namespace: string;
  /** The Service name (the slices' `kubernetes.io/service-name` label). */
  readonly service: string;
  /** The service port name ("" for an unnamed port). */
  readonly portName: string;
  readonly protocol: Protocol;
  /** Every endpoint, ready or not, deduplicated by address:port and sorted by it. */
  readonly endpoints: readonly Endpoint[];
}
