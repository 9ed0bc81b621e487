/**
 * Capture first's controller (capture-first.ts), window by window: the lateness capture reports
 * and the bytes sync takes from the shared pace are driven by the test; tick() is one window.
 */
import { describe, expect, it } from 'vitest';
import { ALLOWANCE, CaptureFirst, CREDIT_WINDOWS, FLOOR_BYTES_PER_SECOND as FLOOR, GROWTH, MIN_BASELINE_WINDOWS, PROBE_EVERY } from '../dist/capture-first.js';
import { createRateLimit, rateOf, reserveBytes } from '../dist/link.js';

/** A capture at `hz` and a sync that sends what the pace allows (or `want`, if less; nothing while held); a round starts at once. */
function rig(opts: { hz?: number; ceiling?: number } = {}) {
  const hz = opts.hz ?? 1000;
  const pace = createRateLimit();
  const counters = { late: 0, due: 0 };
  const clock = { ms: 0 };
  const cf = new CaptureFirst(pace, () => ({ ...counters }), opts.ceiling ?? 0, () => clock.ms);
  cf.restart();
  /** One 1 s window: `late` of the readings due were late; sync sent min(rate, want) bytes, or none if held. */
  const window = (late: number, want = Infinity, due = hz): number => {
    const held = cf.stats().holding;
    clock.ms += 1000;
    counters.due += due;
    counters.late += late;
    const rate = rateOf(pace);
    const sent = held ? 0 : Math.min(rate === 0 ? 1e9 : rate, want);
    if (sent > 0) reserveBytes(pace, sent);
    cf.tick();
    return rateOf(pace);
  };
  /** Time passes between rounds (no ticks): capture due `dueInGap` readings meanwhile. */
  const gap = (ms: number, dueInGap: number): void => {
    clock.ms += ms;
    counters.due += dueInGap;
  };
  /** Capture restarted: its counters start over. */
  const resetCapture = (): void => {
    counters.due = 0;
    counters.late = 0;
  };
  return { cf, pace, window, gap, resetCapture };
}

describe('capture first: sync paced by capture lateness', () => {
  it('holds sync (paused) until capture has been measured at rest, then doubles while capture is on time', () => {
    const { window, cf } = rig();
    expect(cf.stats()).toMatchObject({ rate: FLOOR, holding: true });
    const rates: number[] = [];
    const holding: boolean[] = [];
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 5; i++) {
      rates.push(window(5));
      holding.push(cf.stats().holding);
    }
    // the round's first window (its start-up) and then MIN_BASELINE_WINDOWS rest windows, sync
    // paused in each; the last of them completes the baseline and the rate doubles from there
    expect(holding.slice(0, MIN_BASELINE_WINDOWS)).toEqual(Array(MIN_BASELINE_WINDOWS).fill(true));
    expect(holding.slice(MIN_BASELINE_WINDOWS)).toEqual(Array(5).fill(false));
    expect(rates.slice(0, MIN_BASELINE_WINDOWS)).toEqual(Array(MIN_BASELINE_WINDOWS).fill(FLOOR));
    expect(rates.slice(MIN_BASELINE_WINDOWS)).toEqual([2, 4, 8, 16, 32].map((k) => k * FLOOR));
    expect(cf.stats().baseline).toBeCloseTo(0.005);
    expect(cf.stats().cuts).toBe(0);
  });

  it('halves the rate when capture runs late beyond its baseline, then grows it back slowly', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 4; i++) window(5);
    const inForce = window(5); // the rate sync sends at in the next window
    // late 8× the baseline in that window: more than the credit banked by the on-time ones, a cut to half
    const r = window(40);
    expect(cf.stats().cuts).toBe(1);
    expect(r).toBe(inForce / 2);
    // on time again: × GROWTH per window, not × 2
    const next = window(5);
    expect(next / r).toBeCloseTo(GROWTH);
  });

  it('a burst of lateness spends the credit on-time windows banked; lateness that lasts cuts at once', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 1; i++) window(5); // baseline 5 late per window
    for (let i = 0; i < CREDIT_WINDOWS + 4; i++) window(0); // on time: credit banked, up to its cap
    // one window 3× the baseline: the mean over the run stays within the allowance, no cut
    window(15);
    expect(cf.stats().cuts).toBe(0);
    // lateness at 3× that lasts: the credit runs out within a window or two, and every window after cuts
    for (let i = 0; i < 6; i++) window(15);
    expect(cf.stats().cuts).toBeGreaterThanOrEqual(4);
  });

  it('does not cut for lateness that capture also has at rest (the robot’s own load is not sync’s doing)', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS; i++) window(60); // 6 % late at rest
    let rate = 0;
    for (let i = 0; i < 6; i++) rate = window(60 * ALLOWANCE - 10);
    expect(cf.stats().cuts).toBe(0);
    expect(rate).toBeGreaterThan(16 * FLOOR);
  });

  it('the round’s first window is no rest window: its start-up stays out of the baseline, which is the mean of the rest', () => {
    const { window, cf } = rig();
    window(300); // the round's start-up (scan, threads), sync paused
    window(0);
    window(0);
    expect(cf.stats().baseline).toBeUndefined();
    window(30); // a burst at rest counts as the bar counts it: in the mean
    expect(cf.stats().baseline).toBeCloseTo(0.01);
  });

  it('a paused window is paused: pieces reserved in it wait for the window to end', () => {
    const { cf, pace } = rig();
    expect(cf.stats().holding).toBe(true);
    // the rig's clock is the controller's; the pace runs on the process clock
    expect(reserveBytes(pace, 1024)).toBeGreaterThan(900);
  });

  it('capture quiet or stopped: no limit but the user’s cap', () => {
    const quiet = rig({ hz: 10 });
    expect(quiet.window(0)).toBe(0); // 0 = no limit
    const capped = rig({ hz: 10, ceiling: 1_000_000 });
    expect(capped.window(0)).toBe(1_000_000);
  });

  it('never above the user’s cap while capture is on time', () => {
    const { window } = rig({ ceiling: 3 * FLOOR });
    let max = 0;
    for (let i = 0; i < 12; i++) max = Math.max(max, window(0));
    expect(max).toBe(3 * FLOOR);
  });

  it('re-measures the baseline with one window paused every PROBE_EVERY busy windows, then resumes', () => {
    const { window, cf } = rig();
    const rates: number[] = [];
    const holding: boolean[] = [];
    for (let i = 0; i < MIN_BASELINE_WINDOWS + PROBE_EVERY + 3; i++) {
      rates.push(window(1));
      holding.push(cf.stats().holding);
    }
    const probe = holding.indexOf(true, MIN_BASELINE_WINDOWS);
    // windows 0 … MIN_BASELINE_WINDOWS - 1 held (start-up, then rest); the next PROBE_EVERY - 1 busy
    expect(probe).toBe(MIN_BASELINE_WINDOWS - 1 + PROBE_EVERY);
    expect(rates[probe]).toBe(FLOOR);
    expect(holding[probe + 1]).toBe(false);
    expect(rates[probe + 1]).toBe(rates[probe - 1]);
  });

  it('a round starting after capture went quiet lifts the limit at once; one starting after it got busy again starts at the floor', () => {
    const { window, gap, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 3; i++) window(5);
    expect(cf.stats().rate).toBeGreaterThan(FLOOR);
    gap(60_000, 100); // capture stopped (a clean stop's last round): 100 readings in a minute
    cf.restart();
    expect(cf.stats().rate).toBe(0);
    gap(60_000, 60_000); // capture at 1 kHz again before the next round
    cf.restart();
    expect(cf.stats().rate).toBe(FLOOR);
  });

  it('capture getting busy while sync runs unlimited and on time: the limit grows from what sync sends, not from the floor', () => {
    const { window } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 1; i++) window(5);
    expect(window(0, Infinity, 10)).toBe(0); // capture quiet: no limit
    // busy again, on time, sync sending 100 × the floor rate in that window
    expect(window(5, 100 * FLOOR)).toBe(200 * FLOOR);
  });

  it('capture restarted (its counters start over): that window is skipped, the next one is judged', () => {
    const { window, resetCapture, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 2; i++) window(5);
    const r = cf.stats().rate;
    resetCapture();
    expect(window(500)).toBe(r); // counters went down: no window, no cut
    expect(cf.stats().cuts).toBe(0);
    window(5);
    expect(cf.stats().rate).toBeGreaterThan(r);
  });

  it('a user cap below the floor rate: sync never goes above it, and capture first never cuts under it', () => {
    const cap = FLOOR / 2;
    const { window, cf } = rig({ ceiling: cap });
    const rates = [cf.stats().rate];
    for (let i = 0; i < 6; i++) rates.push(window(i === 4 ? 500 : 5));
    expect(rates.every((r) => r === cap)).toBe(true);
  });

  it('sync idle: the rate stays where it was, and those windows count as rest', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 3; i++) window(5);
    const r = cf.stats().rate;
    expect(window(20, 0)).toBe(r);
    expect(cf.stats().baseline).toBeCloseTo(0.005);
  });
});

describe('a pace shared between engines (memory mode)', () => {
  it('is refused together with capture first, which would overwrite the shared cap', async () => {
    const { SyncEngine } = await import('../dist/engine.js');
    const base = { captureDir: '/nonexistent/capture', stateDir: '/nonexistent/state', additionalSyncPaths: [], fileLastModifiedMs: 0, intervalMs: 60_000, threads: 1, partId: 'p', tags: [], ingest: { address: '127.0.0.1:1', insecure: true } };
    const rateLimit = createRateLimit(65536);
    expect(() => new SyncEngine({ ...base, rateLimit, captureLateness: () => ({ late: 0, due: 0 }) })).toThrow(/rateLimit .* captureLateness cannot be combined/);
    // alone, the shared pace is the engine's: its rate is the caller's
    expect(() => new SyncEngine({ ...base, rateLimit })).not.toThrow();
    expect(rateOf(rateLimit)).toBe(65536);
  });
});
