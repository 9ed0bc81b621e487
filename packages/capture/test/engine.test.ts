import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureEngine, type ResourceSpec } from '@edgecap/capture';
import type { StateStore } from '@edgecap/store';
import { expectContiguous, newStore, readBack, sleep, tmpDir } from './helpers.js';

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

describe('CaptureEngine with collector threads', () => {
  it('4 collectors at 1/10/100/1000 Hz + a camera: disk holds exactly what stats report, seq contiguous, none corrupt', async () => {
    const dir = tmpDir('four');
    const store = newStore(dir);
    stores.push(store);
    // a stream that already has history: seq must continue from the persisted value
    store.advanceSeqSync({ kind: 'sensor', name: 's100', method: 'Readings' }, 500);
    const resources: ResourceSpec[] = [
      { name: 's1', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 1 }] },
      { name: 's10', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 10 }] },
      { name: 's100', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 100 }] },
      { name: 'imu', model: 'sim:movement_sensor', methods: [{ method: 'Position', frequencyHz: 1000 }, { method: 'Orientation', frequencyHz: 0 }] },
      { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 20000 }, methods: [{ method: 'ReadImage', frequencyHz: 5, additionalParams: { mime_type: 'image/png' } }] },
    ];
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'part-1', tags: ['t1'], maxFileBytes: 64 * 1024 });
    const finished: string[] = [];
    eng.on('file-finished', (e: { path: string }) => finished.push(e.path));
    await eng.start(resources);
    await sleep(3000);
    await eng.stop();
    const stats = eng.stats();
    const disk = readBack(dir);
    expect(stats.map((s) => `${s.kind}/${s.resource}/${s.method}`).sort()).toEqual([...disk.keys()].sort());
    for (const s of stats) {
      const d = disk.get(`${s.kind}/${s.resource}/${s.method}`)!;
      const start = s.resource === 's100' ? 500 : 0;
      expect(s.dropped).toBe(0);
      expect(d.readings.length).toBe(s.captured);
      expect(s.nextSeq).toBe(start + s.captured);
      expectContiguous(d.readings, start);
      expect(d.header.part_id).toBe('part-1');
      expect(d.header.tags).toEqual(['t1']);
      expect(store.nextSeq({ kind: s.kind, name: s.resource, method: s.method })).toBe(s.nextSeq);
    }
    const get = (k: string) => stats.find((s) => `${s.kind}/${s.resource}/${s.method}` === k)!;
    expect(get('sensor/s1/Readings').captured).toBeGreaterThanOrEqual(2);
    expect(get('movement_sensor/imu/Position').captured).toBeGreaterThan(1000);
    // the 1 kHz stream rotated by size into several finished files, all announced
    expect(disk.get('movement_sensor/imu/Position')!.files.length).toBeGreaterThan(1);
    expect(finished.sort()).toEqual([...disk.values()].flatMap((d) => d.files).sort());
    const cam = disk.get('camera/cam/ReadImage')!;
    expect(cam.header.type).toBe('binary');
    expect(cam.header.mime_type).toBe('image/png');
    for (const r of cam.readings) {
      expect(r.mime_type).toBe('image/png');
      const img = r.data as Uint8Array;
      expect(img.length).toBe(20000);
      const n = img[0]!;
      for (let i = 0; i < img.length; i += 997) expect(img[i]).toBe((n + i) & 0xff);
    }
    expect(disk.get('sensor/s1/Readings')!.header.type).toBe('tabular');
    // no .prog left behind; modes
    expect(readBack(dir, '.prog').size).toBe(0);
    const f = finished[0]!;
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });
});
