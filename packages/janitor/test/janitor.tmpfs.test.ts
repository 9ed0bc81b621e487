import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Janitor, diskUsage, everyNth } from '@edgecap/janitor';
import { StateStore } from '@edgecap/store';
import { exists, makeCapture, type MadeFile } from './helpers.js';

/**
 * Real filesystem: an 8 MiB tmpfs is the capture dir's home, real capture files plus a ballast
 * file fill it, and the Janitor runs in its worker thread with the real statfs.
 * Needs root (mount); otherwise every test here is skipped with the reason.
 */
let mnt = '';
let skipReason: string | undefined;
let captureDir = '';
let stateDir = '';
let store: StateStore | undefined;
let janitor: Janitor | undefined;
const runId = 'run-tmpfs';

beforeAll(() => {
  mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    skipReason = `cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}`;
  }
});

afterAll(() => {
  if (!skipReason) execFileSync('umount', [mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

beforeEach(() => {
  if (skipReason) return;
  captureDir = path.join(mnt, 'capture');
  stateDir = path.join(captureDir, '.edgecap');
  fs.mkdirSync(captureDir, { recursive: true });
  store = new StateStore(stateDir);
});

afterEach(async () => {
  await janitor?.stop();
  janitor = undefined;
  await store?.close();
  store = undefined;
  if (!skipReason) for (const e of fs.readdirSync(mnt)) fs.rmSync(path.join(mnt, e), { recursive: true, force: true });
});

/** ~103 KB real capture files, ages 2000.., spread over two streams. */
function fillCaptures(n: number): MadeFile[] {
  const out: MadeFile[] = [];
  for (let i = 0; i < n; i++) {
    out.push(makeCapture(captureDir, { name: i % 2 ? 'imu' : 'temp', from: i * 100, count: 100, pad: 1000, mtimeSec: 2000 + i }));
  }
  return out;
}

/** A ballast file outside the capture dir bringing the filesystem to `target` usage. */
function ballastTo(target: number): void {
  const u = diskUsage(mnt);
  const bytes = Math.ceil(target * u.totalBytes - u.usedBytes);
  expect(bytes).toBeGreaterThan(0);
  fs.writeFileSync(path.join(mnt, 'ballast'), Buffer.alloc(bytes, 1));
}

describe('janitor on a real 8 MiB tmpfs (worker thread, real statfs)', () => {
  it('above 90% with capture dir >= 50%: deletes every 5th oldest finished file until under 90%; .prog and upload-claimed survive', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const files = fillCaptures(56);
    // A file being written (oldest of all) and a file being uploaded (oldest finished one).
    const prog = makeCapture(captureDir, { name: 'temp', from: 99_000, count: 20, pad: 1000, mtimeSec: 1000, ext: '.prog' });
    const claimed = files[0]!;
    expect(store!.claimUpload(claimed.path, runId, { id: claimed.id, source: 'capture', size: claimed.size })).toBe(true);
    ballastTo(0.93);
    const before = diskUsage(captureDir);
    expect(before.usedFraction).toBeGreaterThanOrEqual(0.9);

    janitor = new Janitor({ captureDir, stateDir, runId });
    const events: { files: number; bytes: number }[] = [];
    janitor.on('deleted', (e: { files: number; bytes: number }) => events.push(e));
    await janitor.start();
    expect(janitor.stats()).toMatchObject({ thread: false, threadStarts: 0 }); // spawned only when needed
    const r = await janitor.checkNow();
    // the check that found the disk full ran in a thread, which ended once usage was back under
    expect(janitor.stats()).toMatchObject({ thread: false, threadStarts: 1 });

    expect(r.startUsage).toBeGreaterThanOrEqual(0.9);
    expect(r.action).toBe('deleted');
    expect(r.rounds).toBe(1);
    expect(r.skippedClaimed).toBe(1);
    // The file being uploaded is not eligible: every 5th of the other finished files, oldest first.
    const expected = everyNth(files.slice(1), 5);
    expect(expected[0]).toBe(files[1]);
    const gone = files.filter((f) => !exists(f.path));
    expect(gone).toEqual(expected);
    expect(diskUsage(captureDir).usedFraction).toBeLessThan(0.9);
    expect(r.usage).toBeLessThan(0.9);
    expect(exists(prog.path)).toBe(true);
    expect(exists(claimed.path)).toBe(true);
    expect(events).toEqual([{ files: expected.length, bytes: expected.reduce((a, f) => a + f.size, 0) }]);
    expect(janitor.stats()).toMatchObject({ deletedFiles: expected.length, warnings: 0 });
    // Deletions are recorded for sync (status) and ingest (explained gaps).
    for (const f of expected) expect(store!.fileState(f.path)?.status).toBe('deleted_by_janitor');
    expect(store!.fileState(claimed.path)?.status).toBe('uploading');
    const gaps = store!.unreportedGaps().filter((g) => g.reason === 'janitor');
    expect(gaps.map((g) => [g.name, g.from_seq, g.to_seq]).sort()).toEqual(
      expected.map((f) => [f.path.includes('/imu/') ? 'imu' : 'temp', f.from, f.to]).sort(),
    );
  });

  it('above 90% but the ballast dominates (capture dir < 50%): one warning, nothing deleted', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const files = fillCaptures(15);
    ballastTo(0.93);
    janitor = new Janitor({ captureDir, stateDir, runId });
    const warnings: { usage: number; captureShare: number }[] = [];
    janitor.on('disk-warning', (w: { usage: number; captureShare: number }) => warnings.push(w));
    const r1 = await janitor.checkNow();
    const r2 = await janitor.checkNow();
    expect(r1.action).toBe('warned');
    expect(r1.usage).toBeGreaterThanOrEqual(0.9);
    expect(r1.captureShare).toBeLessThan(0.5);
    expect(r2.action).toBe('warned');
    expect(warnings).toHaveLength(1); // rate-limited
    expect(r1.deletedFiles + r2.deletedFiles).toBe(0);
    expect(files.every((f) => exists(f.path))).toBe(true);
    expect(janitor.stats()).toMatchObject({ checks: 2, warnings: 1, deletedFiles: 0 });
  });
});
