/**
 * The API server's proxy resolution rules (services/{id}/proxy, pods/{id}/proxy, nodes/{id}/proxy)
 * on a snapshot: pure, no API request. Errors are KproxyErrors whose details carry the HTTP status
 * and Status reason that the API server would answer with.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, isIPv4, isIPv6 } from "node:net";
import type { Endpoint, EndpointSet } from "@kproxy/core";
import { errorMessage } from "@kproxy/core";
import { notFound, resolveError } from "./errors.js";
import type { NodeInfo, PodInfo, ServiceInfo, ServicePortInfo } from "./objects.js";
import type { Snapshot } from "./snapshot.js";
import { endpointKey } from "./snapshot.js";

// ------------------------------------------------------------------ ids

export type ProxyKind = "service" | "pod" | "node";

export interface ProxyId {
  /** "", "http" or "https" as written ("" means http). */
  scheme: "" | "http" | "https";
  name: string;
  /** "" when absent; a number or a port name otherwise. */
  port: string;
}

/**
 * Splits the `{id}` of a proxy URL like upstream's SplitSchemeNamePort: `name`, `name:port` or
 * `scheme:name:port`, scheme "", "http" or "https", name non-empty. Otherwise a 400
 * `invalid <kind> request "<id>"` (INVALID_PROXY_ID).
 */
export function splitSchemeNamePort(id: string, kind: ProxyKind = "service"): ProxyId {
  const parts = id.split(":");
  let scheme = "";
  let name = "";
  let port = "";
  if (parts.length === 1) name = parts[0]!;
  else if (parts.length === 2) [name, port] = parts as [string, string];
  else if (parts.length === 3) [scheme, name, port] = parts as [string, string, string];
  if (name === "" || parts.length > 3 || (scheme !== "" && scheme !== "http" && scheme !== "https"))
    throw resolveError("INVALID_PROXY_ID", `invalid ${kind} request ${JSON.stringify(id)}`, {
      status: 400,
      reason: "BadRequest",
    });
  return { scheme: scheme as ProxyId["scheme"], name, port };
}

// ------------------------------------------------------------------ addresses

function ipv6Bytes(ip: string): number[] | undefined {
  if (!isIPv6(ip)) return undefined;
  let text = ip;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (isIPv4(last)) {
    tail = last.split(".").map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = text.split("::") as [string, string | undefined];
  const groups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const zeros = rest === undefined ? 0 : 8 - h.length - r.length;
  const all = [...h, ...Array<string>(zeros).fill("0"), ...r].map((g) => Number.parseInt(g, 16));
  if (all.length !== 8 || all.some((g) => Number.isNaN(g))) return undefined;
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function ipv4GlobalUnicast(b: readonly number[]): boolean {
  const [a = 0, b1 = 0, c = 0, d = 0] = b;
  if (a === 255 && b1 === 255 && c === 255 && d === 255) return false; // broadcast
  if (a === 0 && b1 === 0 && c === 0 && d === 0) return false; // unspecified
  if (a === 127) return false; // loopback
  if (a >= 224 && a <= 239) return false; // multicast
  if (a === 169 && b1 === 254) return false; // link-local
  return true;
}

/**
 * Go's `net.IP.IsGlobalUnicast`, which the API server requires of pod and node addresses: not
 * unspecified, loopback, link-local, multicast or the IPv4 broadcast address. Private (RFC 1918)
 * and unique-local addresses are allowed. Anything that is not an IP is not allowed.
 */
export function isProxyableIP(ip: string): boolean {
  if (isIPv4(ip)) return ipv4GlobalUnicast(ip.split(".").map(Number));
  const b = ipv6Bytes(ip);
  if (!b) return false;
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    return ipv4GlobalUnicast(b.slice(12));
  if (b.every((x) => x === 0)) return false; // ::
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return false; // ::1
  if (b[0] === 0xff) return false; // multicast
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return false; // fe80::/10
  return true;
}

/** Go's JoinHostPort: brackets around an IPv6 host. */
export function joinHostPort(host: string, port: string | number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function addressNotAllowed(): Error {
  return resolveError("ADDRESS_NOT_ALLOWED", "address not allowed", { status: 400, reason: "BadRequest" });
}

export type LookupAll = (hostname: string) => Promise<readonly { address: string }[]>;

const defaultLookup: LookupAll = (hostname) => dnsLookup(hostname, { all: true });

/**
 * Upstream's IsProxyableHostname for a node address: an IP must be proxyable; a name is resolved
 * and every address it resolves to must be (400 `address not allowed`); a resolver failure is a
 * 400 with the resolver's message, no address a 400 `no addresses for hostname`.
 */
export async function checkProxyableHost(host: string, opts: { lookup?: LookupAll } = {}): Promise<void> {
  if (isIP(host)) {
    if (!isProxyableIP(host)) throw addressNotAllowed();
    return;
  }
  let addresses: readonly { address: string }[];
  try {
    addresses = await (opts.lookup ?? defaultLookup)(host);
  } catch (err) {
    throw resolveError(
      "ADDRESS_NOT_ALLOWED",
      `lookup ${host}: ${errorMessage(err)}`,
      { status: 400, reason: "BadRequest" },
      err,
    );
  }
  if (addresses.length === 0)
    throw resolveError("ADDRESS_NOT_ALLOWED", "no addresses for hostname", {
      status: 400,
      reason: "BadRequest",
    });
  for (const a of addresses) if (!isProxyableIP(a.address)) throw addressNotAllowed();
}

// ------------------------------------------------------------------ services

export interface ServiceLookupOptions {
  /**
   * The full `{id}` of the request (e.g. "https:web:metrics"), quoted by the "no endpoints"
   * message as upstream does; default `name` or `name:port`.
   */
  id?: string;
}

export interface ServiceLookup {
  /** The service port name the port spec resolved to ("" for an unnamed port). */
  portName: string;
  /** The Service, when known. */
  service: ServiceInfo | undefined;
  /** The Service's port of that name, when known. */
  servicePort: ServicePortInfo | undefined;
  /** All endpoints of that port (ready or not). */
  endpointSet: EndpointSet;
  /**
   * The ready endpoints to choose from, never empty: those of the Service's primary IP family
   * when any is ready (upstream tries slices of that address type first), else all ready ones.
   */
  candidates: readonly Endpoint[];
}

function parseGoInt(text: string): number | undefined {
  return /^[+-]?\d+$/.test(text) ? Number(text) : undefined;
}

function noEndpoints(quoted: string): Error {
  return resolveError("NO_ENDPOINTS", `no endpoints available for service ${JSON.stringify(quoted)}`, {
    status: 503,
    reason: "ServiceUnavailable",
  });
}

/**
 * The ready endpoints of a service port, by upstream's EndpointSlice-based rules (B.3b):
 * - `portSpec` "" means the unnamed port; a port name is used as is; a number is a service port
 *   (not a targetPort) and is mapped to that port's name: the Service must exist (404
 *   `services "x" not found`) and have it (503 `no service port 8080 found for service "x"`);
 * - no EndpointSlices: 503 `no endpoints available for service "<name>"`;
 * - slices but no ready endpoint on a port of that exact name: 503 `... for service "<id>"`.
 */
export function lookupService(
  snapshot: Snapshot,
  namespace: string,
  name: string,
  portSpec: string | number = "",
  opts: ServiceLookupOptions = {},
): ServiceLookup {
  const portText = String(portSpec);
  const id = opts.id ?? (portText === "" ? name : `${name}:${portText}`);
  if (name === "")
    throw resolveError("INVALID_PROXY_ID", `invalid service request ${JSON.stringify(id)}`, {
      status: 400,
      reason: "BadRequest",
    });
  const service = snapshot.service(namespace, name);
  let portName = portText;
  const number = parseGoInt(portText);
  if (number !== undefined) {
    if (!service) throw notFound("SERVICE_NOT_FOUND", "services", name);
    const port = service.ports.find((p) => p.port === number);
    if (!port)
      throw resolveError(
        "SERVICE_PORT_NOT_FOUND",
        `no service port ${number} found for service ${JSON.stringify(name)}`,
        { status: 503, reason: "ServiceUnavailable" },
      );
    portName = port.name;
  }
  if (snapshot.sliceNames(namespace, name).length === 0) throw noEndpoints(name);
  const endpointSet = snapshot.endpointSet(namespace, name, portName);
  const ready = endpointSet ? endpointSet.endpoints.filter((e) => e.ready) : [];
  if (!endpointSet || ready.length === 0) throw noEndpoints(id);
  const primary = service?.ipFamilies[0];
  const preferred = primary ? ready.filter((e) => e.addressType === primary) : [];
  return {
    portName,
    service,
    servicePort: service?.ports.find((p) => p.name === portName),
    endpointSet,
    candidates: Object.freeze(preferred.length > 0 ? preferred : ready),
  };
}

export interface ResolvedServiceEndpoint {
  endpoint: Endpoint;
  /** `address:port` (brackets for IPv6). */
  host: string;
  portName: string;
}

/** lookupService, then one candidate picked uniformly at random (upstream's RandomEndpoint). */
export function resolveService(
  snapshot: Snapshot,
  namespace: string,
  name: string,
  portSpec: string | number = "",
  opts: ServiceLookupOptions & { random?: () => number } = {},
): ResolvedServiceEndpoint {
  const found = lookupService(snapshot, namespace, name, portSpec, opts);
  const random = opts.random ?? Math.random;
  const i = Math.min(found.candidates.length - 1, Math.floor(random() * found.candidates.length));
  const endpoint = found.candidates[Math.max(0, i)]!;
  return { endpoint, host: endpointKey(endpoint), portName: found.portName };
}

// ------------------------------------------------------------------ pods

export interface ResolvedPod {
  pod: PodInfo;
  /** `status.podIPs[0]`. */
  address: string;
  /** The requested port text as given (named ports are not resolved, as upstream), else the default port; "" when none. */
  port: string;
  /** `ip:port`, or the IP alone (bracketed for IPv6) when there is no port. */
  host: string;
}

/**
 * Upstream's pod proxy location (B.4): the first pod IP, which must be global unicast (400
 * `address not allowed`), and the requested port, else the first port of the first container
 * that declares any.
 */
export function resolvePod(snapshot: Snapshot, namespace: string, name: string, port = ""): ResolvedPod {
  const pod = snapshot.pod(namespace, name);
  if (!pod) throw notFound("POD_NOT_FOUND", "pods", name);
  const chosen = port !== "" ? port : pod.defaultPort !== undefined ? String(pod.defaultPort) : "";
  const address = pod.podIPs[0] ?? "";
  if (!isProxyableIP(address)) throw addressNotAllowed();
  const host =
    chosen !== "" ? joinHostPort(address, chosen) : address.includes(":") ? `[${address}]` : address;
  return { pod, address, port: chosen, host };
}

// ------------------------------------------------------------------ nodes

/** kube-apiserver's default `--kubelet-preferred-address-types`. */
export const DEFAULT_PREFERRED_ADDRESS_TYPES: readonly string[] = Object.freeze([
  "Hostname",
  "InternalDNS",
  "InternalIP",
  "ExternalDNS",
  "ExternalIP",
]);

export interface ResolveNodeOptions {
  /** Address types in order of preference (default DEFAULT_PREFERRED_ADDRESS_TYPES). */
  preferredAddressTypes?: readonly string[];
  /** The requested scheme ("" means http); ignored when the kubelet port is used. */
  scheme?: string;
}

export interface ResolvedNode {
  node: NodeInfo;
  /** The chosen address (an IP or a DNS name: check it with checkProxyableHost before dialing). */
  address: string;
  addressType: string;
  kubeletPort: number;
  /** True when the request goes to the kubelet port (https, kubelet client credentials). */
  kubelet: boolean;
  scheme: "http" | "https";
  /** The port to dial, as text. */
  port: string;
  /** `address:port` (brackets for IPv6). */
  host: string;
}

/**
 * Upstream's node proxy location (B.5): the first address of the first preferred type that the
 * node has (else a 500 `no preferred addresses found; known addresses: [...]`); with no port, or
 * the kubelet port, https to the kubelet port; any other port with the requested scheme.
 */
export function resolveNode(
  snapshot: Snapshot,
  name: string,
  port = "",
  opts: ResolveNodeOptions = {},
): ResolvedNode {
  const node = snapshot.node(name);
  if (!node) throw notFound("NODE_NOT_FOUND", "nodes", name);
  let chosen: { type: string; address: string } | undefined;
  for (const type of opts.preferredAddressTypes ?? DEFAULT_PREFERRED_ADDRESS_TYPES) {
    chosen = node.addresses.find((a) => a.type === type);
    if (chosen) break;
  }
  if (!chosen) {
    const known = node.addresses.map((a) => `{${a.type} ${a.address}}`).join(" ");
    throw resolveError("NO_PREFERRED_ADDRESS", `no preferred addresses found; known addresses: [${known}]`, {
      status: 500,
      reason: "",
    });
  }
  const kubeletPort = node.kubeletPort;
  const kubelet = port === "" || port === String(kubeletPort);
  const portText = kubelet ? String(kubeletPort) : port;
  return {
    node,
    address: chosen.address,
    addressType: chosen.type,
    kubeletPort,
    kubelet,
    scheme: kubelet ? "https" : opts.scheme === "https" ? "https" : "http",
    port: portText,
    host: joinHostPort(chosen.address, portText),
  };
}
