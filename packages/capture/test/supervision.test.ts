import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureEngine } from '@edgecap/capture';
import { ErrorCodes } from '@edgecap/core';
import type { StateStore } from '@edgecap/store';
import { expectAccounted, newStore, readBack, sleep, tmpDir } from './helpers.js';

const writerDies = new URL('./fixtures/writer-dies.mjs', import.meta.url);
const writerHangs = new URL('./fixtures/writer-hangs.mjs', import.meta.url);
const hangsLater = fileURLToPath(new URL('./fixtures/hangs-later.mjs', import.meta.url));

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
  for (const k of ['EDGECAP_TEST_WRITER_MARKER', 'EDGECAP_TEST_WRITER_DIE_MS', 'EDGECAP_TEST_WRITER_HANG_AT_MS', 'EDGECAP_TEST_WRITER_HANG_MS']) delete process.env[k];
});

describe('writer thread supervision', () => {
  it('a writer that dies mid-capture is restarted; capture continues; every seq is on disk or explained; stop() returns', async () => {
    const dir = tmpDir('wdies');
    const store = newStore(dir);
    stores.push(store);
    process.env.EDGECAP_TEST_WRITER_MARKER = path.join(dir, 'writer.marker');
    process.env.EDGECAP_TEST_WRITER_DIE_MS = '900';
    const eng = new CaptureEngine({
      captureDir: dir,
      store,
      partId: 'p',
      tags: [],
      flushIntervalMs: 100,
      maxFileBytes: 32 * 1024,
      restart: { initialMs: 300, maxMs: 1000 },
      writerUrl: writerDies,
    });
    const errors: { code: string; message: string }[] = [];
    const restarts: { attempt: number }[] = [];
    eng.on('error', (e: { code: string; message: string }) => errors.push(e));
    eng.on('writer-restarted', (e: { attempt: number }) => restarts.push(e));
    await eng.start([
      { name: 's', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 200 }] },
      { name: 'imu', model: 'sim:movement_sensor', methods: [{ method: 'Position', frequencyHz: 500 }] },
      // images larger than the ring: oversize frames, whose bytes travel by message
      { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 40_000 }, methods: [{ method: 'ReadImage', frequencyHz: 20, queueBytes: 64 * 1024 }] },
    ]);
    let pushed = 0;
    const pushing = setInterval(() => {
      for (let i = 0; i < 5; i++) if (eng.push('app', 'Events', { i: pushed++ })) continue;
    }, 10);
    try {
      for (let i = 0; i < 80 && restarts.length === 0; i++) await sleep(100);
      expect(restarts).toEqual([{ attempt: 1 }]);
      expect(errors.map((e) => e.code)).toEqual([ErrorCodes.WORKER_EXITED]);
      expect(errors[0]!.message).toMatch(/edgecap-writer exited unexpectedly \(code 7\)/);
      const before = new Map(eng.stats().map((s) => [s.resource, s.captured]));
      // the dead writer's files were recovered, and every stream goes on after the restart
      // (polled with a deadline: a loaded CI host is slow, not wrong)
      for (let i = 0; i < 100 && readBack(dir).size === 0; i++) await sleep(100);
      expect(readBack(dir).size).toBeGreaterThan(0);
      const grew = () => eng.stats().every((s) => s.captured > (before.get(s.resource) ?? 0));
      for (let i = 0; i < 150 && !grew(); i++) await sleep(100);
      for (const s of eng.stats()) expect(s.captured, s.resource).toBeGreaterThan(before.get(s.resource) ?? 0);
    } finally {
      clearInterval(pushing);
    }
    const t0 = performance.now();
    await eng.stop();
    expect(performance.now() - t0).toBeLessThan(10_000);

    const stats = eng.stats();
    expect(stats.map((s) => s.resource).sort()).toEqual(['app', 'cam', 'imu', 's']);
    const reasons = expectAccounted(dir, store, stats);
    for (const r of reasons.values()) for (const x of r) expect(['writer_crash', 'ring_full']).toContain(x);
    // readings captured after the restart reached the disk, and the persisted seqs cover the disk
    const disk = readBack(dir);
    for (const s of stats) {
      const d = disk.get(`${s.kind}/${s.resource}/${s.method}`)!;
      const max = Math.max(...d.readings.map((r) => r.seq));
      expect(max).toBeGreaterThan(s.nextSeq - 200);
      expect(store.nextSeq({ kind: s.kind, name: s.resource, method: s.method })).toBeGreaterThan(max);
    }
    expect(eng.stats().find((s) => s.resource === 'app')!.nextSeq).toBe(pushed);
  });

  it('a writer that hangs (never answers) does not hold stop(): it returns within the call timeout with the error, files recovered, losses explained', async () => {
    const dir = tmpDir('whangs');
    const store = newStore(dir);
    stores.push(store);
    process.env.EDGECAP_TEST_WRITER_MARKER = path.join(dir, 'writer.marker');
    // generous times: start-up on a loaded CI host can take seconds, and init() must land first
    process.env.EDGECAP_TEST_WRITER_HANG_AT_MS = '4000';
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 100, callTimeoutMs: 4000, writerStopTimeoutMs: 1500, writerUrl: writerHangs });
    const errors: { code: string }[] = [];
    eng.on('error', (e: { code: string }) => errors.push(e));
    await eng.start([{ name: 's', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 200 }] }]);
    for (let i = 0; i < 50; i++) eng.push('app', 'Events', { i });
    await sleep(5000); // hung since 4 s after it loaded; no call reached it since
    const t0 = performance.now();
    const err = (await eng.stop().catch((e: unknown) => e)) as { code: string; message: string; details?: { timeout?: boolean } };
    const took = performance.now() - t0;
    expect(took).toBeLessThan(4000 + 3000);
    expect(err).toMatchObject({ code: ErrorCodes.WORKER_EXITED, details: { timeout: true } });
    expect(err.message).toMatch(/did not answer/);
    const stats = eng.stats();
    const reasons = expectAccounted(dir, store, stats);
    // what the hung writer held in memory or never read from the rings is a writer_crash gap
    expect(reasons.get('sensor/s/Readings')).toContain('writer_crash');
    expect(readBack(dir).get('sensor/s/Readings')!.readings.length).toBeGreaterThan(0);
  });
});

describe('collector stop timeout', () => {
  it('a collector that cannot stop is terminated: the error is surfaced and what it numbered but never published is a gap', async () => {
    const dir = tmpDir('ctimeout');
    const store = newStore(dir);
    stores.push(store);
    // the writer stalls (not dies) from 1 s to 3.5 s: the collector's small ring fills and drops
    // (~1 s of readings at 200 Hz into 4 KiB), then its resource hangs (2.2 s), so the pending
    // ring_full gap is never published
    process.env.EDGECAP_TEST_WRITER_MARKER = path.join(dir, 'writer.marker');
    process.env.EDGECAP_TEST_WRITER_HANG_AT_MS = '1000';
    process.env.EDGECAP_TEST_WRITER_HANG_MS = '2500';
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 100, collectorStopTimeoutMs: 500, callTimeoutMs: 8000, writerUrl: writerHangs });
    const errors: { code: string; details?: { timeout?: boolean } }[] = [];
    eng.on('error', (e: { code: string; details?: { timeout?: boolean } }) => errors.push(e));
    await eng.start([{ name: 'stuck', module: hangsLater, attributes: { hang_after_ms: 2200 }, methods: [{ method: 'Readings', frequencyHz: 200, queueBytes: 4096 }] }]);
    await sleep(2800);
    const t0 = performance.now();
    await eng.stop();
    expect(performance.now() - t0).toBeLessThan(8000);
    expect(errors).toMatchObject([{ code: ErrorCodes.WORKER_EXITED, details: { timeout: true } }]);
    const st = eng.stats()[0]!;
    expect(st.dropped).toBeGreaterThan(0);
    const reasons = expectAccounted(dir, store, eng.stats());
    expect(reasons.get('sensor/stuck/Readings')).toContain('collector_timeout');
    const g = store.unreportedGaps().find((x) => x.reason === 'collector_timeout')!;
    expect(g.to_seq).toBe(st.nextSeq - 1);
  });
});
