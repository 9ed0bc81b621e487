/**
 * Capture first: sync's pace follows capture's punctuality.
 *
 *   every window (1 s, while a round runs):
 *     capture.lateness() ──► Δlate / Δdue in the window = f (late: missed deadlines + drops)
 *     pace.bytesTaken()  ──► bytes sync reserved in the window, per second of measured time
 *
 *     capture quiet (< MIN_READINGS readings due in the window) ──► no limit but the user's cap
 *     sync held at the floor rate, or idle ──► f is capture's own lateness: a rest window
 *     fewer than MIN_BASELINE_WINDOWS rest windows yet ──► stay at the floor rate
 *     sync busy, mean f of this and the last window > ALLOWANCE × median(rest) + SLACK ──► rate ÷ 2
 *     sync busy, on time ──► rate × GROWTH (× 2 until the first cut), at most 2 × what was sent
 *     PROBE_EVERY busy windows in a row ──► one window at the floor rate (a new rest window)
 *   a round starts: capture quiet over the gap ──► no limit; busy and unlimited ──► the floor
 *
 * Why a feedback loop and not only priorities: on a 2-core edge the sync threads' nice (+10) is
 * not enough. What else runs while a backlog drains (V8's GC threads, which every isolate shares,
 * at nice 0; an ingest on the same host) delays a 1 kHz collector's wake-ups whatever sync's own
 * priority (BENCHMARKS.md, perf sched). Lateness, measured where it hurts, covers every cause.
 * The baseline comes from windows with sync at (near) rest, like LEDBAT's base delay: if the
 * robot's own software makes capture late, sync is not blamed for it and keeps going.
 *
 * One owner: the engine makes one CaptureFirst per pace and calls restart() and tick() from its
 * round; nothing else sets the pace's rate.
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

interface Sample {
  late: number;
  due: number;
  /** bytesTaken of the pace. */
  taken: number;
  /** ms, monotonic. */
  at: number;
}

/** Readings due per second (all streams) below which capture is too quiet to protect (and to measure). */
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
/**
 * Busy windows may be this many times as late as the baseline. The bar is ≤ 2× with sync idle
 * over a whole drain, and the loop settles just under its threshold: measured with 1.5 and a
 * slack of 2, a 1 kHz stream drained 1 GiB at 1.90× (BENCHMARKS.md), too close to the bar.
 */
export const ALLOWANCE = 1.25;
/** … plus this many late readings per window, so that a capture never late is not hypersensitive. */
export const SLACK_READINGS = 1;
/** The control window: the engine ticks this often while a round runs. */
export const WINDOW_MS = 1000;

export class CaptureFirst {
  private last: Sample;
  private rate = FLOOR_BYTES_PER_SECOND;
  /** Capture's late fraction in the last BASELINE_WINDOWS windows with sync held at the floor or idle; the baseline is their median. */
  private readonly rest: number[] = [];
  private cuts = 0;
  /** A cut happened since capture got busy: grow by GROWTH, not × 2. */
  private cut = false;
  /** The rate to return to after a probe window; undefined: not probing. */
  private resume: number | undefined;
  private busySinceRest = 0;
  /** Running mean of the busy windows' late fraction, the newest weighing ½ (undefined after a cut or probe). */
  private smoothed: number | undefined;

  /**
   * Starts at the floor rate: until MIN_BASELINE_WINDOWS windows have measured capture at rest
   * (or one shows capture quiet), sync has no baseline to be judged against and must not be the
   * cause of the first late readings. `ceiling`: the user's cap (bytes/s; 0 = none), never exceeded.
   */
  constructor(
    private readonly pace: RateLimitShare,
    private readonly lateness: () => CaptureLateness,
    private readonly ceiling: number,
    /** Monotonic ms (injectable for tests). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = this.sample();
    this.set(FLOOR_BYTES_PER_SECOND);
  }

  /**
   * A round starts: the time since the last tick is no window, but it tells whether capture runs.
   * Quiet over the gap: no limit at once; busy while sync was unlimited: back to the floor rate.
   */
  restart(): void {
    const prev = this.last;
    const now = this.sample();
    this.last = now;
    const sec = (now.at - prev.at) / 1000;
    if (now.due < prev.due || sec <= 0) return; // capture restarted (counters reset): the next window tells
    if ((now.due - prev.due) / sec < MIN_READINGS) this.quiet();
    else if (this.rate === 0) this.set(FLOOR_BYTES_PER_SECOND);
  }

  /** One control window ended. */
  tick(): void {
    const now = this.sample();
    const prev = this.last;
    this.last = now;
    if (now.due < prev.due || now.late < prev.late || now.at <= prev.at) return; // capture restarted: counters reset
    const due = now.due - prev.due;
    const late = now.late - prev.late;
    const sec = (now.at - prev.at) / 1000;
    const sentPerSec = (now.taken - prev.taken) / sec;
    if (due / sec < MIN_READINGS) {
      this.quiet();
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
    // no limit of ours until now (capture just got busy): grow from what sync sends, not from 0
    const grown = Math.max(FLOOR_BYTES_PER_SECOND, this.rate || sentPerSec) * (this.cut ? GROWTH : 2);
    // not far above what sync sends: a rate nobody uses would take many cuts to matter
    this.set(Math.min(grown, Math.max(2 * sentPerSec, 2 * FLOOR_BYTES_PER_SECOND)));
  }

  stats(): CaptureFirstStats {
    return { rate: rateOf(this.pace), baseline: this.rest.length < MIN_BASELINE_WINDOWS ? undefined : median(this.rest), cuts: this.cuts };
  }

  private sample(): Sample {
    const l = this.lateness();
    return { late: l.late, due: l.due, taken: bytesTaken(this.pace), at: this.now() };
  }

  /** Capture quiet: nothing to protect, no limit but the user's; a probe or a cut in progress is over. */
  private quiet(): void {
    this.cut = false;
    this.resume = undefined;
    this.set(0);
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
