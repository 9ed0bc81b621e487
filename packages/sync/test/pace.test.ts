/** The edge-wide pace (link.ts): reservations, and refunds of bytes reserved and never sent. */
import { describe, expect, it } from 'vitest';
import { RATE_BURST_MS, createRateLimit, refundBytes, reserveBytes } from '../dist/link.js';

const RATE = 100_000; // bytes/s: 100 bytes per ms

describe('pace refunds', () => {
  it('a refund gives the reserved time back to the next reservation', () => {
    const pace = createRateLimit(RATE);
    const first = reserveBytes(pace, RATE); // one second of the rate
    const second = reserveBytes(pace, RATE); // queued behind it
    expect(first).toBeGreaterThanOrEqual(1000 - RATE_BURST_MS - 5);
    expect(second).toBeGreaterThanOrEqual(2000 - RATE_BURST_MS - 5);
    refundBytes(pace, RATE); // the second's call ended while it waited
    const third = reserveBytes(pace, RATE);
    // waits as the second did, not a second longer
    expect(third).toBeLessThanOrEqual(second + 1);
    expect(third).toBeGreaterThanOrEqual(second - 50);
  });

  it('never gives credit beyond the burst: a refund larger than the schedule stops at now', () => {
    const pace = createRateLimit(RATE);
    reserveBytes(pace, RATE / 100); // 10 ms of the rate, inside the burst
    refundBytes(pace, 10 * RATE); // ten seconds' worth
    const next = reserveBytes(pace, RATE);
    // a fresh pace would make one second of the rate wait ~(1000 - burst) ms: no less here
    expect(next).toBeGreaterThanOrEqual(1000 - RATE_BURST_MS - 5);
  });

  it('an unlimited pace ignores refunds', () => {
    const pace = createRateLimit(0);
    refundBytes(pace, RATE);
    expect(reserveBytes(pace, 10 * RATE)).toBe(0);
  });
});
