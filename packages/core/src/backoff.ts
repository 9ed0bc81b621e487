/**
 * Exponential backoff with jitter and an injectable clock/random source, so retry
 * schedules are unit-tested without real waits. Defaults follow the sync contract:
 * 200 ms initial, x2, capped at 1 hour (then hourly), ±20% jitter.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface BackoffOptions {
  initialMs?: number;
  factor?: number;
  maxMs?: number;
  /** Fraction of the delay randomised either way (0.2 = ±20%). */
  jitter?: number;
  random?: () => number;
  clock?: Clock;
}

export class Backoff {
  readonly initialMs: number;
  readonly factor: number;
  readonly maxMs: number;
  readonly jitter: number;
  private readonly random: () => number;
  private readonly clock: Clock;
  private attempt = 0;
  private nextAt = 0;

  constructor(o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 200;
    this.factor = o.factor ?? 2;
    this.maxMs = o.maxMs ?? 3_600_000;
    this.jitter = o.jitter ?? 0.2;
    this.random = o.random ?? Math.random;
    this.clock = o.clock ?? systemClock;
  }

  /** Failures recorded since the last success. */
  get attempts(): number {
    return this.attempt;
  }

  /** Un-jittered delay for the n-th consecutive failure (n from 1). */
  baseDelay(n: number): number {
    if (n <= 0) return 0;
    const d = this.initialMs * Math.pow(this.factor, n - 1);
    return Math.min(d, this.maxMs);
  }

  /** Record a failure; returns the delay (ms) before the next attempt. */
  fail(): number {
    this.attempt++;
    const base = this.baseDelay(this.attempt);
    const spread = base * this.jitter * (this.random() * 2 - 1);
    const delay = Math.max(0, Math.min(this.maxMs, Math.round(base + spread)));
    this.nextAt = this.clock.now() + delay;
    return delay;
  }

  succeed(): void {
    this.attempt = 0;
    this.nextAt = 0;
  }

  /** Wall-clock ms of the next allowed attempt (0 = now). */
  get nextAttemptAt(): number {
    return this.nextAt;
  }

  ready(): boolean {
    return this.clock.now() >= this.nextAt;
  }
}
