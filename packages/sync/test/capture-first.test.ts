/**
 * Capture first's controller (capture-first.ts), window by window: the lateness capture reports
 * and the bytes sync takes from the shared pace are driven by the test; tick() is one window.
 */
import { describe, expect, it } from 'vitest';
import { ALLOWANCE, CaptureFirst, FLOOR_BYTES_PER_SECOND as FLOOR, GROWTH, MIN_BASELINE_WINDOWS, PROBE_EVERY } from '../dist/capture-first.js';
import { createRateLimit, rateOf, reserveBytes } from '../dist/link.js';

/** A capture at `hz` and a sync that sends what the pace allows (or `want`, if less). */
function rig(opts: { hz?: number; ceiling?: number } = {}) {
  const hz = opts.hz ?? 1000;
  const pace = createRateLimit();
  const counters = { late: 0, due: 0 };
  const clock = { ms: 0 };
  const cf = new CaptureFirst(pace, () => ({ ...counters }), opts.ceiling ?? 0, () => clock.ms);
  /** One 1 s window: `late` of the readings due were late; sync sent min(rate, want) bytes. */
  const window = (late: number, want = Infinity, due = hz): number => {
    clock.ms += 1000;
    counters.due += due;
    counters.late += late;
    const rate = rateOf(pace);
    const sent = Math.min(rate === 0 ? 1e9 : rate, want);
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
  it('holds sync at the floor until capture has been measured at rest, then doubles while capture is on time', () => {
    const { window, cf } = rig();
    expect(cf.stats().rate).toBe(FLOOR);
    const rates: number[] = [];
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 4; i++) rates.push(window(5));
    // rest windows at the floor; the third completes the baseline and the rate doubles from there
    expect(rates.slice(0, MIN_BASELINE_WINDOWS - 1)).toEqual(Array(MIN_BASELINE_WINDOWS - 1).fill(FLOOR));
    expect(rates.slice(MIN_BASELINE_WINDOWS - 1)).toEqual([2, 4, 8, 16, 32].map((k) => k * FLOOR));
    expect(cf.stats().baseline).toBeCloseTo(0.005);
    expect(cf.stats().cuts).toBe(0);
  });

  it('halves the rate when capture runs late beyond its baseline, then grows it back slowly', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS + 4; i++) window(5);
    const inForce = window(5); // the rate sync sends at in the next window
    // late 8× the baseline in that window (over 2× on the two-window average): a cut to half
    const r = window(40);
    expect(cf.stats().cuts).toBe(1);
    expect(r).toBe(inForce / 2);
    // on time again: × GROWTH per window, not × 2
    const next = window(5);
    expect(next / r).toBeCloseTo(GROWTH);
  });

  it('does not cut for lateness that capture also has at rest (the robot’s own load is not sync’s doing)', () => {
    const { window, cf } = rig();
    for (let i = 0; i < MIN_BASELINE_WINDOWS; i++) window(60); // 6 % late at rest
    let rate = 0;
    for (let i = 0; i < 6; i++) rate = window(60 * ALLOWANCE - 10);
    expect(cf.stats().cuts).toBe(0);
    expect(rate).toBeGreaterThan(16 * FLOOR);
  });

  it('a single burst of lateness at rest does not make the allowance (median of the rest windows)', () => {
    const { window, cf } = rig();
    window(300); // capture's own start-up, with sync at the floor
    window(2);
    window(3);
    expect(cf.stats().baseline).toBeCloseTo(0.003);
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

  it('re-measures the baseline with one window at the floor every PROBE_EVERY busy windows, then resumes', () => {
    const { window } = rig();
    const rates: number[] = [];
    for (let i = 0; i < MIN_BASELINE_WINDOWS + PROBE_EVERY + 3; i++) rates.push(window(1));
    const probe = rates.indexOf(FLOOR, MIN_BASELINE_WINDOWS);
    // the window that completed the baseline is the first busy one
    expect(probe).toBe(MIN_BASELINE_WINDOWS - 2 + PROBE_EVERY);
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
