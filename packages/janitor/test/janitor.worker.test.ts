import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Janitor } from '@edgecap/janitor';
import { StateStore } from '@edgecap/store';
import { exists, makeCapture } from './helpers.js';

/** The worker-thread transport on the local disk (runs without root, unlike the tmpfs test). */
let tmp: string;
let captureDir: string;
let stateDir: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-worker-'));
  captureDir = path.join(tmp, 'capture');
  stateDir = path.join(captureDir, '.edgecap');
  fs.mkdirSync(captureDir);
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('janitor worker thread', () => {
  it('runs the checks in the worker with the real statfs and shares claims through LMDB', async () => {
    const files = Array.from({ length: 10 }, (_, i) => makeCapture(captureDir, { from: i * 10, count: 10, mtimeSec: 500 + i }));
    const store = new StateStore(stateDir);
    try {
      expect(store.claimUpload(files[5]!.path, 'run-w', { id: files[5]!.id, source: 'capture', size: files[5]!.size })).toBe(true);
      // Thresholds 0: "always full, capture dir always dominant" -> rounds until nothing eligible is left.
      const j = new Janitor({ captureDir, stateDir, runId: 'run-w', diskUsageThreshold: 0, captureDirThreshold: 0 });
      const r = await j.checkNow();
      await j.stop();
      expect(r.deletedFiles).toBe(9);
      expect(files.map((f) => exists(f.path))).toEqual(files.map((_, i) => i === 5));
      expect(store.fileState(files[0]!.path)?.status).toBe('deleted_by_janitor');
      expect(store.unreportedGaps()).toHaveLength(9);
    } finally {
      await store.close();
    }
  });

  it('a failing check rejects with the original error code; the janitor keeps working', async () => {
    const missing = path.join(tmp, 'does-not-exist');
    const j = new Janitor({ captureDir: missing, stateDir: path.join(tmp, 'state'), runId: 'run-w' });
    await expect(j.checkNow()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(j.stats().errors).toBe(1);
    fs.mkdirSync(missing);
    await j.start();
    const r = await j.checkNow();
    expect(['none', 'warned', 'deleted']).toContain(r.action);
    await j.stop();
    expect(j.stats()).toMatchObject({ checks: 1, errors: 1, running: false });
    await j.close();
    await expect(j.checkNow()).rejects.toMatchObject({ code: 'EDGECAP_ERR_CLOSED' });
  });

  it('a check failing inside the worker rejects with the original error code rebuilt across the thread', async () => {
    const stateFile = path.join(tmp, 'state-is-a-file');
    fs.writeFileSync(stateFile, 'x');
    // threshold 0: past the main thread's statfs, into the worker, whose state store cannot open
    const j = new Janitor({ captureDir, stateDir: stateFile, runId: 'run-w', diskUsageThreshold: 0 });
    await expect(j.checkNow()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(j.stats()).toMatchObject({ errors: 1, threadStarts: 1, thread: false });
    await j.close();
  });

  it('a thread that could not open its ledger is ended: the next check of a started janitor starts a new one', async () => {
    const stateDir = path.join(tmp, 'state');
    const j = new Janitor({ captureDir, stateDir, runId: 'run-w', diskUsageThreshold: 0, captureDirThreshold: 0 });
    await j.start();
    fs.writeFileSync(stateDir, 'x'); // a file where the ledger's folder should be
    await expect(j.checkNow()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(j.stats()).toMatchObject({ errors: 1, threadStarts: 1, thread: false });
    fs.rmSync(stateDir);
    const r = await j.checkNow();
    expect(r.deletedFiles).toBe(0); // an empty capture dir
    expect(j.stats()).toMatchObject({ checks: 1, errors: 1, threadStarts: 2, thread: true });
    await j.close();
    expect(j.stats().thread).toBe(false);
  });
});
