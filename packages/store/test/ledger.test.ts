import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '@edgecap/core';
import { IllegalTransitionError, TRANSITIONS, openStateStore, type StateStore } from '@edgecap/store';
import { runLedgerChild, type Child } from './child.js';

/**
 * The file ledger across real processes sharing one state dir (ARCHITECTURE 9, 16): claims are
 * leases naming (run id, pid, start time); a live owner's are respected by every process, a
 * dead or expired owner's are taken over inside the claim's write transaction.
 */
const dirs: string[] = [];
const children: Child[] = [];
const stores: StateStore[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-ledger-'));
  dirs.push(d);
  return d;
};
const spawnChild = (...a: Parameters<typeof runLedgerChild>): Child => {
  const c = runLedgerChild(...a);
  children.push(c);
  return c;
};
const open = (dir: string, leaseMs?: number): StateStore => {
  const s = openStateStore(dir, leaseMs ? { leaseMs } : {});
  stores.push(s);
  return s;
};
const init = { id: 'a', source: 'capture' as const, size: 1 };

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => (c.child.exitCode === null && c.child.signalCode === null ? c.end() : undefined)));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('file ledger: leases across processes', () => {
  it('two processes claiming the same file at once: exactly one wins (repeated)', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = tmp();
      open(dir).claimUpload('/warm', 'warm', init); // the environment exists before the race
      const at = Date.now() + 1500;
      const ops = [{ op: 'claimUpload' as const, file: '/f' }];
      const a = spawnChild({ stateDir: dir, runId: 'run-a', ops, at });
      const b = spawnChild({ stateDir: dir, runId: 'run-b', ops, at });
      const [ra, rb] = await Promise.all([a.report, b.report]);
      expect([ra.results[0], rb.results[0]].sort()).toEqual([false, true]);
      const winner = ra.results[0] === true ? ra : rb;
      const st = open(dir).fileState('/f');
      expect(st?.status).toBe('uploading');
      expect(st?.lease?.pid).toBe(winner.pid);
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('a live process’s upload lease is respected: no second upload, and the janitor cannot claim it', async () => {
    const dir = tmp();
    const holder = spawnChild({ stateDir: dir, runId: 'run-a', ops: [{ op: 'claimUpload', file: '/f' }] });
    expect((await holder.report).results).toEqual([true]);
    const s = open(dir);
    expect(s.claimUpload('/f', 'run-b', init)).toBe(false); // the old rule (claimedBy !== my run id => stale) took it
    expect(s.claimDelete('/f', 'run-b', 'a', 1)).toBe(false);
    expect(s.fileHolder('/f', 'run-b')).toBe('other');
    expect(s.canClaimDelete('/f', 'run-b')).toBe(false);
    // ... and finishing someone else's upload is refused, with a stable code
    expect(() => s.commitUpload('/f', 'run-b', 'a')).toThrow(IllegalTransitionError);
    expect(s.fileState('/f')?.lease?.pid).toBe((await holder.report).pid);
  });

  it('a lease whose owner was SIGKILLed is taken over atomically', async () => {
    const dir = tmp();
    const holder = spawnChild({ stateDir: dir, runId: 'run-a', ops: [{ op: 'claimUpload', file: '/up' }, { op: 'claimDelete', file: '/del' }] });
    expect((await holder.report).results).toEqual([true, true]);
    const s = open(dir);
    expect(s.claimUpload('/up', 'run-b', init)).toBe(false);
    await holder.kill();
    expect(s.fileHolder('/up', 'run-b')).toBe('stale');
    expect(s.claimUpload('/up', 'run-b', init)).toBe(true);
    expect(s.fileState('/up')?.lease).toMatchObject({ runId: 'run-b', pid: process.pid });
    // the dead janitor's half-done deletion: settled (the file is not there: its deletion is finished)
    expect(s.settleStaleDeletes('run-b', () => false)).toBe(1);
    expect(s.fileState('/del')?.status).toBe('deleted_by_janitor');
  });

  it('two processes racing for a dead owner’s lease: exactly one takes it over', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tmp();
      const dead = spawnChild({ stateDir: dir, runId: 'run-dead', ops: [{ op: 'claimUpload', file: '/f' }] });
      await dead.report;
      await dead.kill();
      const at = Date.now() + 1500;
      const ops = [{ op: 'claimUpload' as const, file: '/f' }];
      const a = spawnChild({ stateDir: dir, runId: 'run-a', ops, at });
      const b = spawnChild({ stateDir: dir, runId: 'run-b', ops, at });
      const [ra, rb] = await Promise.all([a.report, b.report]);
      expect([ra.results[0], rb.results[0]].sort()).toEqual([false, true]);
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('a lease expires unless renewed; a renewed one holds', async () => {
    const dir = tmp();
    const lapsing = spawnChild({ stateDir: dir, runId: 'run-a', leaseMs: 300, ops: [{ op: 'claimUpload', file: '/lapse' }] });
    const renewing = spawnChild({ stateDir: dir, runId: 'run-c', leaseMs: 300, renewMs: 60, ops: [{ op: 'claimUpload', file: '/kept' }] });
    await Promise.all([lapsing.report, renewing.report]);
    const s = open(dir);
    expect(s.claimUpload('/lapse', 'run-b', init)).toBe(false);
    await new Promise((r) => setTimeout(r, 700));
    expect(s.claimUpload('/lapse', 'run-b', init)).toBe(true); // its process lives, but the lease expired
    expect(s.claimUpload('/kept', 'run-b', init)).toBe(false);
    // the lapsed owner's renewal now reports the file lost
    expect(s.renewLeases(['/lapse', '/kept'], 'run-b')).toEqual(['/kept']);
  });
});

describe('file ledger: transitions', () => {
  it('has a table of allowed transitions covering the life of a file', () => {
    expect(TRANSITIONS.claimUpload.to).toEqual(['uploading']);
    expect(TRANSITIONS.commit.from).toEqual(['uploading']);
    expect(TRANSITIONS.claimDelete.from).not.toContain('committed');
    expect(TRANSITIONS.finishDelete).toMatchObject({ from: ['deleting'], to: ['deleted_by_janitor'], lease: 'own' });
  });

  it('illegal transitions are refused with IllegalTransitionError (EDGECAP_ERR_ILLEGAL_TRANSITION)', () => {
    const s = open(tmp());
    const refused = (fn: () => void): IllegalTransitionError => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(IllegalTransitionError);
        expect((e as IllegalTransitionError).code).toBe(ErrorCodes.ILLEGAL_TRANSITION);
        expect((e as IllegalTransitionError).code).toBe('EDGECAP_ERR_ILLEGAL_TRANSITION');
        return e as IllegalTransitionError;
      }
      throw new Error('not refused');
    };
    expect(refused(() => s.commitUpload('/none', 'r', 'a')).details).toMatchObject({ file: '/none', transition: 'commit', from: 'absent' });
    expect(s.claimUpload('/f', 'r', init)).toBe(true);
    s.releaseUpload('/f', 'r');
    expect(refused(() => s.commitUpload('/f', 'r', 'a')).details).toMatchObject({ from: 'pending' }); // pending → committed
    expect(refused(() => s.finishDelete('/f', 'disk full', 'r')).details).toMatchObject({ from: 'pending' }); // never claimed for deletion
    expect(s.claimUpload('/f', 'r', init)).toBe(true);
    refused(() => s.commitUpload('/f', 'another-run', 'a')); // not the lease holder
    refused(() => s.reopenFile('/f')); // uploading → pending only by release
    s.commitUpload('/f', 'r', 'a');
    expect(s.fileState('/f')?.status).toBe('committed');
    expect(s.fileState('/f')?.lease).toBeUndefined();
    expect(s.claimDelete('/f', 'r', 'a', 1)).toBe(false); // committed: synced data is not the janitor's
    expect(s.claimUpload('/f', 'r', init)).toBe(false);
    refused(() => s.failUpload('/f', 'r', 'x')); // committed → failed
    expect(s.reopenFile('/f', 'b')).toBe(true); // new content at the same path
    expect(s.fileState('/f')).toMatchObject({ status: 'pending', id: 'b' });
  });
});
