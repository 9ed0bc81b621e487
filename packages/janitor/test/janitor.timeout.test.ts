import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Janitor } from '@edgecap/janitor';

/**
 * Convention 17 (one worker host): every call to the janitor's worker is raced against its exit
 * and a timeout. A worker cannot boot and answer within 1 ms, so with callTimeoutMs 1 every call
 * is "hung": the check must fail with WORKER_EXITED (timeout), be counted and reported, and the
 * worker be ended (the process is not held by it).
 */
describe('janitor worker call timeout', () => {
  it('a call unanswered within callTimeoutMs fails the check, is counted and emitted, and ends the worker', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-timeout-'));
    try {
      const captureDir = path.join(tmp, 'capture');
      fs.mkdirSync(captureDir);
      // threshold 0: the disk is "full", so the check goes past the main thread's statfs to the worker
      const j = new Janitor({ captureDir, stateDir: path.join(captureDir, '.edgecap'), runId: 'run-t', callTimeoutMs: 1, diskUsageThreshold: 0 });
      const errors: Error[] = [];
      j.on('error', (e: Error) => errors.push(e));
      await expect(j.checkNow()).rejects.toMatchObject({ code: 'EDGECAP_ERR_WORKER_EXITED', details: { timeout: true } });
      expect(errors).toHaveLength(1);
      expect(j.stats().errors).toBeGreaterThanOrEqual(1);
      expect(j.stats().checks).toBe(0);
      await j.close();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);
});
