import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Janitor, JanitorCore, everyNth, type JanitorOptions } from '@edgecap/janitor';
import { StateStore } from '@edgecap/store';
import { exists, makeCapture, treeBytes, type MadeFile } from './helpers.js';

/**
 * Unit tests on a real (local) filesystem with an injected statfs: "used" is a fixed base plus
 * the bytes really present under the capture dir, so deletions move usage the way they would.
 */
let tmp: string;
let captureDir: string;
let stateDir: string;
let store: StateStore;
const runId = 'run-1';

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-unit-'));
  captureDir = path.join(tmp, 'capture');
  fs.mkdirSync(captureDir);
  stateDir = path.join(captureDir, '.edgecap');
  store = new StateStore(stateDir);
});

afterEach(async () => {
  await store.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function fakeStatfs(total: number, base: number): JanitorOptions['statfs'] {
  return () => {
    const used = base + treeBytes(captureDir) - treeBytes(stateDir);
    return { usedFraction: used / total, usedBytes: used };
  };
}

function janitor(o: Partial<JanitorOptions>): Janitor {
  return new Janitor({ captureDir, stateDir, runId, ...o });
}

/** n files, ages 1000.., names deliberately in reverse age order (age = mtime wins). */
function makeFiles(n: number, pad = 900): MadeFile[] {
  const out: MadeFile[] = [];
  for (let i = 0; i < n; i++) {
    out.push(makeCapture(captureDir, { from: i * 10, count: 10, pad, mtimeSec: 1000 + i, fileName: `f${String(n - i).padStart(3, '0')}.capture` }));
  }
  return out;
}

describe('janitor selection (injected statfs)', () => {
  it('deletes every Nth finished file oldest first (1st, 6th, 11th) in one round when that is enough', async () => {
    const files = makeFiles(12);
    const sum = files.reduce((a, f) => a + f.size, 0);
    const j = janitor({ statfs: fakeStatfs(Math.floor(sum / 0.92), 0) });
    const deleted: unknown[] = [];
    j.on('deleted', (e) => deleted.push(e));
    const r = await j.checkNow();
    expect(r.action).toBe('deleted');
    expect(r.rounds).toBe(1);
    const gone = files.filter((f) => !exists(f.path)).map((f) => files.indexOf(f));
    expect(gone).toEqual([0, 5, 10]);
    expect(r.usage).toBeLessThan(0.9);
    expect(deleted).toEqual([{ files: 3, bytes: files[0]!.size + files[5]!.size + files[10]!.size }]);
    expect(j.stats()).toMatchObject({ checks: 1, deletedFiles: 3, warnings: 0 });
    await j.stop();
  });

  it('repeats rounds (every Nth of what remains) until usage is under the threshold', async () => {
    const files = makeFiles(10);
    const sum = files.reduce((a, f) => a + f.size, 0);
    const base = Math.floor(sum / 5);
    const total = Math.floor((base + sum) / 0.75);
    const j = janitor({ statfs: fakeStatfs(total, base), diskUsageThreshold: 0.5 });
    // Expected outcome by simulation of the rule on the real sizes.
    let left = [...files];
    let rounds = 0;
    while ((base + left.reduce((a, f) => a + f.size, 0)) / total >= 0.5) {
      const victims = new Set(everyNth(left, 5));
      left = left.filter((f) => !victims.has(f));
      rounds++;
    }
    expect(rounds).toBeGreaterThan(1);
    const r = await j.checkNow();
    expect(r.rounds).toBe(rounds);
    expect(r.usage).toBeLessThan(0.5);
    expect(files.filter((f) => exists(f.path))).toEqual(left);
    expect(r.deletedFiles).toBe(files.length - left.length);
    await j.stop();
  });

  it('warns (rate-limited) and deletes nothing when the capture dir is a small share of used space', async () => {
    const files = makeFiles(5);
    const sum = files.reduce((a, f) => a + f.size, 0);
    let now = 1_000_000;
    const j = janitor({ statfs: fakeStatfs(sum * 4.8, sum * 3.5), now: () => now });
    const warnings: unknown[] = [];
    j.on('disk-warning', (w) => warnings.push(w));
    const r1 = await j.checkNow();
    expect(r1).toMatchObject({ action: 'warned', warningEmitted: true, deletedFiles: 0 });
    expect(r1.captureShare).toBeLessThan(0.5);
    now += 60_000;
    const r2 = await j.checkNow();
    expect(r2).toMatchObject({ action: 'warned', warningEmitted: false, deletedFiles: 0 });
    now += 600_000;
    const r3 = await j.checkNow();
    expect(r3.warningEmitted).toBe(true);
    expect(warnings).toHaveLength(2);
    expect(files.every((f) => exists(f.path))).toBe(true);
    expect(j.stats()).toMatchObject({ checks: 3, warnings: 2, deletedFiles: 0 });
    await j.stop();
  });

  it('does nothing below the threshold', async () => {
    const files = makeFiles(3);
    const j = janitor({ statfs: () => ({ usedFraction: 0.5, usedBytes: 1 }) });
    expect((await j.checkNow()).action).toBe('none');
    expect(files.every((f) => exists(f.path))).toBe(true);
    await j.stop();
  });
});

describe('janitor eligibility (nothing but finished, unclaimed capture files inside the dir)', () => {
  // usage stays "full" and the capture dir is all of it: the janitor deletes all it may.
  const alwaysFull = (): { usedFraction: number; usedBytes: number } => ({ usedFraction: 0.99, usedBytes: Math.max(1, treeBytes(captureDir)) });

  it('never deletes an upload-claimed file, a .prog, a symlink (or its target), the state dir, or anything outside', async () => {
    const files = makeFiles(6);
    const claimed = files[0]!;
    expect(store.claimUpload(claimed.path, runId, { id: claimed.id, source: 'capture', size: claimed.size })).toBe(true);
    const prog = makeCapture(captureDir, { name: 'writing', from: 0, count: 5, mtimeSec: 10, ext: '.prog' });
    const outside = path.join(tmp, 'outside');
    fs.mkdirSync(outside);
    const outFile = makeCapture(outside, { name: 'elsewhere', from: 0, count: 5, mtimeSec: 11 });
    const linkFile = path.join(captureDir, 'sensor', 'temp', 'Readings', 'link.capture');
    fs.symlinkSync(outFile.path, linkFile);
    fs.symlinkSync(outside, path.join(captureDir, 'linkdir'));
    const stateCapture = path.join(stateDir, 'x.capture');
    fs.copyFileSync(files[1]!.path, stateCapture);

    const j = janitor({ statfs: alwaysFull, deleteEveryNth: 1 });
    const r = await j.checkNow();
    expect(r.skippedClaimed).toBeGreaterThanOrEqual(1);
    expect(exists(claimed.path)).toBe(true);
    expect(store.fileState(claimed.path)?.status).toBe('uploading');
    for (const f of files.slice(1)) {
      expect(exists(f.path)).toBe(false);
      expect(store.fileState(f.path)?.status).toBe('deleted_by_janitor');
    }
    expect(exists(prog.path)).toBe(true);
    expect(exists(outFile.path)).toBe(true);
    expect(fs.lstatSync(linkFile).isSymbolicLink()).toBe(true);
    expect(exists(path.join(captureDir, 'linkdir'))).toBe(true);
    expect(exists(stateCapture)).toBe(true);
    expect(j.stats().deletedFiles).toBe(5);
    await j.stop();
  });

  it('an upload claimed between selection and deletion wins the race: claimDelete refuses, the file stays', async () => {
    const files = makeFiles(3);
    // The sync worker claims files[1] just before the janitor's claimDelete for it runs.
    const racing = Object.create(store) as StateStore;
    racing.claimDelete = (file, rid, id, size, gaps) => {
      if (file === files[1]!.path) store.claimUpload(file, runId, { id, source: 'capture', size });
      return store.claimDelete(file, rid, id, size, gaps);
    };
    const core = new JanitorCore({ captureDir, stateDir, runId, statfs: alwaysFull, deleteEveryNth: 1, store: racing });
    const r = core.check();
    await core.close();
    expect(files.map((f) => exists(f.path))).toEqual([false, true, false]);
    expect(r.deletedFiles).toBe(2);
    expect(store.fileState(files[1]!.path)?.status).toBe('uploading');
    // No gap was recorded for the file that was not deleted.
    expect(store.unreportedGaps().map((g) => g.from_seq).sort((a, b) => a - b)).toEqual([0, 20]);
  });

  it('never deletes a file the sync already committed, nor excluded paths', async () => {
    const files = makeFiles(3);
    store.claimUpload(files[0]!.path, runId, { id: files[0]!.id, source: 'capture', size: files[0]!.size });
    store.commitUpload(files[0]!.path, runId, files[0]!.id);
    const j = janitor({ statfs: alwaysFull, deleteEveryNth: 1, excludePaths: [files[1]!.path] });
    await j.checkNow();
    expect(files.map((f) => exists(f.path))).toEqual([true, true, false]);
    await j.stop();
  });

  it('records the deleted seq ranges as explained gaps (reason janitor; in-file gaps keep their reason)', async () => {
    const a = makeCapture(captureDir, { from: 0, count: 10, mtimeSec: 100 });
    const b = makeCapture(captureDir, { from: 10, count: 10, mtimeSec: 101, skipSeqs: [14], gap: [14, 14] });
    const c = makeCapture(captureDir, { name: 'other', from: 50, count: 5, mtimeSec: 102 });
    const j = janitor({ statfs: alwaysFull, deleteEveryNth: 1 });
    await j.checkNow();
    expect([a, b, c].some((f) => exists(f.path))).toBe(false);
    const gaps = store
      .unreportedGaps()
      .map((g) => ({ name: g.name, from: g.from_seq, to: g.to_seq, reason: g.reason }))
      .sort((x, y) => x.name.localeCompare(y.name) || x.from - y.from);
    expect(gaps).toEqual([
      { name: 'other', from: 50, to: 54, reason: 'janitor' },
      { name: 'temp', from: 0, to: 9, reason: 'janitor' },
      { name: 'temp', from: 10, to: 13, reason: 'janitor' },
      { name: 'temp', from: 14, to: 14, reason: 'ring_full' },
      { name: 'temp', from: 15, to: 19, reason: 'janitor' },
    ]);
    // The sync worker cannot pick a deleted file up again.
    expect(store.claimUpload(a.path, runId, { id: a.id, source: 'capture', size: a.size })).toBe(false);
    await j.stop();
  });
});

describe('janitor lifecycle', () => {
  it('runs periodic checks only while started', async () => {
    makeFiles(2);
    const j = janitor({ statfs: () => ({ usedFraction: 0.1, usedBytes: 1 }), intervalMs: 20 });
    await j.start();
    await new Promise<void>((resolve) => {
      const poll = (): void => {
        if (j.stats().checks >= 2) resolve();
        else setTimeout(poll, 10);
      };
      poll();
    });
    await j.stop();
    const after = j.stats().checks;
    await new Promise((r) => setTimeout(r, 100));
    expect(j.stats().checks).toBe(after);
    expect(j.stats().running).toBe(false);
  });
});
