/**
 * When sync rounds run — shared by both engines (disk: SyncEngine, memory: MemorySyncEngine):
 * one round at a time (`exclusive`: a scheduled tick, syncNow, retryFailed queue behind each
 * other), a timer for the next scheduled tick, and the delay to it from the interval, the
 * connectivity backoff and the offline probe cadence. What a tick does is the engine's.
 */
export interface SchedulerHooks {
  /** One scheduled tick (the engine decides: gate, backoff, probe, round). */
  tick(): Promise<void>;
  /** Delay to the next tick, ms (see nextTickDelay). */
  nextDelay(): number;
  /** A tick that threw. */
  onError(e: unknown): void;
}

export class RoundScheduler {
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private on = false;

  constructor(private readonly hooks: SchedulerHooks) {}

  /** Scheduled ticks are on. */
  get running(): boolean {
    return this.on;
  }

  /** A round runs or waits its turn. */
  get busy(): boolean {
    return this.queued > 0;
  }

  /** Start ticking (first tick after `firstDelayMs`); false if already on. */
  start(firstDelayMs: number): boolean {
    if (this.on) return false;
    this.on = true;
    this.schedule(firstDelayMs);
    return true;
  }

  /** No more scheduled ticks (a running round goes on: see settled). */
  stop(): void {
    this.on = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Resolves when every round queued so far has ended. */
  settled(): Promise<void> {
    return this.chain.then(
      () => undefined,
      () => undefined,
    );
  }

  /** Run `fn` after every round queued before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.queued++;
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined).finally(() => this.queued--);
    return p;
  }

  /** The next tick in `delayMs` (at least 10 ms), replacing one already set. */
  schedule(delayMs: number): void {
    if (!this.on) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.fire(), Math.max(10, delayMs));
    this.timer.unref?.();
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    if (!this.on) return;
    try {
      await this.hooks.tick();
    } catch (e) {
      this.hooks.onError(e);
    }
    this.schedule(this.hooks.nextDelay());
  }
}

/** The interval, or sooner: when the connectivity backoff expires, when an offline probe is due. */
export function nextTickDelay(o: { intervalMs: number; now: number; backoffUntil: number; offline: boolean; lastProbeAt: number; probeIntervalMs: number }): number {
  let wait = o.intervalMs;
  if (o.backoffUntil > o.now) wait = Math.min(wait, o.backoffUntil - o.now);
  if (o.offline) wait = Math.min(wait, Math.max(0, o.lastProbeAt + o.probeIntervalMs - o.now));
  return wait;
}

/** Run-wide upload counters (both engines' stats()). */
export interface UploadTally {
  uploadedFiles: number;
  uploadedBytes: number;
  alreadyHave: number;
  failedFiles: number;
}

/** An acknowledged upload, counted in the round's result and the run's tally (both engines). */
export function countAcked(res: { uploaded: number; alreadyHad: number; bytes: number }, st: UploadTally, status: 'committed' | 'already_have', bytes: number): void {
  if (status === 'committed') {
    res.uploaded++;
    st.uploadedFiles++;
  } else {
    res.alreadyHad++;
    st.alreadyHave++;
  }
  res.bytes += bytes;
  st.uploadedBytes += bytes;
}
