export {
  type AdminRoute,
  type AdminServer,
  type AdminServerOptions,
  type CheckResult,
  startAdminServer,
} from "./admin.js";
export { formatDuration, parseDuration } from "./duration.js";
export { formatFlagHelp, parseFlags } from "./flags.js";
export { onShutdownSignal, runMain } from "./main.js";
export {
  Counter,
  type CounterChild,
  DEFAULT_BUCKETS,
  formatSampleValue,
  Gauge,
  type GaugeChild,
  Histogram,
  type HistogramChild,
  type Labels,
  MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./metrics.js";
