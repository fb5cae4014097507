import type { MetricsRegistry } from "@kproxy/runtime";

/** front-lb's Prometheus metrics (kproxy_front_lb_*). */
export function frontLbMetrics(registry: MetricsRegistry) {
  const le = ["listener", "endpoint"];
  return {
    registry,
    endpointUp: registry.gauge(
      "kproxy_front_lb_endpoint_up",
      "1 when the endpoint passes its active health checks (rise/fall), 0 when it is down.",
      le,
    ),
    endpointEligible: registry.gauge(
      "kproxy_front_lb_endpoint_eligible",
      "1 when the endpoint may get new connections (up, not ejected, not draining).",
      le,
    ),
    endpointEjected: registry.gauge(
      "kproxy_front_lb_endpoint_ejected",
      "1 while the endpoint is ejected after consecutive connect failures.",
      le,
    ),
    connectionsActive: registry.gauge("kproxy_front_lb_connections_active", "Open relayed connections.", le),
    connectionsTotal: registry.counter(
      "kproxy_front_lb_connections_total",
      "Connections relayed to the endpoint.",
      le,
    ),
    connectFailures: registry.counter(
      "kproxy_front_lb_connect_failures_total",
      "Failed connects to the endpoint (refused, timed out, unreachable).",
      le,
    ),
    drained: registry.counter(
      "kproxy_front_lb_connections_drained_total",
      "Connections closed after their endpoint failed or was removed and the drain timeout passed.",
      le,
    ),
    bytes: registry.counter("kproxy_front_lb_bytes_total", "Bytes relayed, by direction.", [
      "listener",
      "endpoint",
      "direction",
    ]),
    checks: registry.counter("kproxy_front_lb_health_checks_total", "Active health checks, by result.", [
      "listener",
      "endpoint",
      "result",
    ]),
    checkDuration: registry.histogram(
      "kproxy_front_lb_health_check_duration_seconds",
      "Latency of active health checks.",
      { labelNames: le, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] },
    ),
    failovers: registry.counter(
      "kproxy_front_lb_failovers_total",
      "Connects retried on another endpoint after a failed connect.",
      ["listener"],
    ),
    rejected: registry.counter(
      "kproxy_front_lb_downstream_rejected_total",
      "Downstream connections closed without an upstream, by reason.",
      ["listener", "reason"],
    ),
    panic: registry.gauge(
      "kproxy_front_lb_panic",
      "1 while no endpoint of the listener is eligible and every endpoint is tried (panic mode).",
      ["listener"],
    ),
    discovered: registry.gauge(
      "kproxy_front_lb_discovery_endpoints",
      "Endpoints in the last list from cluster discovery (or its cache).",
      ["listener"],
    ),
    reloads: registry.counter("kproxy_front_lb_config_reloads_total", "Configuration reloads, by result.", [
      "result",
    ]),
  };
}

export type FrontLbMetrics = ReturnType<typeof frontLbMetrics>;
