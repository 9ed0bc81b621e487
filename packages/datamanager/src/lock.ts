import fs from 'node:fs';
import path from 'node:path';

/**
 * One capturing process per capture dir. The lock is a pid file in the state dir, created
 * exclusively; a lock whose pid is gone (a crash, SIGKILL) is stale and taken over. A process
 * that only syncs does not need it, but must not run start-up recovery while another process
 * holds it: recovery finalizes `.prog` files, which would pull them from under a live writer.
 */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type LockResult = { owned: true; release(): void } | { owned: false; pid: number };

export function tryLock(stateDir: string): LockResult {
  const file = path.join(stateDir, 'capture.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      heldHere.add(file);
      return {
        owned: true,
        release() {
          heldHere.delete(file);
          fs.rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    const busy = Number.isInteger(pid) && pid > 0 && (pid === process.pid ? heldHere.has(file) : alive(pid));
    if (busy) return { owned: false, pid };
    fs.rmSync(file, { force: true }); // stale: its process is gone
  }
  throw new Error(`could not take ${file}`);
}
