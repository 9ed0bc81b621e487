/**
 * The one worker host: every thread of the edge outside the sync pool (each collector, the
 * writer, the janitor) is started, called, stopped and restarted through this file.
 *
 *   ManagedWorker   lifecycle starting → started → stopping → stopped, and failed when the
 *                   thread exits, throws, or leaves a call unanswered without being asked to stop
 *                   (surfaced via onUnexpected; the thread is then terminated).
 *     call()        every control call is raced against the thread's exit and a timeout: it
 *                   always settles (a dead or hung thread never holds its caller).
 *     stop()        graceful call raced the same way, then terminate (itself bounded); says how
 *                   it went, so the owner can account for what a thread that did not stop
 *                   cleanly left behind.
 *     wake          a shared control word, set and notified after every control message, so a
 *                   thread asleep in Atomics.wait (a collector between readings) turns its event
 *                   loop and reads the message without polling for it.
 *     terminate     only once the thread's gate is closed (txn-gate.ts): never inside an LMDB
 *                   transaction, which would hang the whole process.
 *     logs          the thread's log lines arrive as messages (thread-log.ts), written here.
 *   prespawn()      start a thread's boot (mostly Node's own bootstrap, on another core) before
 *                   its owner is ready for it; the ManagedWorker made later for the same entry
 *                   and name adopts it. Unadopted ones end with dropPrespawned().
 *   Restarter       the one restart policy: backoff 1 s doubling to 1 min with jitter; a thread
 *                   that ran stableMs starts over at 1 s; a failed restart is retried, later.
 *   setThreadCompileCache()  threads load their bundles through V8's on-disk code cache.
 */
import { Worker } from 'node:worker_threads';
import { Backoff } from '../backoff.js';
import { EdgecapError, ErrorCodes } from '../errors.js';
import { logger, rootLogger } from '../log.js';
import { Comlink, nodeEndpoint, type Remote } from './comlink.js';
import { CTL_SLOTS, Ctl } from './ctl.js';
import { logLineOf, relayLogLine } from './thread-log.js';
import { closeGate } from './txn-gate.js';
import type { ThreadData } from './boot.js';

const log = logger('worker');

export type WorkerState = 'starting' | 'started' | 'stopping' | 'stopped' | 'failed';

const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['started', 'stopping', 'failed'],
  started: ['stopping', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: ['stopping', 'stopped'],
};

/** A control call not answered in this long means the thread is hung (overridable per call). */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** How long cpuUsage() waits for a thread's answer (one blocked in a native call gives none). */
const CPU_USAGE_TIMEOUT_MS = 250;
/** worker.terminate() of a thread stuck in a native call may never finish: wait this long. */
const TERMINATE_TIMEOUT_MS = 5_000;
/** How long terminate() waits for a state transaction in the thread to end (txn-gate.ts). */
const GATE_TIMEOUT_MS = 2_000;

/**
 * How a stop went. graceful: the stop call answered. timeout: it did not answer in time (the
 * thread was terminated mid-work). failed: the stop call threw. dead: the thread was already
 * gone, or died during the call.
 */
export type StopOutcome = 'graceful' | 'timeout' | 'failed' | 'dead';

export interface StopResult {
  outcome: StopOutcome;
  /** Why it was not graceful. */
  error?: EdgecapError;
}

export interface ManagedWorkerOptions {
  callTimeoutMs?: number;
  /** The thread's V8 heap limit, MB (unset: Node's default, sized from the machine's memory). */
  heapMb?: number;
}

type Method<T> = { [K in keyof T]: T[K] extends (...a: never[]) => unknown ? K : never }[keyof T];
type Args<T, K extends keyof T> = T[K] extends (...a: infer A) => unknown ? A : never;
type Result<T, K extends keyof T> = T[K] extends (...a: never[]) => infer R ? Awaited<R> : never;

/** A thread booting ahead of its ManagedWorker; what happened to it meanwhile is kept. */
interface Prespawned {
  worker: Worker;
  wakeSab: SharedArrayBuffer;
  exitCode?: number;
  error?: Error;
  /** Set on adoption: the adopter's handlers. */
  adopt?: { error(e: Error): void; exit(code: number): void };
}

const prespawned = new Map<string, Prespawned[]>();
/** A prespawned thread is adopted only by a worker of the same entry, name and heap limit. */
const poolKey = (url: URL, name: string, heapMb: number | undefined): string => `${url.href}\0${name}\0${heapMb ?? ''}`;

/**
 * A V8 heap limit for the thread (MB). Beyond the cap itself (a leaking thread ends with
 * ERR_WORKER_OUT_OF_MEMORY and is restarted instead of taking the process down), any limit at or
 * below 1 GiB makes V8 size the thread's young generation from it instead of from the machine's
 * memory: ~1.7 MB less RSS per thread, measured on Node 22 (BENCHMARKS.md).
 */
function limits(heapMb: number | undefined): { resourceLimits?: { maxOldGenerationSizeMb: number } } {
  return heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {};
}

let compileCacheDir: string | undefined;

/**
 * Threads started from now on compile their bundles through Node's module compile cache in
 * `dir` (Node >= 22.1; undefined: off). Every collector compiles the same bundle at start-up,
 * ~20 of them at once on a small machine: with the cache they deserialize V8's bytecode instead.
 * `dir` should be private to edgecap (the state dir): Node's default, a folder in the shared
 * /tmp, is one other local users could write to. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
export function setThreadCompileCache(dir: string | undefined): void {
  compileCacheDir = dir;
}

/** Worker options for a thread started now (ours, or a pool's: sync's piscina threads): its compile cache. */
export function threadEnv(): { env?: NodeJS.ProcessEnv } {
  // a thread's environment starts as a copy of the process's: the cache is the thread's alone
  return compileCacheDir ? { env: { ...process.env, NODE_COMPILE_CACHE: compileCacheDir } } : {};
}

function spawn(url: URL, name: string, wakeSab: SharedArrayBuffer, heapMb: number | undefined): Worker {
  const workerData: ThreadData = { edgecap: { logLevel: rootLogger().level, wakeSab } };
  const worker = new Worker(url, { name, workerData, ...limits(heapMb), ...threadEnv() });
  worker.on('message', (m: unknown) => {
    const line = logLineOf(m);
    if (line) relayLogLine(rootLogger(), name, line);
  });
  return worker;
}

/** Start booting a thread for `url` named `name`; the next ManagedWorker(url, name) adopts it. */
export function prespawn(url: URL, name: string, heapMb?: number): void {
  const wakeSab = new SharedArrayBuffer(CTL_SLOTS * 4);
  const p: Prespawned = { worker: spawn(url, name, wakeSab, heapMb), wakeSab };
  p.worker.on('error', (e) => (p.adopt ? p.adopt.error(e) : (p.error = e)));
  p.worker.on('exit', (code) => (p.adopt ? p.adopt.exit(code) : (p.exitCode = code)));
  const k = poolKey(url, name, heapMb);
  prespawned.set(k, [...(prespawned.get(k) ?? []), p]);
}

/** Terminate every prespawned thread nobody adopted (a start that failed, a resource gone). */
export async function dropPrespawned(): Promise<void> {
  const all = [...prespawned.values()].flat();
  prespawned.clear();
  await Promise.all(all.map((p) => p.worker.terminate().catch(() => undefined)));
}

function adopt(url: URL, name: string, heapMb: number | undefined): Prespawned | undefined {
  const k = poolKey(url, name, heapMb);
  const list = prespawned.get(k);
  const p = list?.shift();
  if (list?.length === 0) prespawned.delete(k);
  return p;
}

export class ManagedWorker<T> {
  private st: WorkerState = 'starting';
  readonly worker: Worker;
  private readonly api: Remote<T>;
  /** Resolves (never rejects) once the thread is gone, with the reason. */
  readonly gone: Promise<EdgecapError>;
  private goneWith: ((e: EdgecapError) => void) | undefined;
  private readonly callTimeoutMs: number;
  /** performance.now() when the thread reached `started` (the restart policy resets after a stable run). */
  startedAt = 0;
  /** The thread's control word (boot.ts): 1 = a control message is waiting. */
  readonly wakeSab: SharedArrayBuffer;
  private readonly wake: Int32Array;
  /** A cpuUsage() question the thread has not answered yet. */
  private cpuAsked = false;

  constructor(
    url: URL,
    readonly name: string,
    private readonly onUnexpected: (err: EdgecapError) => void,
    o: ManagedWorkerOptions = {},
  ) {
    this.callTimeoutMs = o.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.gone = new Promise((r) => (this.goneWith = r));
    // the crash (an uncaught error, the heap limit) is the reason a caller hears, not the exit after it
    let crash: EdgecapError | undefined;
    const onError = (e: Error): void => {
      const oom = (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY' && o.heapMb ? ` (its heap limit is ${o.heapMb} MB)` : '';
      crash ??= new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${name} crashed: ${e.message}${oom}`, { cause: e, details: { worker: name } });
      this.unexpected(crash);
    };
    const onExit = (code: number): void => {
      const err = crash ?? new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${name} exited unexpectedly (code ${code})`, { details: { worker: name, code } });
      this.unexpected(err);
      this.goneWith?.(err);
    };
    const pre = adopt(url, name, o.heapMb);
    if (pre) {
      this.wakeSab = pre.wakeSab;
      this.worker = pre.worker;
      pre.adopt = { error: onError, exit: onExit };
      // what happened before adoption is reported as if it happened now (after construction)
      queueMicrotask(() => {
        if (pre.error) onError(pre.error);
        if (pre.exitCode !== undefined) onExit(pre.exitCode);
      });
    } else {
      this.wakeSab = new SharedArrayBuffer(CTL_SLOTS * 4);
      this.worker = spawn(url, name, this.wakeSab, o.heapMb);
      this.worker.on('error', onError);
      this.worker.on('exit', onExit);
    }
    this.wake = new Int32Array(this.wakeSab);
    this.api = Comlink.wrap<T>(nodeEndpoint(this.worker));
  }

  get state(): WorkerState {
    return this.st;
  }

  /**
   * CPU time this thread has used (µs, user and system). Node answers through an interrupt of the
   * thread: one asleep in Atomics.wait or running JavaScript answers at once, one blocked in a
   * native call (a sensor read that hangs) not until it returns. So the answer is raced against
   * `timeoutMs` (which also bounds a thread ending mid-question; not raced against `gone`, where
   * each call would leave a reaction until the thread ends), and while one question is
   * unanswered no second is asked. Undefined then, once the thread is gone, or on a Node without
   * `worker.cpuUsage()` (added in 24.6, and in a later 22.x).
   */
  async cpuUsage(timeoutMs = CPU_USAGE_TIMEOUT_MS): Promise<{ user: number; system: number } | undefined> {
    const w = this.worker as Worker & { cpuUsage?: () => Promise<{ user: number; system: number }> };
    if (typeof w.cpuUsage !== 'function' || this.st === 'stopped' || this.st === 'failed' || this.cpuAsked) return undefined;
    this.cpuAsked = true;
    const answer = w.cpuUsage().then(
      (u) => u,
      () => undefined,
    );
    void answer.finally(() => (this.cpuAsked = false));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => {
      timer = setTimeout(r, timeoutMs, undefined);
      timer.unref();
    });
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Up and answering (not stopping, not failed). */
  get alive(): boolean {
    return this.st === 'starting' || this.st === 'started';
  }

  private to(next: WorkerState): void {
    if (!ALLOWED[this.st].includes(next)) {
      throw new EdgecapError(ErrorCodes.STATE, `worker ${this.name}: illegal transition ${this.st} → ${next}`);
    }
    log.debug({ worker: this.name, from: this.st, to: next }, 'worker state');
    this.st = next;
  }

  /** An exit, an uncaught error or a hung call nobody asked for: failed, surfaced once, terminated. */
  private unexpected(err: EdgecapError): void {
    if (this.st === 'stopping' || this.st === 'stopped' || this.st === 'failed') return;
    this.to('failed');
    void this.terminate();
    this.onUnexpected(err);
  }

  started(): void {
    this.to('started');
    this.startedAt = performance.now();
  }

  /**
   * Call `method` in the thread. Rejects with WORKER_EXITED when the thread is gone (or dies
   * before answering) and when it does not answer within `timeoutMs` (the thread is then
   * treated as hung: failed, terminated, reported). Errors the method itself throws pass through.
   */
  async call<K extends Method<T>>(method: K, args: Args<T, K>, timeoutMs = this.callTimeoutMs): Promise<Result<T, K>> {
    if (this.st === 'stopped' || this.st === 'failed') {
      throw new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${this.name} is ${this.st}; ${String(method)}() not sent`, { details: { worker: this.name } });
    }
    let timer: NodeJS.Timeout | undefined;
    const fn = this.api[method as keyof Remote<T>] as unknown as (...a: unknown[]) => Promise<Result<T, K>>;
    const answer = fn(...(args as unknown[]));
    answer.catch(() => undefined); // may settle after the race was lost
    // the message is queued (comlink posts synchronously): wake a thread sleeping on its word
    Atomics.store(this.wake, Ctl.WAKE, 1);
    Atomics.notify(this.wake, Ctl.WAKE);
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${this.name} did not answer ${String(method)}() within ${timeoutMs} ms; terminating it`, {
          details: { worker: this.name, method: String(method), timeoutMs, timeout: true },
        });
        this.unexpected(err);
        reject(err);
      }, timeoutMs);
    });
    const exited = this.gone.then((e): never => {
      throw new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${this.name} exited before answering ${String(method)}(): ${e.message}`, { cause: e, details: { worker: this.name, method: String(method) } });
    });
    try {
      return await Promise.race([answer, timedOut, exited]);
    } finally {
      clearTimeout(timer);
    }
  }

  private terminating: Promise<void> | undefined;

  /** worker.terminate(), bounded: a thread stuck in a native call must not hold anyone. */
  private terminate(): Promise<void> {
    if (!this.terminating) {
      let timer: NodeJS.Timeout | undefined;
      this.terminating = Promise.race([
        closeGate(this.wake, Ctl.GATE, GATE_TIMEOUT_MS)
          .then((closed) => {
            if (!closed) log.error({ worker: this.name }, 'worker stayed inside a state transaction; terminating it anyway');
            return this.worker.terminate();
          })
          .then(
            () => undefined,
            () => undefined,
          ),
        new Promise<void>((r) => {
          timer = setTimeout(() => {
            log.error({ worker: this.name }, 'worker did not terminate in time; abandoning it');
            r();
          }, TERMINATE_TIMEOUT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.terminating;
  }

  /**
   * Run the graceful stop call (if the thread is alive), raced against its exit and
   * `timeoutMs`, then terminate the thread. Always returns; says how it went.
   */
  async stop(method?: Method<T>, timeoutMs = 10_000): Promise<StopResult> {
    if (this.st === 'stopped' || this.st === 'stopping') {
      await this.terminating; // a second caller (a shared thread's resources) returns once it is gone
      return { outcome: 'dead' };
    }
    const wasAlive = this.st !== 'failed';
    this.to('stopping');
    let res: StopResult = { outcome: 'dead' };
    try {
      if (wasAlive && method !== undefined) {
        try {
          await this.call(method, [] as unknown as Args<T, typeof method>, timeoutMs);
          res = { outcome: 'graceful' };
        } catch (e) {
          const err = e instanceof EdgecapError ? e : new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${this.name}: ${String(method)}() failed: ${(e as Error).message}`, { cause: e });
          const timeout = err.details?.timeout === true;
          const exited = err.code === ErrorCodes.WORKER_EXITED && !timeout && err.details?.worker === this.name;
          res = { outcome: timeout ? 'timeout' : exited ? 'dead' : 'failed', error: err };
          if (timeout) log.error({ worker: this.name, timeoutMs }, 'worker did not stop in time; terminating it');
        }
      } else if (wasAlive) res = { outcome: 'graceful' };
    } finally {
      this.api[Comlink.releaseProxy]();
      await this.terminate();
      this.st = 'stopped';
    }
    return res;
  }
}

export interface RestartPolicy {
  /** First restart after this long, doubling per consecutive failure … */
  initialMs: number;
  /** … up to this. */
  maxMs: number;
  /** A thread that ran this long before dying starts over at initialMs. */
  stableMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = { initialMs: 1_000, maxMs: 60_000, stableMs: 60_000 };

/**
 * The one restart policy, for every supervised thread (collectors by resource, the writer; the
 * janitor's thread is started again by its next check instead).
 * schedule() after a thread died; the restart runs after the backoff delay and, when it
 * throws, is scheduled again (while `wanted()`), later.
 */
export class Restarter {
  private readonly entries = new Map<string, { backoff: Backoff; timer: NodeJS.Timeout | undefined; run: (() => void) | undefined }>();
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly policy: RestartPolicy = DEFAULT_RESTART) {}

  attempts(key: string): number {
    return this.entries.get(key)?.backoff.attempts ?? 0;
  }

  pending(key: string): boolean {
    return this.entries.get(key)?.timer !== undefined;
  }

  /**
   * `ranForMs`: how long the dead thread had run (undefined: the previous restart attempt
   * failed). `restart(attempt)` starts the replacement; `wanted()` says whether one is still
   * needed (not stopped, not replaced meanwhile).
   */
  schedule(key: string, ranForMs: number | undefined, restart: (attempt: number) => Promise<void>, wanted: () => boolean): { attempt: number; delayMs: number } {
    let r = this.entries.get(key);
    if (!r) this.entries.set(key, (r = { backoff: new Backoff({ initialMs: this.policy.initialMs, maxMs: this.policy.maxMs }), timer: undefined, run: undefined }));
    if (ranForMs !== undefined && ranForMs >= this.policy.stableMs) r.backoff.succeed();
    const delayMs = r.backoff.fail();
    const attempt = r.backoff.attempts;
    const entry = r;
    clearTimeout(entry.timer);
    entry.run = () => {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      entry.run = undefined;
      if (!wanted()) return;
      const p = restart(attempt).catch((e: unknown) => {
        log.error({ err: e, worker: key, attempt }, 'worker restart failed');
        if (wanted()) this.schedule(key, undefined, restart, wanted);
      });
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    };
    entry.timer = setTimeout(entry.run, delayMs);
    return { attempt, delayMs };
  }

  /** Run a scheduled restart now (skip the rest of its delay); false when none is scheduled. */
  hurry(key: string): boolean {
    const run = this.entries.get(key)?.run;
    if (!run) return false;
    run();
    return true;
  }

  cancel(key: string): void {
    const r = this.entries.get(key);
    if (r) clearTimeout(r.timer);
    this.entries.delete(key);
  }

  cancelAll(): void {
    for (const k of [...this.entries.keys()]) this.cancel(k);
  }

  /** Every restart already running has settled. */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }
}
