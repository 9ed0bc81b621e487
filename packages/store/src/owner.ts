import fs from 'node:fs';

/**
 * Who holds a lease, and whether that holder still exists. A pid alone does not say: pids are
 * reused, so an owner is (run id, pid, process start time), and a lease names it.
 *
 *   start time = "<boot id>/<field 22 of /proc/<pid>/stat>"   (clock ticks since boot, per boot)
 *
 * A process is the owner only while its pid is alive, not a zombie, and started at that time;
 * where /proc cannot tell (not Linux), a live pid counts (leases expire, so it is bounded).
 */
export interface LeaseOwner {
  /** One start of a sync engine / janitor (or one lock taker) in that process. */
  runId: string;
  pid: number;
  /** Process start time (see above); '' where it cannot be read. */
  startTime: string;
}

let bootId: string | undefined;
function boot(): string {
  if (bootId === undefined) {
    try {
      bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = '';
    }
  }
  return bootId;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parens). */
function statFields(pid: number): string[] | undefined {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = s.lastIndexOf(')');
  if (close < 0) return undefined;
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  return s.slice(close + 2).split(' ');
}

/** The start time of `pid` ("<boot id>/<ticks since boot>"), undefined if it cannot be read. */
export function processStartTime(pid: number): string | undefined {
  const f = statFields(pid);
  const ticks = f?.[22 - 3];
  return ticks === undefined ? undefined : `${boot()}/${ticks}`;
}

let me: { pid: number; startTime: string } | undefined;
/** This process as a lease owner (without the run id). */
export function thisProcess(): { pid: number; startTime: string } {
  if (!me || me.pid !== process.pid) me = { pid: process.pid, startTime: processStartTime(process.pid) ?? '' };
  return me;
}

/** The pid exists and is not a zombie (a SIGKILLed child nobody reaped yet is dead). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = statFields(pid)?.[0];
  return state !== 'Z' && state !== 'X';
}

/** The owner's process still runs: its pid is alive and (where knowable) started when it did. */
export function ownerAlive(o: Pick<LeaseOwner, 'pid' | 'startTime'>): boolean {
  if (!pidAlive(o.pid)) return false;
  if (!o.startTime) return true;
  const now = processStartTime(o.pid);
  return now === undefined || now === o.startTime;
}

/** The owner is this very process (any run id). */
export function isThisProcess(o: Pick<LeaseOwner, 'pid' | 'startTime'>): boolean {
  const m = thisProcess();
  return o.pid === m.pid && o.startTime === m.startTime;
}

/**
 * When `pid` started, in ms since the epoch (Linux: boot time + ticks / 100), undefined if
 * unknown. For lock files of older versions that recorded only a pid.
 */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = Number(statFields(pid)?.[22 - 3]);
  if (!Number.isFinite(ticks)) return undefined;
  try {
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    return Number.isFinite(btime) ? btime * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}
