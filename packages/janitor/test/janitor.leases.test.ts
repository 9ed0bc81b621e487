import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JanitorCore } from '@edgecap/janitor';
import { StateStore } from '@edgecap/store';
import { runLedgerChild, type Child } from '../../store/test/child.js';
import { exists, makeCapture, treeBytes, type MadeFile } from './helpers.js';

/**
 * The janitor against upload leases of OTHER processes (README: several processes may share a
 * capture dir): a live one's file is never deleted (no gap recorded for readings the server
 * gets); a SIGKILLed one's is fair game.
 */
let tmp: string;
let captureDir: string;
let stateDir: string;
let store: StateStore;
let child: Child | undefined;
const runId = 'janitor-run';

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'janitor-leases-'));
  captureDir = path.join(tmp, 'capture');
  stateDir = path.join(captureDir, '.edgecap');
  fs.mkdirSync(captureDir);
  store = new StateStore(stateDir);
});

afterEach(async () => {
  if (child && child.child.exitCode === null && child.child.signalCode === null) await child.end();
  child = undefined;
  await store.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const alwaysFull = (): { usedFraction: number; usedBytes: number } => ({ usedFraction: 0.99, usedBytes: Math.max(1, treeBytes(captureDir)) });

function files(n: number): MadeFile[] {
  return Array.from({ length: n }, (_, i) => makeCapture(captureDir, { from: i * 10, count: 10, mtimeSec: 1000 + i }));
}

describe('janitor vs upload leases of another process', () => {
  it('cannot claim (or delete) a file under a live upload lease of another process', async () => {
    const fs3 = files(3);
    const held = fs3[0]!;
    child = runLedgerChild({ stateDir, runId: 'sync-of-another-process', ops: [{ op: 'claimUpload', file: held.path, id: held.id }] });
    expect((await child.report).results).toEqual([true]);
    const core = new JanitorCore({ captureDir, stateDir, runId, statfs: alwaysFull, deleteEveryNth: 1, store });
    const r = core.check();
    expect(exists(held.path)).toBe(true);
    expect(store.fileState(held.path)?.status).toBe('uploading');
    expect(r.deletedFiles).toBe(2);
    expect(r.skippedClaimed).toBeGreaterThanOrEqual(1);
    // no janitor gap for the readings the other process is uploading
    expect(store.unreportedGaps().filter((g) => g.from_seq === held.from)).toEqual([]);
    await core.close();
  });

  it('a SIGKILLed uploader’s lease does not protect its file', async () => {
    const [held] = files(1);
    child = runLedgerChild({ stateDir, runId: 'sync-of-a-dead-process', ops: [{ op: 'claimUpload', file: held!.path, id: held!.id }] });
    await child.report;
    await child.kill();
    const core = new JanitorCore({ captureDir, stateDir, runId, statfs: alwaysFull, deleteEveryNth: 1, store });
    expect(core.check().deletedFiles).toBe(1);
    expect(exists(held!.path)).toBe(false);
    expect(store.fileState(held!.path)?.status).toBe('deleted_by_janitor');
    await core.close();
  });
});
