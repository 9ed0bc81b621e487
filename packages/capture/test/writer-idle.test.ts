// What the writer promises still holds after an idle spell (issue 14). An idle writer sleeps
// deep: no flush tick until something rings the doorbell. Collectors ring only once their ring is
// a quarter full (collector.ts), unless the writer sleeps deep (Sleep.DEEP: then every push
// rings), so a lone reading must still reach disk, an open file still rotate at its age limit,
// and a ring retired from outside the loop still get its files committed. The writer body runs
// in-process, on the real fs (counted).
import { describe, expect, it } from 'vitest';
import { realFs, StreamEmitter, Writer, newStatsSab, type WriterEvent, type WriterFs } from '@edgecap/capture';
import { FrameEncoder } from '@edgecap/format';
import { Bell, createRingBuffer, Doorbell, RingProducer, Sleep } from '@edgecap/ring';
import { readBack, sleep, tmpDir } from './helpers.js';

const key = { kind: 'sensor', name: 'idle', method: 'Readings' };

function setup(o: { maxFileAgeMs?: number } = {}) {
  const dir = tmpDir('writer-idle');
  const bell = new Doorbell();
  const counts = { writes: 0, syncs: 0 };
  const cfs: WriterFs = {
    ...realFs,
    writeSync: (fd, b, off, len, pos) => (counts.writes++, realFs.writeSync(fd, b, off, len, pos)),
    fdatasyncSync: (fd) => (counts.syncs++, realFs.fdatasyncSync(fd)),
  };
  const events: WriterEvent[] = [];
  const w = new Writer(
    { captureDir: dir, partId: 'p', tags: [], maxFileBytes: 1 << 20, maxFileAgeMs: o.maxFileAgeMs ?? 600_000, flushIntervalMs: 20, fsyncIntervalMs: 100, bellSab: bell.sab },
    { fs: cfs, store: { advanceSeqSync: () => undefined }, emit: (e) => events.push(e) },
  );
  const ringSab = createRingBuffer(1 << 16);
  const statsSab = newStatsSab();
  w.addRing(1, ringSab, [{ index: 0, key, statsSab }]);
  // as collector.ts: ring the doorbell only at a quarter-full ring
  const ring = new RingProducer(ringSab, bell, Math.floor(ringSab.byteLength / 4));
  const em = new StreamEmitter({ ring, enc: new FrameEncoder(), sendOversize: () => {}, nextToken: { v: 0 } }, 0, statsSab, 0, undefined);
  return { dir, w, ring, em, counts, events, bell };
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const finished = (events: WriterEvent[]): number => events.filter((e) => e.type === 'file-finished').length;

describe('idle writer', () => {
  it('writes and fdatasyncs a lone reading that comes after an idle spell, though its producer does not ring', async () => {
    const { dir, w, ring, em, counts, bell } = setup();
    w.start();
    expect(em.emit({ v: 0 }, 1, 2)).toBe(true);
    await until(() => counts.writes >= 1 && counts.syncs >= 1, 'the first reading written and synced');
    const before = { writes: counts.writes, syncs: counts.syncs };
    await sleep(500); // idle: 25 flush ticks' worth of nothing to do
    expect(counts.writes).toBe(before.writes); // nothing to write, nothing to sync while idle
    expect(counts.syncs).toBe(before.syncs);
    expect(bell.words[Bell.SLEEPING]).toBe(Sleep.DEEP); // and no timer: asleep until rung
    expect(em.emit({ v: 1 }, 3, 4)).toBe(true);
    await until(() => counts.writes > before.writes && counts.syncs > before.syncs, 'the reading after the idle spell written and synced');
    expect(readBack(dir, '.prog').get('sensor/idle/Readings')!.readings.map((r) => r.seq)).toEqual([0, 1]);
    ring.close();
    await w.stop();
    expect(readBack(dir).get('sensor/idle/Readings')!.readings.map((r) => r.seq)).toEqual([0, 1]);
  });

  it('rotates a file left open at idle when it reaches its age limit', async () => {
    const { dir, w, ring, em, events } = setup({ maxFileAgeMs: 200 });
    w.start();
    expect(em.emit({ v: 0 }, 1, 2)).toBe(true);
    await until(() => finished(events) === 1, 'the aged file renamed (file-finished)');
    expect(readBack(dir).get('sensor/idle/Readings')!.readings.map((r) => r.seq)).toEqual([0]);
    expect(readBack(dir, '.prog').size).toBe(0);
    ring.close();
    await w.stop();
  });

  it('commits the files of a ring retired while the writer sleeps', async () => {
    const { dir, w, em, counts, events } = setup();
    w.start();
    expect(em.emit({ v: 0 }, 1, 2)).toBe(true);
    await until(() => counts.syncs >= 1, 'the reading written and synced');
    await sleep(100); // asleep with nothing due
    const ends = await w.retireRing(1);
    expect(ends).toEqual([{ key, nextSeq: 1 }]);
    await until(() => finished(events) === 1, 'the retired ring’s file renamed (file-finished)');
    expect(readBack(dir).get('sensor/idle/Readings')!.readings.map((r) => r.seq)).toEqual([0]);
    await w.stop();
  });
});
