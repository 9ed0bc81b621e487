import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ownerAlive, pidAlive, processStartedAtMs, thisProcess, type StateStore } from '@edgecap/store';

/**
 * One capturing process per capture dir. The lock is `<state dir>/capture.lock`, naming its
 * holder as a lease owner does: {"pid", "startTime", "token"} (startTime from /proc/<pid>/stat
 * field 22, so a pid reused by another process is not mistaken for the holder).
 *
 *   store.withWriteLock (the state's LMDB write lock: one taker at a time, in every process)
 *     └─ read capture.lock ─► held by a live owner ─► refused
 *                          └► absent or stale (process gone, pid reused) ─► write tmp ─► rename over it
 *
 * Take-over is decided and done under the LMDB write lock, so two processes starting at once
 * cannot both take it (no check-then-act); the file appears whole (rename), never half written.
 * A process that only syncs does not need it, but must not run start-up recovery while another
 * process holds it: recovery finalizes `.prog` files, which would pull them from under a live writer.
 */
const heldHere = new Map<string, string>(); // lock file -> token of this process's holder

interface Holder {
  pid: number;
  startTime?: string;
  token?: string;
}

export type LockResult = { owned: true; release(): void } | { owned: false; pid: number };

function readHolder(file: string): { holder: Holder; mtimeMs: number } | undefined {
  let text: string;
  let mtimeMs: number;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (/^\d+$/.test(text)) return { holder: { pid: Number(text) }, mtimeMs }; // an older version's: a bare pid
  try {
    const h = JSON.parse(text) as Holder;
    if (typeof h.pid === 'number') return { holder: h, mtimeMs };
  } catch {
    // torn or foreign content: nobody holds it
  }
  return { holder: { pid: 0 }, mtimeMs };
}

/** The holder still runs (and, if it is this process, still holds it). */
function live(file: string, h: Holder, mtimeMs: number): boolean {
  const me = thisProcess();
  if (h.pid === me.pid && (h.startTime === undefined || h.startTime === me.startTime)) return heldHere.get(file) === h.token || (h.token === undefined && heldHere.has(file));
  if (h.startTime !== undefined) return ownerAlive({ pid: h.pid, startTime: h.startTime });
  // A bare pid: alive, and started before the lock was written (else the pid was reused).
  if (!pidAlive(h.pid)) return false;
  const started = processStartedAtMs(h.pid);
  return started === undefined || started <= mtimeMs + 1000;
}

export function tryLock(stateDir: string, store: StateStore): LockResult {
  const file = path.join(stateDir, 'capture.lock');
  const token = randomUUID();
  const got = store.withWriteLock((): LockResult => {
    const cur = readHolder(file);
    if (cur && live(file, cur.holder, cur.mtimeMs)) return { owned: false, pid: cur.holder.pid };
    const tmp = `${file}.${process.pid}.${token}`;
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify({ ...thisProcess(), token } satisfies Holder));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    heldHere.set(file, token);
    return { owned: true, release: () => undefined };
  });
  if (!got.owned) return got;
  return {
    owned: true,
    release() {
      if (heldHere.get(file) !== token) return;
      heldHere.delete(file);
      const drop = (): void => {
        if (readHolder(file)?.holder.token === token) fs.rmSync(file, { force: true });
      };
      try {
        store.withWriteLock(drop);
      } catch {
        drop(); // the store is closed or cannot write: ours to remove all the same
      }
    },
  };
}
