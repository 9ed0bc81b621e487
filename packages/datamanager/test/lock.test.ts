import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openStateStore, processStartTime, type StateStore } from '@edgecap/store';
import { runLedgerChild, type Child } from '../../store/test/child.js';
import { tryLock } from '../dist/lock.js';

/**
 * The capture lock (one capturing process per capture dir): taken under the state's LMDB write
 * lock, so two processes starting at once never both own it; its holder is (pid, process start
 * time), so a pid reused by another process does not block start-up forever.
 */
const lockModule = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'lock.js')).href;
const dirs: string[] = [];
const stores: StateStore[] = [];
const children: Child[] = [];
const stateDir = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-lock-'));
  dirs.push(d);
  return path.join(d, '.edgecap');
};
const open = (dir: string): StateStore => {
  const s = openStateStore(dir);
  stores.push(s);
  return s;
};

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => (c.child.exitCode === null && c.child.signalCode === null ? c.end() : undefined)));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('capture lock', () => {
  it('two processes taking it at once: exactly one wins (repeated; fresh and over a dead holder)', async () => {
    for (let round = 0; round < 6; round++) {
      const dir = stateDir();
      fs.mkdirSync(dir, { recursive: true });
      // odd rounds: a stale lock (a dead pid) both must take over at once
      if (round % 2 === 1) fs.writeFileSync(path.join(dir, 'capture.lock'), JSON.stringify({ pid: 2 ** 22 + 7, startTime: 'gone/1', token: 'dead' }));
      else await open(dir).close();
      const at = Date.now() + 1500;
      const ops = [{ op: 'tryLock' as const, lockModule }];
      const a = runLedgerChild({ stateDir: dir, runId: 'a', ops, at });
      const b = runLedgerChild({ stateDir: dir, runId: 'b', ops, at });
      children.push(a, b);
      const [ra, rb] = await Promise.all([a.report, b.report]);
      expect([ra.results[0], rb.results[0]].sort(), `round ${round}`).toEqual([false, true]);
      const text = fs.readFileSync(path.join(dir, 'capture.lock'), 'utf8');
      const holder = (/^\d+$/.test(text) ? { pid: Number(text) } : JSON.parse(text)) as { pid: number };
      expect(holder.pid).toBe(ra.results[0] === true ? ra.pid : rb.pid);
      await Promise.all([a.end(), b.end()]);
      expect(fs.existsSync(path.join(dir, 'capture.lock'))).toBe(false); // released by its holder
    }
  });

  it('a live holder in another process is respected; once it is SIGKILLed the lock is taken over', async () => {
    const dir = stateDir();
    const holder = runLedgerChild({ stateDir: dir, runId: 'a', ops: [{ op: 'tryLock', lockModule }] });
    children.push(holder);
    const { pid, results } = await holder.report;
    expect(results).toEqual([true]);
    const s = open(dir);
    expect(tryLock(dir, s)).toEqual({ owned: false, pid });
    await holder.kill();
    const mine = tryLock(dir, s);
    expect(mine.owned).toBe(true);
    if (mine.owned) mine.release();
  });

  it('a lock whose pid is now another process (pid reuse: a live pid, wrong start time) is taken over', () => {
    const dir = stateDir();
    const s = open(dir);
    const file = path.join(dir, 'capture.lock');
    for (const pid of [1, process.ppid, process.pid]) {
      expect(processStartTime(pid)).toBeDefined();
      fs.writeFileSync(file, JSON.stringify({ pid, startTime: `${processStartTime(pid)}0`, token: 'old' }));
      const l = tryLock(dir, s);
      expect(l.owned, `pid ${pid}`).toBe(true);
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, startTime: processStartTime(process.pid) });
      if (l.owned) l.release();
      expect(fs.existsSync(file)).toBe(false);
    }
  });

  it('an older version’s bare-pid lock: respected while that process predates it, taken over once the pid is reused', () => {
    const dir = stateDir();
    const s = open(dir);
    const file = path.join(dir, 'capture.lock');
    fs.writeFileSync(file, String(process.ppid)); // written now: our parent started before it
    expect(tryLock(dir, s)).toEqual({ owned: false, pid: process.ppid });
    fs.utimesSync(file, new Date(1000), new Date(1000)); // written in 1970: pid 1 of this boot started after it
    fs.writeFileSync(file, '1');
    fs.utimesSync(file, new Date(1000), new Date(1000));
    const l = tryLock(dir, s);
    expect(l.owned).toBe(true);
    if (l.owned) l.release();
  });

  it('in one process: a second taker is refused until the first releases', () => {
    const dir = stateDir();
    const s = open(dir);
    const first = tryLock(dir, s);
    expect(first.owned).toBe(true);
    expect(tryLock(dir, s)).toEqual({ owned: false, pid: process.pid });
    if (first.owned) first.release();
    const again = tryLock(dir, s);
    expect(again.owned).toBe(true);
    if (again.owned) again.release();
  });
});
