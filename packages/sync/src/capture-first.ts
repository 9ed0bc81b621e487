/**
 * Capture first: sync's pace follows capture's punctuality.
 *
 *   every window (1 s, while a round runs):
 *     capture.lateness() ──► Δlate / Δdue in the window = f (late: missed deadlines + drops)
 *     pace.bytesTaken()  ──► bytes sync reserved in the window, per second of measured time
 *
 *     capture quiet (< MIN_READINGS readings due in the window) ──► no limit but the user's cap
 *     sync held (paused for the window, holdBytes), or idle ──► f is capture's own lateness: a rest
 *       window (not the first window of a round: the round's own start-up is no rest)
 *     fewer than MIN_BASELINE_WINDOWS rest windows yet ──► hold the next window too
 *     sync busy: credit += allowed − f, allowed = ALLOWANCE × mean(rest) + SLACK, at most
 *       CREDIT_WINDOWS × allowed; credit < 0 ──► rate ÷ 2, credit 0
 *     sync busy, on time ──► rate × GROWTH (× 2 until the first cut), at most 2 × what was sent
 *     PROBE_EVERY busy windows in a row ──► hold one window (a new rest window), then resume
 *   a round starts: capture quiet over the gap ──► no limit; busy and unlimited ──► the floor
 *
 * Why a feedback loop and not only priorities: on a 2-core edge the sync threads' nice (+10) is
 * not enough. What else runs while a backlog drains (V8's GC threads, which every isolate shares,
 * at nice 0; an ingest on the same host) delays a 1 kHz collector's wake-ups whatever sync's own
 * priority (BENCHMARKS.md, perf sched). Lateness, measured where it hurts, covers every cause.
 * The baseline comes from windows with sync at rest, like LEDBAT's base delay: if the robot's own
 * software makes capture late, sync is not blamed for it and keeps going. Rest means paused, not
 * slow: measured at the floor rate, and with the round's start-up in it, the baseline read 19
 * late readings a second where capture with sync idle read 6 (BENCHMARKS.md), and the loop let
 * the drain make capture twice as late. It is the mean of the rest windows, as the bar is a mean.
 *
 * One owner: the engine makes one CaptureFirst per pace and calls restart() and tick() from its
 * round; nothing else sets the pace's rate.
 */
import { logger } from '@edgecap/core';
import { bytesTaken, holdBytes, rateOf, setRate, type RateLimitShare } from './link.js';

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
  /** Sync is paused for this window, to measure capture at rest. */
  holding: boolean;
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
/** Rest windows the baseline is the mean of. */
export const BASELINE_WINDOWS = 8;
/** Rest windows measured, sync paused, before sync may send more than the floor rate. */
export const MIN_BASELINE_WINDOWS = 3;
/**
 * Busy windows may be this many times as late as the baseline, on average (plus the slack): the
 * bar is ≤ 2× with sync idle over a whole drain. The drain's mean lands above the allowance
 * (a cut takes effect a window late; lateness at the floor rate is not cut): with 1.25 a 1 GiB
 * drain measured 1.98× the idle phase (BENCHMARKS.md), too close to the bar.
 */
export const ALLOWANCE = 1;
/** … plus this many late readings per window, so that a capture never late is not hypersensitive. */
export const SLACK_READINGS = 0.5;
/**
 * Windows of allowance a run of on-time windows may bank. Lateness comes in bursts (a window at
 * rest reads 0 or 30 late at 1 kHz on a 2-core VM): judged window by window, or on a two-window
 * average, every burst cut the rate, noise kept sync at 2–7 MB/s with capture as punctual as
 * idle. The credit judges the running mean, which is what the bar measures, and still cuts at
 * once on lateness that lasts.
 */
export const CREDIT_WINDOWS = 4;
/** A gap between rounds shorter than this tells nothing of capture's rate (the engine was just made). */
export const MIN_GAP_SEC = 0.5;
/** The control window: the engine ticks this often while a round runs. */
export const WINDOW_MS = 1000;

export class CaptureFirst {
  private last: Sample;
  private rate = FLOOR_BYTES_PER_SECOND;
  /** Capture's late fraction in the last BASELINE_WINDOWS windows with sync held or idle; the baseline is their mean. */
  private readonly rest: number[] = [];
  /** Sync is held (paused) for the window now running: it will be a rest window. */
  private holding = false;
  /** The window now running is a round's first: its start-up (scan, threads) is no rest. */
  private firstOfRound = false;
  private cuts = 0;
  /** A cut happened since capture got busy: grow by GROWTH, not × 2. */
  private cut = false;
  /** The rate to return to after a probe window; undefined: not probing. */
  private resume: number | undefined;
  private busySinceRest = 0;
  /** Late fraction the busy windows have left to spend (CREDIT_WINDOWS); 0 after a cut or quiet. */
  private credit = 0;

  /**
   * Starts at the floor rate, held: until MIN_BASELINE_WINDOWS windows have measured capture at
   * rest (or one shows capture quiet), sync has no baseline to be judged against and must not be
   * the cause of the first late readings. `ceiling`: the user's cap (bytes/s; 0 = none), never exceeded.
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
    this.firstOfRound = true;
    // a gap too short to tell, or capture restarted (counters reset): the next window tells
    if (now.due >= prev.due && sec >= MIN_GAP_SEC) {
      if ((now.due - prev.due) / sec < MIN_READINGS) this.quiet();
      else if (this.rate === 0) this.set(FLOOR_BYTES_PER_SECOND);
    }
    if (this.rate !== 0 && this.rest.length < MIN_BASELINE_WINDOWS) this.hold();
  }

  /** One control window ended. */
  tick(): void {
    const now = this.sample();
    const prev = this.last;
    this.last = now;
    const held = this.holding;
    const first = this.firstOfRound;
    this.holding = false;
    this.firstOfRound = false;
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
    log.debug({ due, late, sentPerSec: Math.round(sentPerSec), rate: Math.round(this.rate), held, first, rest: this.rest.length }, 'window');
    // The baseline comes from windows in which sync was held (whatever it reserved: uploads in
    // flight each wait with a piece) or had next to nothing to send
    const idle = sentPerSec <= FLOOR_BYTES_PER_SECOND / 2;
    if ((held || idle) && !first) {
      this.rest.push(f);
      if (this.rest.length > BASELINE_WINDOWS) this.rest.shift();
      this.busySinceRest = 0;
    }
    if (idle && !held) {
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
      // not measured yet: sync stays held until it is
      this.set(FLOOR_BYTES_PER_SECOND);
      this.hold();
      return;
    }
    if (++this.busySinceRest >= PROBE_EVERY) {
      // one window held to re-measure the baseline, like LEDBAT's base delay
      this.resume = this.rate;
      this.set(FLOOR_BYTES_PER_SECOND);
      this.hold();
      return;
    }
    // the busy windows' running mean against the allowance (CREDIT_WINDOWS)
    const allowed = ALLOWANCE * mean(this.rest) + SLACK_READINGS / due;
    this.credit = Math.min(this.credit + allowed - f, CREDIT_WINDOWS * allowed);
    if (this.credit < 0 && this.rate <= FLOOR_BYTES_PER_SECOND) {
      // sync is at the floor already (~nothing in CPU): not its doing, nothing to cut
      this.credit = 0;
      return;
    }
    if (this.credit < 0) {
      this.cuts++;
      this.cut = true;
      this.credit = 0;
      this.set(Math.max(FLOOR_BYTES_PER_SECOND, Math.min(this.rate || sentPerSec, sentPerSec) / 2));
      return;
    }
    // no limit of ours until now (capture just got busy): grow from what sync sends, not from 0
    const grown = Math.max(FLOOR_BYTES_PER_SECOND, this.rate || sentPerSec) * (this.cut ? GROWTH : 2);
    // not far above what sync sends: a rate nobody uses would take many cuts to matter
    this.set(Math.min(grown, Math.max(2 * sentPerSec, 2 * FLOOR_BYTES_PER_SECOND)));
  }

  stats(): CaptureFirstStats {
    return { rate: rateOf(this.pace), baseline: this.rest.length < MIN_BASELINE_WINDOWS ? undefined : mean(this.rest), holding: this.holding, cuts: this.cuts };
  }

  private sample(): Sample {
    const l = this.lateness();
    return { late: l.late, due: l.due, taken: bytesTaken(this.pace), at: this.now() };
  }

  /** Capture quiet: nothing to protect, no limit but the user's; a probe or a cut in progress is over. */
  private quiet(): void {
    this.cut = false;
    this.credit = 0;
    this.resume = undefined;
    this.set(0);
  }

  /** Pause sync for the next window (at the rate set now): it will be a rest window. */
  private hold(): void {
    this.holding = true;
    holdBytes(this.pace, WINDOW_MS);
  }

  /** 0: no limit of ours; the user's cap always applies. */
  private set(rate: number): void {
    this.rate = rate;
    setRate(this.pace, this.ceiling > 0 ? (rate === 0 ? this.ceiling : Math.min(this.ceiling, rate)) : rate);
  }
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, x) => a + x, 0) / xs.length;
}
