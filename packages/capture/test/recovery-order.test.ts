import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureEngine, recoverAtStartup, type RecoverySeqStore } from '@edgecap/capture';
import { encodeFileStart, FrameEncoder, inProgressPath, listFiles } from '@edgecap/format';
import type { StateStore } from '@edgecap/store';
import { newStore, readBack, tmpDir } from './helpers.js';

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

const key = { kind: 'generic', name: 'serial', method: 'Bytes' };

/** A .prog as a writer that died leaves it: seqs 0..9 and half of the 11th frame. */
function orphan(dir: string): string {
  const p = inProgressPath(dir, key, 1_700_000_000_000_000, 'orphan');
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const { bytes: start } = encodeFileStart({ ...key, type: 'tabular', tags: [], start_us: 1_700_000_000_000_000 });
  const buf = new Uint8Array(start.length + 11 * 128);
  buf.set(start);
  let off = start.length;
  const enc = new FrameEncoder();
  for (let i = 0; i < 11; i++) off += enc.reading(buf, off, i, 1, 2, { i });
  fs.writeFileSync(p, buf.subarray(0, off - 5));
  return p;
}

describe('start-up recovery keeps the writer order: persist seqs, then rename', () => {
  it('a failing persist renames nothing and the error propagates; the next recovery persists, renames, and no seq is reused', async () => {
    const dir = tmpDir('recorder');
    const p = orphan(dir);
    const full = Object.assign(new Error('MDB_MAP_FULL: Environment mapsize limit reached'), { code: 'ENOSPC' });
    const failing = {
      advanceSeqsSync: () => {
        throw full;
      },
      advanceSeqSync: () => {
        throw full;
      },
    } as RecoverySeqStore;
    expect(() => recoverAtStartup(dir, failing)).toThrow(/MDB_MAP_FULL/);
    // nothing renamed: the file is still in progress, its torn tail cut (recovery can run again)
    expect(listFiles(dir, '.capture')).toEqual([]);
    expect(listFiles(dir, '.prog')).toEqual([p]);

    const store = newStore(dir);
    stores.push(store);
    const rec = recoverAtStartup(dir, store);
    expect(rec.map((r) => [r.readings, r.lastSeq])).toEqual([[10, 9]]);
    expect(store.nextSeq(key)).toBe(10);
    expect(listFiles(dir, '.prog')).toEqual([]);

    // the next start continues after seq 9
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
    await eng.start([]);
    for (let i = 0; i < 5; i++) expect(eng.push('serial', 'Bytes', { after: i })).toBe(true);
    await eng.stop();
    const seqs = readBack(dir).get('generic/serial/Bytes')!.readings.map((r) => r.seq);
    expect(seqs).toEqual([...Array(15).keys()]);
  });
});
