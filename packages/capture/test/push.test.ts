import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureEngine, type ResourceSpec } from '@edgecap/capture';
import type { StateStore } from '@edgecap/store';
import { expectContiguous, newStore, readBack, sleep, tmpDir } from './helpers.js';

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});
const mod = fileURLToPath(new URL('./fixtures/my-sensor.mjs', import.meta.url));

describe('push path, oversize fallback, ring-full gaps', () => {
  it('pushed readings arrive in order; one larger than the ring arrives intact in place', async () => {
    const dir = tmpDir('push');
    const store = newStore(dir);
    stores.push(store);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], pushQueueBytes: 8192 });
    await eng.start([]);
    const big = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
    let pushed = 0;
    for (let i = 0; i < 300; i++) {
      // paced so the small ring never fills: this test is about order, not drops
      if (i % 20 === 0) await sleep(5);
      if (i === 150) expect(eng.push('serial', 'Bytes', big, { mimeType: 'application/x-blob', kind: 'port' })).toBe(true);
      else expect(eng.push('serial', 'Bytes', { i }, { kind: 'port' })).toBe(true);
      pushed++;
    }
    await eng.stop();
    const d = readBack(dir).get('port/serial/Bytes')!;
    expect(d.readings.length).toBe(pushed);
    expectContiguous(d.readings, 0);
    for (let i = 0; i < pushed; i++) {
      const r = d.readings[i]!;
      if (i === 150) {
        expect(r.mime_type).toBe('application/x-blob');
        expect(Buffer.from(r.data as Uint8Array).equals(Buffer.from(big))).toBe(true);
      } else expect(r.data).toEqual({ i });
    }
  });

  it('a full ring drops, counts, and a GAP frame explains exactly the missing seqs', async () => {
    const dir = tmpDir('gap');
    const store = newStore(dir);
    stores.push(store);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], pushQueueBytes: 4096 });
    await eng.start([]);
    const payload = 'x'.repeat(200);
    let ok = 0;
    let refused = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) (eng.push('burst', 'Readings', { payload }) ? ok++ : refused++);
      await sleep(50);
    }
    expect(eng.push('burst', 'Readings', { last: true })).toBe(true); // carries the pending GAP
    ok++;
    await eng.stop();
    const st = eng.stats().find((s) => s.resource === 'burst')!;
    expect(refused).toBeGreaterThan(0);
    expect(st.dropped).toBe(refused);
    expect(st.captured).toBe(ok);
    const d = readBack(dir).get('generic/burst/Readings')!;
    expect(d.readings.length).toBe(ok);
    const onDisk = new Set(d.readings.map((r) => r.seq));
    const explained = new Set<number>();
    for (const g of d.gaps) {
      expect(g.reason).toBe('ring_full');
      for (let s = g.from_seq; s <= g.to_seq; s++) {
        expect(onDisk.has(s)).toBe(false);
        explained.add(s);
      }
    }
    expect(explained.size).toBe(refused);
    for (let s = 0; s < st.nextSeq; s++) expect(onDisk.has(s) !== explained.has(s)).toBe(true);
    // readings in seq order
    for (let i = 1; i < d.readings.length; i++) expect(d.readings[i]!.seq).toBeGreaterThan(d.readings[i - 1]!.seq);
  });
});

describe('user modules and reconfigure', () => {
  it('loads a module resource, tracks should_sync, and a bad export fails with RESOURCE_LOAD', async () => {
    const dir = tmpDir('mod');
    const store = newStore(dir);
    stores.push(store);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
    await eng.start([{ name: 'mine', module: mod, methods: [{ method: 'Readings', frequencyHz: 50 }] }]);
    await sleep(200);
    expect(eng.shouldSync('mine')).toBe(true);
    expect(eng.shouldSync('nobody')).toBeUndefined();
    await expect(eng.reconfigure([
      { name: 'mine', module: mod, methods: [{ method: 'Readings', frequencyHz: 50 }] },
      { name: 'bad', module: mod, export: 'nope', methods: [{ method: 'Readings', frequencyHz: 5 }] },
    ])).rejects.toMatchObject({ code: 'EDGECAP_ERR_RESOURCE_LOAD', message: expect.stringContaining('"bad"') });
    await expect(eng.reconfigure([
      { name: 'mine', module: mod, methods: [{ method: 'Readings', frequencyHz: 50 }] },
      { name: 'flag', module: mod, export: 'flagged', methods: [{ method: 'Nope', frequencyHz: 5 }] },
    ])).rejects.toThrow(/no method "Nope"/);
    await eng.stop();
    const d = readBack(dir).get('sensor/mine/Readings')!;
    expectContiguous(d.readings, 0);
    expect(d.readings.length).toBe(eng.stats()[0]!.captured);
  });

  it('reconfigure changing one resource keeps the other streams gap-free; the changed one continues its seq', async () => {
    const dir = tmpDir('reconf');
    const store = newStore(dir);
    stores.push(store);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
    const a: ResourceSpec = { name: 'a', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 200 }] };
    const b: ResourceSpec = { name: 'b', model: 'sim:movement_sensor', methods: [{ method: 'Position', frequencyHz: 100 }] };
    await eng.start([a, b]);
    await sleep(700);
    const before = eng.stats().find((s) => s.resource === 'a')!.captured;
    await eng.reconfigure([a, { ...b, methods: [{ method: 'Position', frequencyHz: 20 }] }]);
    await sleep(700);
    await eng.stop();
    const disk = readBack(dir);
    for (const s of eng.stats()) {
      const d = disk.get(`${s.kind}/${s.resource}/${s.method}`)!;
      expect(s.dropped).toBe(0);
      expect(d.readings.length).toBe(s.captured);
      expectContiguous(d.readings, 0);
      expect(d.gaps).toEqual([]);
    }
    const aStats = eng.stats().find((s) => s.resource === 'a')!;
    expect(aStats.captured).toBeGreaterThan(before); // kept streaming through the reconfigure
    // a's stream was never interrupted: one collector, so its file was never closed in between
    expect(disk.get('sensor/a/Readings')!.files.length).toBe(1);
  });
});
