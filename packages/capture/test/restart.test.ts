import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureEngine } from '@edgecap/capture';
import { ErrorCodes } from '@edgecap/core';
import type { StateStore } from '@edgecap/store';
import { newStore, readBack, sleep, tmpDir } from './helpers.js';

const crashy = fileURLToPath(new URL('./fixtures/crashy.mjs', import.meta.url));
const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

describe('a crashed collector thread', () => {
  it('is reported and restarted; its stream continues with no seq reused and no hole unexplained; the other streams never stop', async () => {
    const dir = tmpDir('restart');
    const store = newStore(dir);
    stores.push(store);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
    const errors: { code: string }[] = [];
    const restarts: { resource: string; attempt: number }[] = [];
    eng.on('error', (e: { code: string }) => errors.push(e));
    eng.on('collector-restarted', (e: { resource: string; attempt: number }) => restarts.push(e));
    await eng.start([
      { name: 'crashy', module: crashy, attributes: { marker: path.join(dir, 'crashed.marker') }, methods: [{ method: 'Readings', frequencyHz: 200 }] },
      { name: 'steady', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 200 }] },
    ]);
    const at = (name: string) => eng.stats().find((s) => s.resource === name)!.captured;
    // crash at ~300 ms, restart 1 s later (±20 % jitter); then it must capture again
    for (let i = 0; i < 60 && restarts.length === 0; i++) await sleep(100);
    expect(errors.map((e) => e.code)).toEqual([ErrorCodes.WORKER_EXITED]);
    expect(restarts).toEqual([{ resource: 'crashy', attempt: 1 }]);
    const afterRestart = at('crashy');
    await sleep(500);
    expect(at('crashy')).toBeGreaterThan(afterRestart + 30);
    await eng.stop();

    const disk = readBack(dir);
    for (const s of eng.stats()) {
      const d = disk.get(`${s.kind}/${s.resource}/${s.method}`)!;
      expect(d.readings.length).toBe(s.captured);
      // one seq line across the restart: anything the dead thread numbered but never wrote
      // would be a recorded collector_crash gap (a timer's exception lands between readings)
      const gaps = store.unreportedGaps().filter((g) => g.name === s.resource);
      const explained = new Set(gaps.flatMap((g) => Array.from({ length: g.to_seq - g.from_seq + 1 }, (_, i) => g.from_seq + i)));
      expect(gaps.every((g) => g.reason === 'collector_crash')).toBe(true);
      const seqs = d.readings.map((r) => r.seq);
      expect(seqs.some((q) => explained.has(q))).toBe(false);
      expect([...seqs, ...explained].sort((a, b) => a - b)).toEqual([...Array(s.nextSeq).keys()]);
    }
    // the steady stream never paused for its neighbour's crash
    const steady = disk.get('sensor/steady/Readings')!.readings;
    const times = steady.map((r) => r.time_received_us);
    const worstPause = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    expect(worstPause).toBeLessThan(500_000);
  });
});
