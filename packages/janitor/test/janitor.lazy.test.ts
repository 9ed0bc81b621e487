import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Janitor } from '@edgecap/janitor';
import { StateStore } from '@edgecap/store';
import { runLedgerChild, type Child } from '../../store/test/child.js';
import { exists, makeCapture } from './helpers.js';

/**
 * Issue 14 (idle footprint): the janitor's worker thread is spawned only when the main thread's
 * statfs finds the disk at or above the threshold, and ended once a check finds it under.
 * Real statfs on the local disk: threshold 2 is never reached, threshold 0 always is.
 * (Deleting at >= 90 % and ending the thread afterwards, on a real tmpfs: janitor.tmpfs.test.ts.)
 */
let tmp: string;
let captureDir: string;
let stateDir: string;
let child: Child | undefined;
const jan: Janitor[] = [];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-lazy-'));
  captureDir = path.join(tmp, 'capture');
  stateDir = path.join(captureDir, '.edgecap');
  fs.mkdirSync(captureDir);
});

afterEach(async () => {
  for (const j of jan.splice(0)) await j.close();
  if (child && child.child.exitCode === null && child.child.signalCode === null) await child.end();
  child = undefined;
  fs.rmSync(tmp, { recursive: true, force: true });
});

function janitor(o: { diskUsageThreshold: number; intervalMs?: number; captureDirThreshold?: number }): Janitor {
  const j = new Janitor({ captureDir, stateDir, runId: 'run-lazy', deleteEveryNth: 1, ...o });
  jan.push(j);
  return j;
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('janitor thread only when the disk needs it', () => {
  it('under the threshold: periodic checks run on the main thread statfs, no thread is ever spawned', async () => {
    const files = Array.from({ length: 3 }, (_, i) => makeCapture(captureDir, { from: i * 10, count: 10, mtimeSec: 500 + i }));
    const j = janitor({ diskUsageThreshold: 2, intervalMs: 20 });
    await j.start();
    await until(() => j.stats().checks >= 3, 'three periodic checks');
    const r = await j.checkNow();
    expect(r.action).toBe('none');
    expect(r.usage).toBeGreaterThan(0);
    expect(r.usage).toBeLessThanOrEqual(1);
    expect(Number.isNaN(r.captureShare)).toBe(true); // the capture dir is not walked
    expect(j.stats()).toMatchObject({ thread: false, threadStarts: 0, errors: 0, deletedFiles: 0 });
    expect(j.stats().lastUsage).toBe(r.usage);
    expect(files.every((f) => exists(f.path))).toBe(true);
  });

  it('at the threshold: a thread is spawned, deletes, stays while the disk stays full, and ends with stop()', async () => {
    const files = Array.from({ length: 4 }, (_, i) => makeCapture(captureDir, { from: i * 10, count: 10, mtimeSec: 500 + i }));
    const j = janitor({ diskUsageThreshold: 0, captureDirThreshold: 0 });
    await j.start();
    expect(j.stats()).toMatchObject({ thread: false, threadStarts: 0 });
    const r1 = await j.checkNow();
    expect(r1.action).toBe('deleted');
    expect(r1.deletedFiles).toBe(files.length);
    expect(files.some((f) => exists(f.path))).toBe(false);
    expect(j.stats()).toMatchObject({ thread: true, threadStarts: 1 });
    const r2 = await j.checkNow(); // still "full": the same thread answers
    expect(r2.action).toBe('none');
    expect(j.stats()).toMatchObject({ thread: true, threadStarts: 1, checks: 2 });
    await j.stop();
    expect(j.stats()).toMatchObject({ thread: false, running: false });
  });

  it('start() settles a deletion a killed run left half done, without spawning a thread', async () => {
    const f = makeCapture(captureDir, { from: 0, count: 10, mtimeSec: 500 });
    new StateStore(stateDir).close(); // the ledger exists, as under a running DataManager
    child = runLedgerChild({ stateDir, runId: 'a-janitor-that-died', ops: [{ op: 'claimDelete', file: f.path, id: f.id }] });
    expect((await child.report).results).toEqual([true]);
    await child.kill();
    const j = janitor({ diskUsageThreshold: 2 });
    await j.start();
    expect(j.stats()).toMatchObject({ thread: false, threadStarts: 0 });
    const store = new StateStore(stateDir);
    try {
      // the file is still there: back to pending (syncable, or chosen again), not left 'deleting'
      expect(store.fileState(f.path)?.status).toBe('pending');
    } finally {
      await store.close();
    }
  });
});
