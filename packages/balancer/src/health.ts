import { type Clock, systemClock } from "@kproxy/core";
import { buildTable, invalidOption } from "./table.js";
import type { Balancer, PickOptions, StrategyName, Target } from "./types.js";

/** Passive outlier detection (Envoy's consecutive-failure outlier ejection). */
export interface OutlierOptions {
  /** Consecutive failures (reportFailure) that eject an endpoint. Default 5. */
  consecutiveFailures?: number;
  /** An ejection lasts baseEjectionMs × number of ejections of that endpoint. Default 30 s. */
  baseEjectionMs?: number;
  /** Cap on one ejection's duration. Default 300 s. */
  maxEjectionMs?: number;
  /**
   * Most endpoints ejected at once, in percent of the set; one endpoint may always be ejected
   * (as Envoy). Default 10.
   */
  maxEjectionPercent?: number;
}

export interface HealthOptions {
  /** Time source for ejections. Default systemClock. */
  clock?: Clock;
  /** Consecutive successful active checks to go up (HAProxy `rise`). Default 2. */
  rise?: number;
  /** Consecutive failed active checks to go down (HAProxy `fall`). Default 3. */
  fall?: number;
  /**
   * Whether a new endpoint starts up (HAProxy) or down until `rise` checks pass (Envoy-like).
   * Default true.
   */
  initiallyHealthy?: boolean;
  /** Outlier ejection settings, or false to disable passive ejection. */
  outlier?: OutlierOptions | false;
  /**
   * Panic mode (HAProxy/Envoy): when too few endpoints are eligible, pick among all endpoints that are
   * not draining rather than among the few (or none). Default true; false never panics (Envoy's
   * healthy_panic_threshold 0, as cloud-provider-kind uses).
   */
  panic?: boolean;
  /**
   * Panic when eligible endpoints are fewer than this percent of the set (Envoy's
   * healthy_panic_threshold, e.g. 50). Default 0: panic only when none is eligible.
   */
  panicThresholdPercent?: number;
}

/** The health of one endpoint, as a snapshot. */
export interface EndpointHealth {
  readonly key: string;
  /** Active checks say up (rise/fall). */
  readonly up: boolean;
  readonly ejected: boolean;
  /** When the current ejection ends; undefined when not ejected. */
  readonly ejectedUntilMs: number | undefined;
  /** Ejections so far (the multiplier of the next ejection's duration). */
  readonly ejections: number;
  readonly draining: boolean;
  /** up, not ejected and not draining. */
  readonly eligible: boolean;
  /** Consecutive passive failures since the last success. */
  readonly consecutiveFailures: number;
}

/** A state change, for logs and metrics. `atMs` is the clock's time. */
export type HealthEvent =
  | { readonly type: "up" | "down"; readonly key: string; readonly atMs: number }
  | {
      readonly type: "ejected";
      readonly key: string;
      readonly atMs: number;
      readonly untilMs: number;
      readonly ejections: number;
    }
  | {
      /** Ejection prevented by maxEjectionPercent. */
      readonly type: "ejection-skipped";
      readonly key: string;
      readonly atMs: number;
    }
  | { readonly type: "unejected"; readonly key: string; readonly atMs: number }
  | { readonly type: "drain-start" | "drain-end"; readonly key: string; readonly atMs: number }
  | {
      readonly type: "panic-start" | "panic-end";
      readonly atMs: number;
      readonly eligible: number;
      readonly total: number;
    };

export interface EligibleTargets<T> {
  /** What the balancer should pick from: the eligible endpoints, or in panic all non-draining ones. */
  readonly targets: T[];
  readonly panic: boolean;
}

interface Entry {
  up: boolean;
  successes: number;
  failures: number;
  passiveFailures: number;
  /** 0 when not ejected. */
  ejectedUntilMs: number;
  ejections: number;
  lastUnejectedMs: number;
  draining: boolean;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw invalidOption(`health option ${name} must be an integer >= 1, got ${String(v)}`, { [name]: v });
  return v;
}

function nonNegative(name: string, v: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max)
    throw invalidOption(`health option ${name} must be a number in [0, ${max}], got ${String(v)}`, {
      [name]: v,
    });
  return v;
}

/**
 * Per-endpoint health of one cluster (one endpoint set): active checks (rise/fall), passive outlier
 * ejection with growing ejection times, draining, and panic mode. Pure: ejections end when `sync()`
 * (called by the health-filtered balancer on every pick, O(1) when nothing is due) sees the clock
 * pass their end. Listen with `onEvent` to log or count state changes.
 */
export class HealthState {
  private readonly clock: Clock;
  private readonly rise: number;
  private readonly fall: number;
  private readonly initiallyHealthy: boolean;
  private readonly outlier: Required<OutlierOptions> | undefined;
  private readonly panicEnabled: boolean;
  private readonly panicThresholdPercent: number;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(event: HealthEvent) => void>();
  private ejectedCount = 0;
  private nextUnejectMs = Number.POSITIVE_INFINITY;
  private rev = 0;
  private inPanic = false;

  constructor(options: HealthOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.rise = positiveInt("rise", options.rise ?? 2);
    this.fall = positiveInt("fall", options.fall ?? 3);
    this.initiallyHealthy = options.initiallyHealthy ?? true;
    if (options.outlier === false) this.outlier = undefined;
    else {
      const o = options.outlier ?? {};
      const baseEjectionMs = nonNegative("baseEjectionMs", o.baseEjectionMs ?? 30_000);
      const maxEjectionMs = nonNegative("maxEjectionMs", o.maxEjectionMs ?? 300_000);
      if (maxEjectionMs < baseEjectionMs)
        throw invalidOption("health option maxEjectionMs must be >= baseEjectionMs", {
          baseEjectionMs,
          maxEjectionMs,
        });
      this.outlier = {
        consecutiveFailures: positiveInt("consecutiveFailures", o.consecutiveFailures ?? 5),
        baseEjectionMs,
        maxEjectionMs,
        maxEjectionPercent: nonNegative("maxEjectionPercent", o.maxEjectionPercent ?? 10, 100),
      };
    }
    this.panicEnabled = options.panic ?? true;
    this.panicThresholdPercent = nonNegative(
      "panicThresholdPercent",
      options.panicThresholdPercent ?? 0,
      100,
    );
  }

  /** Bumps whenever an endpoint's eligibility may have changed. */
  get revision(): number {
    return this.rev;
  }

  /** Whether the last `eligible()` computation was in panic mode. */
  get panic(): boolean {
    return this.inPanic;
  }

  /** Subscribes to state changes; returns the unsubscribe function. Listeners must not throw. */
  onEvent(listener: (event: HealthEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: HealthEvent): void {
    for (const l of this.listeners) l(event);
  }

  /**
   * Sets the endpoint keys tracked: new keys start up (or down, see initiallyHealthy), removed keys
   * are forgotten (their ejection history too). Reports for unknown keys are ignored.
   */
  setKeys(keys: Iterable<string>): void {
    const wanted = new Set(keys);
    let changed = false;
    for (const [key, e] of this.entries)
      if (!wanted.has(key)) {
        if (e.ejectedUntilMs !== 0) this.ejectedCount--;
        this.entries.delete(key);
        changed = true;
      }
    for (const key of wanted)
      if (!this.entries.has(key)) {
        this.entries.set(key, {
          up: this.initiallyHealthy,
          successes: 0,
          failures: 0,
          passiveFailures: 0,
          ejectedUntilMs: 0,
          ejections: 0,
          lastUnejectedMs: 0,
          draining: false,
        });
        changed = true;
      }
    if (changed) this.rev++;
  }

  /** Feeds one active health check result (HAProxy rise/fall). */
  reportCheck(key: string, ok: boolean): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    if (ok) {
      e.failures = 0;
      if (!e.up && ++e.successes >= this.rise) {
        e.up = true;
        e.successes = 0;
        this.rev++;
        this.emit({ type: "up", key, atMs: this.clock.now() });
      }
    } else {
      e.successes = 0;
      if (e.up && ++e.failures >= this.fall) {
        e.up = false;
        e.failures = 0;
        this.rev++;
        this.emit({ type: "down", key, atMs: this.clock.now() });
      }
    }
  }

  /** A request/connection to `key` succeeded (passive): resets its consecutive failures. */
  reportSuccess(key: string): void {
    const e = this.entries.get(key);
    if (e !== undefined) e.passiveFailures = 0;
  }

  /** A request/connection to `key` failed (passive): may eject it. */
  reportFailure(key: string): void {
    const e = this.entries.get(key);
    const o = this.outlier;
    if (e === undefined || o === undefined || e.ejectedUntilMs !== 0) return;
    if (++e.passiveFailures < o.consecutiveFailures) return;
    e.passiveFailures = 0;
    const now = this.clock.now();
    const limit = (o.maxEjectionPercent / 100) * this.entries.size;
    if (this.ejectedCount > 0 && this.ejectedCount + 1 > limit) {
      this.emit({ type: "ejection-skipped", key, atMs: now });
      return;
    }
    // The multiplier decays by one for each base ejection time spent healthy since the last ejection.
    if (e.ejections > 0 && o.baseEjectionMs > 0)
      e.ejections = Math.max(0, e.ejections - Math.floor((now - e.lastUnejectedMs) / o.baseEjectionMs));
    e.ejections++;
    const untilMs = now + Math.min(o.baseEjectionMs * e.ejections, o.maxEjectionMs);
    e.ejectedUntilMs = Math.max(untilMs, now + 1);
    this.ejectedCount++;
    this.nextUnejectMs = Math.min(this.nextUnejectMs, e.ejectedUntilMs);
    this.rev++;
    this.emit({ type: "ejected", key, atMs: now, untilMs: e.ejectedUntilMs, ejections: e.ejections });
  }

  /** Marks an endpoint as draining (no new picks, even in panic) or not. */
  setDraining(key: string, draining: boolean): void {
    const e = this.entries.get(key);
    if (e === undefined || e.draining === draining) return;
    e.draining = draining;
    this.rev++;
    this.emit({ type: draining ? "drain-start" : "drain-end", key, atMs: this.clock.now() });
  }

  /** Ends ejections that are due; returns the revision. O(1) when none is due. */
  sync(): number {
    if (this.ejectedCount === 0) return this.rev;
    const now = this.clock.now();
    if (now < this.nextUnejectMs) return this.rev;
    let next = Number.POSITIVE_INFINITY;
    const ended: string[] = [];
    for (const [key, e] of this.entries) {
      if (e.ejectedUntilMs === 0) continue;
      if (e.ejectedUntilMs <= now) {
        e.ejectedUntilMs = 0;
        e.lastUnejectedMs = now;
        this.ejectedCount--;
        ended.push(key);
      } else next = Math.min(next, e.ejectedUntilMs);
    }
    this.nextUnejectMs = next;
    if (ended.length > 0) {
      this.rev++;
      for (const key of ended) this.emit({ type: "unejected", key, atMs: now });
    }
    return this.rev;
  }

  /** True when `key` may get new picks outside panic mode (unknown keys count as eligible). */
  isEligible(key: string): boolean {
    const e = this.entries.get(key);
    return e === undefined || (e.up && e.ejectedUntilMs === 0 && !e.draining);
  }

  private isDraining(key: string): boolean {
    return this.entries.get(key)?.draining === true;
  }

  status(key: string): EndpointHealth | undefined {
    this.sync();
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    return {
      key,
      up: e.up,
      ejected: e.ejectedUntilMs !== 0,
      ejectedUntilMs: e.ejectedUntilMs === 0 ? undefined : e.ejectedUntilMs,
      ejections: e.ejections,
      draining: e.draining,
      eligible: e.up && e.ejectedUntilMs === 0 && !e.draining,
      consecutiveFailures: e.passiveFailures,
    };
  }

  /**
   * Filters `targets` to the eligible ones, or, in panic mode, to all that are not draining. Emits
   * panic-start / panic-end when that changes. Endpoints of weight 0 do not count.
   */
  eligible<T extends Target>(targets: readonly T[]): EligibleTargets<T> {
    this.sync();
    const eligible: T[] = [];
    let pool = 0;
    for (const t of targets) {
      if (t.weight === 0 || this.isDraining(t.key)) continue;
      pool++;
      if (this.isEligible(t.key)) eligible.push(t);
    }
    const panic =
      this.panicEnabled &&
      pool > 0 &&
      (eligible.length === 0 || eligible.length * 100 < this.panicThresholdPercent * pool);
    if (panic !== this.inPanic) {
      this.inPanic = panic;
      this.emit({
        type: panic ? "panic-start" : "panic-end",
        atMs: this.clock.now(),
        eligible: eligible.length,
        total: pool,
      });
    }
    if (!panic) return { targets: eligible, panic };
    return { targets: targets.filter((t) => !this.isDraining(t.key)), panic };
  }
}

/**
 * A balancer that picks only among `health`'s eligible endpoints (or all non-draining ones in panic).
 * `update` gives the full set (and sets the health state's keys); the inner balancer is re-fed
 * whenever health changes, so its pick stays O(1)/O(log n). Use one HealthState per balancer.
 */
export function withHealth<T extends Target>(inner: Balancer<T>, health: HealthState): Balancer<T> {
  return new HealthFilteredBalancer(inner, health);
}

class HealthFilteredBalancer<T extends Target> implements Balancer<T> {
  private all: readonly T[] = [];
  private seen = -1;

  constructor(
    private readonly inner: Balancer<T>,
    private readonly health: HealthState,
  ) {}

  get strategy(): StrategyName {
    return this.inner.strategy;
  }

  get size(): number {
    this.refreshIfChanged();
    return this.inner.size;
  }

  update(targets: readonly T[]): void {
    buildTable(targets);
    this.all = targets.slice();
    this.health.setKeys(this.all.map((t) => t.key));
    this.refresh();
  }

  private refresh(): void {
    this.health.sync();
    const { targets } = this.health.eligible(this.all);
    this.inner.update(targets);
    this.seen = this.health.revision;
  }

  private refreshIfChanged(): void {
    if (this.health.sync() !== this.seen) this.refresh();
  }

  pick(options?: PickOptions): T | undefined {
    this.refreshIfChanged();
    return this.inner.pick(options);
  }

  onStart(key: string): void {
    this.inner.onStart(key);
  }

  onFinish(key: string): void {
    this.inner.onFinish(key);
  }
}
