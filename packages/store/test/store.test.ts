import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { openStateStore } from '@edgecap/store';
import { ledgerChild } from './child.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-store-'));
const gap = { kind: 'sensor', name: 't', method: 'Readings', from_seq: 0, to_seq: 9, reason: 'janitor', time_us: 1 };

describe('StateStore claims', () => {
  it('an upload and a deletion of one file never both win within a run', async () => {
    const s = openStateStore(tmp());
    expect(s.claimUpload('/f', 'run1', { id: 'a', source: 'capture', size: 1 })).toBe(true);
    expect(s.claimDelete('/f', 'run1', 'a', 1, [gap])).toBe(false);
    s.releaseUploads(['/f'], 'run1');
    expect(s.claimDelete('/f', 'run1', 'a', 1, [gap])).toBe(true);
    expect(s.claimUpload('/f', 'run1', { id: 'a', source: 'capture', size: 1 })).toBe(false);
    await s.close();
  });

  it('gaps of a deletion are recorded only when it finishes', async () => {
    const s = openStateStore(tmp());
    s.claimDelete('/f', 'run1', 'a', 1, [gap]);
    expect(s.unreportedGaps()).toEqual([]);
    s.finishDelete('/f', 'disk full');
    expect(s.unreportedGaps()).toEqual([{ ...gap, reported: false }]);
    expect(s.fileState('/f')?.status).toBe('deleted_by_janitor');
    await s.close();
  });

  it('a deletion a crashed run left half done is settled: file gone → gaps recorded, file there → pending', async () => {
    const s = openStateStore(tmp());
    s.claimDelete('/gone', 'crashed', 'a', 1, [gap]);
    s.claimDelete('/there', 'crashed', 'b', 1, [{ ...gap, name: 'u' }]);
    // a live claim of this run is left alone
    s.claimDelete('/mine', 'run2', 'c', 1, [{ ...gap, name: 'v' }]);
    expect(s.settleStaleDeletes('run2', (f) => f === '/there' || f === '/mine')).toBe(2);
    expect(s.fileState('/gone')?.status).toBe('deleted_by_janitor');
    expect(s.fileState('/there')?.status).toBe('pending');
    expect(s.fileState('/mine')?.status).toBe('deleting');
    expect(s.unreportedGaps().map((g) => g.name)).toEqual(['t']);
    // the stale upload/delete claims of a crashed run do not block the next run's upload
    expect(s.claimUpload('/there', 'run2', { id: 'b', source: 'capture', size: 1 })).toBe(true);
    await s.close();
  });

  it('settling and sweeping ask the filesystem outside the write transaction: another process commits meanwhile', async () => {
    const dir = tmp();
    const s = openStateStore(dir);
    s.claimDelete('/gone', 'crashed', 'a', 1, [gap]);
    s.claimUpload('/vanished', 'crashed', { id: 'b', source: 'capture', size: 1 });
    // exists() stands for a slow filesystem: while it runs, another process writes to the ledger.
    // Were LMDB's write lock held, that process would wait for it and be killed by the timeout.
    let writes = 0;
    const exists = (f: string): boolean => {
      if (f.startsWith('/other-')) return true; // the other processes' files
      const r = spawnSync(process.execPath, [ledgerChild, JSON.stringify({ stateDir: dir, runId: `other-${writes}`, ops: [{ op: 'claimUpload', file: `/other-${writes}` }] })], { input: '', timeout: 10_000, encoding: 'utf8' });
      expect(r.signal, `the other process was blocked (exists(${f}) ran inside a write transaction)`).toBeNull();
      expect(JSON.parse(r.stdout.trim()).results).toEqual([true]);
      writes++;
      return false;
    };
    expect(s.settleStaleDeletes('run2', exists)).toBe(1);
    expect(s.fileState('/gone')?.status).toBe('deleted_by_janitor');
    expect(s.sweepVanished('run2', exists)).toBe(2); // /gone's record and /vanished
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(s.fileState('/vanished')).toBeUndefined();
    expect(s.fileState('/other-0')?.status).toBe('uploading');
    await s.close();
  }, 60_000);

  it('state of vanished files is swept; the janitor\'s deletions and live claims are kept', async () => {
    const s = openStateStore(tmp());
    s.claimUpload('/synced-crash', 'crashed', { id: 'a', source: 'capture', size: 1 }); // acked, deleted, then a crash
    s.claimUpload('/live', 'run2', { id: 'b', source: 'capture', size: 1 });
    s.claimDelete('/deleting', 'crashed', 'c', 1, [gap]);
    s.claimUpload('/still-there', 'crashed', { id: 'd', source: 'capture', size: 1 });
    s.fileIdFor('/still-there\u00001\u00002', () => 'id-kept');
    s.fileIdFor('/gone.log\u00001\u00002', () => 'id-dropped');
    expect(s.sweepVanished('run2', (f) => f === '/still-there')).toBe(2);
    expect(s.fileIdKeys()).toEqual(['/still-there\u00001\u00002']);
    expect([...s.fileEntries()].map((e) => e.file).sort()).toEqual(['/deleting', '/live', '/still-there']);
    s.forgetFiles(['/live', '/deleting'], []);
    expect([...s.fileEntries()].map((e) => e.file).sort()).toEqual(['/deleting', '/still-there']);
    expect(s.syncedTotals()).toEqual({ files: 1, bytes: 1 });
    await s.close();
  });

  it('reported gaps are dropped', async () => {
    const s = openStateStore(tmp());
    s.recordGap(gap);
    s.recordGap({ ...gap, from_seq: 20, to_seq: 29 });
    s.markGapsReported([{ ...gap, reported: false }]);
    expect(s.unreportedGaps().map((g) => g.from_seq)).toEqual([20]);
    expect(s.unreportedGaps().length).toBe(1);
    await s.close();
  });

  it('seq never moves backwards', async () => {
    const s = openStateStore(tmp());
    const k = { kind: 'a', name: 'b', method: 'c' };
    s.advanceSeqSync(k, 10);
    s.advanceSeqSync(k, 5);
    expect(s.nextSeq(k)).toBe(10);
    await s.close();
  });
});
