/**
 * Capture first: sync's pace follows capture's punctuality.
 *
 *   every windowMs:  capture.lateness() ──► Δlate / Δreadings in the window = f
 *                    pace.bytesTaken()  ──► bytes sync let through in the window
 *
 *     capture quiet (< MIN_READINGS readings in the window) ──► no limit (or the user's cap)
 *     sync held at the floor rate, or idle ──► f is capture's own lateness: the baseline (EWMA)
 *     sync busy, late count above the baseline's allowance ──► rate × ½ (never under the floor)
 *     sync busy, on time ──► rate × GROWTH (× 2 until the first cut), at most 2 × what was sent
 *     sync busy, PROBE_EVERY windows without a baseline window ──► one window at the floor rate
 *
 * Why a feedback loop and not only priorities: on a 2-core edge the sync threads' nice (+10) is
 * not enough. What else runs while a backlog drains (V8's GC threads, which every isolate shares,
 * at nice 0; an ingest on the same host) delays a 1 kHz collector's wake-ups whatever sync's own
 * priority (BENCHMARKS.md, perf sched). Lateness, measured where it hurts, covers every cause.
 * The baseline comes from windows with sync at (near) rest, like LEDBAT's base delay: if the
 * robot's own software makes capture late, sync is not blamed for it and keeps going.
 *
 * One owner: the engine makes one CaptureFirst per pace and calls tick() from one timer.
 */
import { logger } from '@edgecap/core';
import { bytesTaken, rateOf, setRate, type RateLimitShare } from './link.js';

const log = logger('sync.capture-first');

/** Cumulative counters of capture's punctuality (monotonic; a restart of capture may reset them). */
export interface CaptureLateness {
  /** Readings that missed their deadline or were dropped. */
  late: number;
  /** Readings due: captured + late. */
  due: number;
}

export interface CaptureFirstStats {
  /** Bytes per second sync may send now (0: no limit). */
  rate: number;
  /** Capture's late fraction with sync at rest (undefined until measured). */
  baseline: number | undefined;
  /** Windows in which sync was cut back for capture. */
  cuts: number;
}

/** Readings per window below which capture is too quiet to protect (and to measure). */
export const MIN_READINGS = 50;
/** Rate sync never goes under while busy: a small file a second still moves, and it is ~nothing in CPU. */
export const FLOOR_BYTES_PER_SECOND = 256 * 1024;
/** Growth per on-time window after the first cut (× 2 before it: a fast start). */
export const GROWTH = 1.25;
/** Busy windows between two baseline probes (one window at the floor rate). */
export const PROBE_EVERY = 30;
/** Rest windows the baseline is the median of. */
export const BASELINE_WINDOWS = 5;
/** Rest windows measured, all at the floor rate, before sync may grow. */
export const MIN_BASELINE_WINDOWS = 3;
/** Busy windows may be this many times as late as the baseline (the bar: ≤ 2× with sync idle). */
export const ALLOWANCE = 1.5;
/** … plus this many late readings per window, so that a capture never late is not hypersensitive. */
export const SLACK_READINGS = 2;
/** Default control window. */
export const WINDOW_MS = 1000;

export class CaptureFirst {
  private last: { late: number; due: number; taken: number };
  private rate = FLOOR_BYTES_PER_SECOND;
  /** Capture's late fraction in the last BASELINE_WINDOWS windows with sync held at the floor or idle; the baseline is their median. */
  private readonly rest: number[] = [];
  private cuts = 0;
  /** A cut happened since capture got busy: grow by GROWTH, not × 2. */
  private cut = false;
  /** The rate to return to after a probe window; undefined: not probing. */
  private resume: number | undefined;
  private busySinceRest = 0;
  /** Mean of the busy windows' late fraction, halved each window (undefined after a cut or probe). */
  private smoothed: number | undefined;

  /**
   * Starts at the floor rate: until a window shows capture quiet, sync has no baseline to be
   * judged against and must not be the cause of the first late readings. `ceiling`: the user's
   * cap (bytes/s; 0 = none), never exceeded.
   */
  constructor(
    private readonly pace: RateLimitShare,
    private readonly lateness: () => CaptureLateness,
    private readonly ceiling: number,
    private readonly windowMs = WINDOW_MS,
  ) {
    this.last = this.sample();
    this.set(FLOOR_BYTES_PER_SECOND);
  }

  /** A window starts now (a round starts): the time since the last tick is not one. */
  restart(): void {
    this.last = this.sample();
  }

  /** One control window ended. */
  tick(): void {
    const now = this.sample();
    const prev = this.last;
    this.last = now;
    if (now.due < prev.due || now.late < prev.late) return; // capture restarted: counters reset
    const due = now.due - prev.due;
    const late = now.late - prev.late;
    const sentPerSec = ((now.taken - prev.taken) * 1000) / this.windowMs;
    if (due < MIN_READINGS) {
      this.cut = false;
      this.resume = undefined;
      this.set(0); // nothing to protect: no limit but the user's
      return;
    }
    const f = late / due;
    log.debug({ due, late, sentPerSec: Math.round(sentPerSec), rate: Math.round(this.rate), rest: this.rest }, 'window');
    // The baseline comes from windows in which sync was held at the floor rate (whatever it
    // reserved: uploads in flight each hold a piece) or had next to nothing to send.
    const held = this.rate !== 0 && this.rate <= FLOOR_BYTES_PER_SECOND;
    const idle = sentPerSec <= FLOOR_BYTES_PER_SECOND / 2;
    if (held || idle) {
      this.rest.push(f);
      if (this.rest.length > BASELINE_WINDOWS) this.rest.shift();
      this.busySinceRest = 0;
    }
    if (idle) {
      if (this.rate === 0) this.set(FLOOR_BYTES_PER_SECOND); // capture got busy: sync will start gently
      return;
    }
    if (this.resume !== undefined) {
      // a probe window ended: back to where sync was
      this.set(this.resume);
      this.resume = undefined;
      return;
    }
    if (this.rest.length < MIN_BASELINE_WINDOWS) {
      // not measured yet: sync stays at the floor rate until it is
      this.set(FLOOR_BYTES_PER_SECOND);
      return;
    }
    if (++this.busySinceRest >= PROBE_EVERY) {
      // one window at the floor rate to re-measure the baseline, like LEDBAT's base delay
      this.resume = this.rate;
      this.smoothed = undefined;
      this.set(FLOOR_BYTES_PER_SECOND);
      return;
    }
    // Capture's lateness comes in bursts (a window at rest reads 0 or 30 late at 1 kHz on a
    // 2-core VM): judge a short average of windows against the median of the rest windows.
    const base = median(this.rest);
    this.smoothed = this.smoothed === undefined ? f : (this.smoothed + f) / 2;
    if (this.smoothed > ALLOWANCE * base + SLACK_READINGS / due) {
      this.cuts++;
      this.cut = true;
      this.smoothed = undefined;
      this.set(Math.max(FLOOR_BYTES_PER_SECOND, Math.min(this.rate || sentPerSec, sentPerSec) / 2));
      return;
    }
    const grown = Math.max(FLOOR_BYTES_PER_SECOND, this.rate) * (this.cut ? GROWTH : 2);
    // not far above what sync sends: a rate nobody uses would take many cuts to matter
    this.set(Math.min(grown, Math.max(2 * sentPerSec, 2 * FLOOR_BYTES_PER_SECOND)));
  }

  stats(): CaptureFirstStats {
    return { rate: rateOf(this.pace), baseline: this.rest.length < MIN_BASELINE_WINDOWS ? undefined : median(this.rest), cuts: this.cuts };
  }

  private sample(): { late: number; due: number; taken: number } {
    const l = this.lateness();
    return { late: l.late, due: l.due, taken: bytesTaken(this.pace) };
  }

  /** 0: no limit of ours; the user's cap always applies. */
  private set(rate: number): void {
    this.rate = rate;
    setRate(this.pace, this.ceiling > 0 ? (rate === 0 ? this.ceiling : Math.min(this.ceiling, rate)) : rate);
  }
}

function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}
