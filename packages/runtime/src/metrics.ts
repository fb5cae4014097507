/**
 * A small Prometheus metrics registry: counters, gauges and histograms with labels, exposed in the
 * text exposition format 0.0.4. Hot paths keep a child (`metric.labels({...})`) so that an update
 * is one addition, with no string building.
 */
import { KproxyError } from "@kproxy/core";

/** The Content-Type of `MetricsRegistry.expose()`. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Prometheus' default histogram buckets (seconds). */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

export type Labels = Readonly<Record<string, string | number>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function invalid(message: string, details?: Record<string, unknown>): KproxyError {
  return new KproxyError("METRICS_INVALID", message, details ? { details } : undefined);
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value as Prometheus writes it: +Inf, -Inf, NaN or a decimal number. */
export function formatSampleValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

interface Series<S> {
  readonly values: readonly string[];
  readonly text: string;
  readonly state: S;
}

abstract class Metric<S, C> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly series = new Map<string, Series<S>>();

  constructor(name: string, help: string, labelNames: readonly string[], reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(name)) throw invalid(`invalid metric name ${JSON.stringify(name)}`, { name });
    const seen = new Set<string>();
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__") || reserved.includes(l))
        throw invalid(`invalid label name ${JSON.stringify(l)} for metric ${name}`, { name, label: l });
      if (seen.has(l)) throw invalid(`duplicate label name ${JSON.stringify(l)} for metric ${name}`);
      seen.add(l);
    }
    this.name = name;
    this.help = help;
    this.labelNames = Object.freeze([...labelNames]);
  }

  protected abstract initial(): S;
  protected abstract child(state: S): C;
  abstract readonly type: "counter" | "gauge" | "histogram";
  protected abstract render(out: string[], labelText: string, state: S): void;

  private valuesOf(labels: Labels | undefined): string[] {
    const given = labels ?? {};
    const keys = Object.keys(given);
    if (keys.length !== this.labelNames.length || keys.some((k) => !this.labelNames.includes(k)))
      throw invalid(
        `metric ${this.name} takes labels {${this.labelNames.join(", ")}}, got {${keys.join(", ")}}`,
        { name: this.name },
      );
    return this.labelNames.map((n) => String(given[n]));
  }

  /** The series key of these labels, or undefined when they are not exactly the label names. */
  private keyOf(labels: Labels | undefined): string | undefined {
    const names = this.labelNames;
    let given = 0;
    if (labels !== undefined) for (const _ in labels) given++;
    if (given !== names.length) return undefined;
    let key = "";
    for (let i = 0; i < names.length; i++) {
      const v = (labels as Labels)[names[i] as string];
      if (v === undefined) return undefined;
      key = i === 0 ? String(v) : `${key}\u0000${String(v)}`;
    }
    return key;
  }

  protected state(labels: Labels | undefined): S {
    // Called for every update: no arrays, one string (the series key) on the way to a hit.
    const key = this.keyOf(labels) ?? this.valuesOf(labels).join("\u0000");
    let s = this.series.get(key);
    if (s === undefined) {
      const values = this.valuesOf(labels);
      const text =
        values.length === 0
          ? ""
          : values.map((v, i) => `${this.labelNames[i]}="${escapeLabelValue(v)}"`).join(",");
      s = { values, text, state: this.initial() };
      this.series.set(key, s);
    }
    return s.state;
  }

  /** The series of these label values, for updates without a lookup. */
  labels(labels: Labels): C {
    return this.child(this.state(labels));
  }

  /** Forgets one series (e.g. an endpoint that left). */
  remove(labels: Labels): void {
    this.series.delete(this.valuesOf(labels).join("\u0000"));
  }

  /** Forgets every series. */
  reset(): void {
    this.series.clear();
  }

  /** Appends this metric's exposition lines. */
  write(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const s of this.series.values()) this.render(out, s.text, s.state);
  }
}

interface Cell {
  value: number;
}

export interface CounterChild {
  inc(value?: number): void;
  get(): number;
}

export class Counter extends Metric<Cell, CounterChild> {
  readonly type = "counter" as const;
  protected initial(): Cell {
    return { value: 0 };
  }
  protected child(cell: Cell): CounterChild {
    return {
      inc: (value = 1) => {
        if (!(value >= 0)) throw invalid(`counter ${this.name} can only increase, got ${value}`);
        cell.value += value;
      },
      get: () => cell.value,
    };
  }
  inc(labels?: Labels, value = 1): void {
    if (!(value >= 0)) throw invalid(`counter ${this.name} can only increase, got ${value}`);
    this.state(labels).value += value;
  }
  get(labels?: Labels): number {
    return this.state(labels).value;
  }
  protected render(out: string[], l: string, cell: Cell): void {
    out.push(`${this.name}${l === "" ? "" : `{${l}}`} ${formatSampleValue(cell.value)}`);
  }
}

export interface GaugeChild {
  set(value: number): void;
  inc(value?: number): void;
  dec(value?: number): void;
  get(): number;
}

export class Gauge extends Metric<Cell, GaugeChild> {
  readonly type = "gauge" as const;
  protected initial(): Cell {
    return { value: 0 };
  }
  protected child(cell: Cell): GaugeChild {
    return {
      set: (v) => {
        cell.value = v;
      },
      inc: (v = 1) => {
        cell.value += v;
      },
      dec: (v = 1) => {
        cell.value -= v;
      },
      get: () => cell.value,
    };
  }
  set(labels: Labels | undefined, value: number): void {
    this.state(labels).value = value;
  }
  inc(labels?: Labels, value = 1): void {
    this.state(labels).value += value;
  }
  dec(labels?: Labels, value = 1): void {
    this.state(labels).value -= value;
  }
  get(labels?: Labels): number {
    return this.state(labels).value;
  }
  protected render(out: string[], l: string, cell: Cell): void {
    out.push(`${this.name}${l === "" ? "" : `{${l}}`} ${formatSampleValue(cell.value)}`);
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export interface HistogramChild {
  observe(value: number): void;
}

export class Histogram extends Metric<HistogramState, HistogramChild> {
  readonly type = "histogram" as const;
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, ["le"]);
    if (buckets.length === 0) throw invalid(`histogram ${name} needs at least one bucket`);
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))
        throw invalid(`histogram ${name} buckets must be finite and increasing`, { buckets: [...buckets] });
    }
    this.buckets = Object.freeze([...buckets]);
  }

  protected initial(): HistogramState {
    return { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
  }
  protected child(state: HistogramState): HistogramChild {
    return { observe: (v) => this.add(state, v) };
  }
  private add(s: HistogramState, v: number): void {
    for (let i = 0; i < this.buckets.length; i++)
      if (v <= this.buckets[i]!) {
        s.counts[i]!++;
        break;
      }
    s.sum += v;
    s.count++;
  }
  observe(labels: Labels | undefined, value: number): void {
    this.add(this.state(labels), value);
  }
  /** Count and sum of one series (for tests and status pages). */
  get(labels?: Labels): { count: number; sum: number } {
    const s = this.state(labels);
    return { count: s.count, sum: s.sum };
  }
  protected render(out: string[], l: string, s: HistogramState): void {
    const sep = l === "" ? "" : `${l},`;
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += s.counts[i]!;
      out.push(`${this.name}_bucket{${sep}le="${formatSampleValue(this.buckets[i]!)}"} ${cumulative}`);
    }
    out.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
    const braces = l === "" ? "" : `{${l}}`;
    out.push(`${this.name}_sum${braces} ${formatSampleValue(s.sum)}`);
    out.push(`${this.name}_count${braces} ${s.count}`);
  }
}

/**
 * The metrics of one process. Register each metric once (a second registration of the same name
 * and type returns the first); `onCollect` hooks run before every exposition, to set gauges that
 * are cheaper to compute on scrape than to maintain.
 */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Counter | Gauge | Histogram>();
  private readonly collectors = new Set<() => void>();

  private register<M extends Counter | Gauge | Histogram>(metric: M): M {
    const existing = this.metrics.get(metric.name);
    if (existing !== undefined) {
      if (existing.type !== metric.type || existing.labelNames.join(",") !== metric.labelNames.join(","))
        throw invalid(`metric ${metric.name} is already registered with another type or labels`, {
          name: metric.name,
        });
      return existing as M;
    }
    this.metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    options: { labelNames?: readonly string[]; buckets?: readonly number[] } = {},
  ): Histogram {
    return this.register(
      new Histogram(name, help, options.labelNames ?? [], options.buckets ?? DEFAULT_BUCKETS),
    );
  }

  /** Runs `fn` before each exposition; returns the unsubscribe function. */
  onCollect(fn: () => void): () => void {
    this.collectors.add(fn);
    return () => this.collectors.delete(fn);
  }

  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.metrics.get(name);
  }

  /** The text exposition format 0.0.4 of every metric. */
  expose(): string {
    for (const fn of this.collectors) fn();
    const out: string[] = [];
    for (const m of this.metrics.values()) m.write(out);
    return out.length === 0 ? "" : `${out.join("\n")}\n`;
  }
}
