import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "@kproxy/runtime";

/** The proxy's Prometheus metrics (`kproxy_apiserver_proxy_*`). */
export class ProxyMetrics {
  readonly registry: MetricsRegistry;
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly upstreamRequests: Counter;
  readonly upstreamErrors: Counter;
  readonly retries: Counter;
  readonly ejections: Counter;
  readonly authCache: Counter;
  readonly inflight: Gauge;
  readonly tunnels: Gauge;

  constructor(registry = new MetricsRegistry()) {
    this.registry = registry;
    this.requests = registry.counter(
      "kproxy_apiserver_proxy_requests_total",
      "Requests answered, by kind of target (service, pod, node, none), method and HTTP status.",
      ["kind", "method", "code"],
    );
    this.duration = registry.histogram(
      "kproxy_apiserver_proxy_request_duration_seconds",
      "Time from request to the end of the response, by kind of target.",
      { labelNames: ["kind"] },
    );
    this.upstreamRequests = registry.counter(
      "kproxy_apiserver_proxy_upstream_requests_total",
      "Requests sent to each target (service port, pod or node) and endpoint, by HTTP status (0: no response).",
      ["target", "endpoint", "code"],
    );
    this.upstreamErrors = registry.counter(
      "kproxy_apiserver_proxy_upstream_errors_total",
      "Failures talking to each target and endpoint, by error code (UPSTREAM_UNREACHABLE, UPSTREAM_RESET…).",
      ["target", "endpoint", "error"],
    );
    this.retries = registry.counter(
      "kproxy_apiserver_proxy_retries_total",
      "Idempotent requests retried on another endpoint after a connection failure.",
      ["target"],
    );
    this.ejections = registry.counter(
      "kproxy_apiserver_proxy_endpoint_ejections_total",
      "Service endpoints ejected by passive health checking.",
      ["target", "endpoint"],
    );
    this.authCache = registry.counter(
      "kproxy_apiserver_proxy_auth_cache_lookups_total",
      "TokenReview and SubjectAccessReview cache lookups, by result (hit, miss).",
      ["cache", "result"],
    );
    this.inflight = registry.gauge("kproxy_apiserver_proxy_inflight_requests", "Requests being proxied.");
    this.tunnels = registry.gauge(
      "kproxy_apiserver_proxy_upgraded_connections",
      "Upgraded (WebSocket, SPDY) connections open.",
    );
  }
}
