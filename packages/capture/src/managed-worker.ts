/**
 * A worker thread with an explicit lifecycle: starting → started → stopping → stopped, and
 * failed when it exits or throws without being asked to stop (surfaced via onUnexpected).
 */
import { Worker } from 'node:worker_threads';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import { Comlink, nodeEndpoint, type Remote } from './comlink.js';

const log = logger('capture.worker');

export type WorkerState = 'starting' | 'started' | 'stopping' | 'stopped' | 'failed';

const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['started', 'stopping', 'failed'],
  started: ['stopping', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: ['stopping', 'stopped'],
};

export class ManagedWorker<T> {
  private st: WorkerState = 'starting';
  readonly worker: Worker;
  readonly api: Remote<T>;

  constructor(
    url: URL,
    readonly name: string,
    onUnexpected: (err: EdgecapError) => void,
  ) {
    this.worker = new Worker(url, { name });
    this.api = Comlink.wrap<T>(nodeEndpoint(this.worker));
    this.worker.on('error', (e) => {
      if (this.st === 'stopping' || this.st === 'stopped') return;
      this.to('failed');
      onUnexpected(new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${name} crashed: ${e.message}`, { cause: e, details: { worker: name } }));
    });
    this.worker.on('exit', (code) => {
      if (this.st === 'stopping' || this.st === 'stopped' || this.st === 'failed') return;
      this.to('failed');
      onUnexpected(new EdgecapError(ErrorCodes.WORKER_EXITED, `worker ${name} exited unexpectedly (code ${code})`, { details: { worker: name, code } }));
    });
  }

  get state(): WorkerState {
    return this.st;
  }

  private to(next: WorkerState): void {
    if (!ALLOWED[this.st].includes(next)) {
      throw new EdgecapError(ErrorCodes.STATE, `worker ${this.name}: illegal transition ${this.st} → ${next}`);
    }
    log.debug({ worker: this.name, from: this.st, to: next }, 'worker state');
    this.st = next;
  }

  started(): void {
    this.to('started');
  }

  /**
   * Run the graceful stop (if the worker is alive), then terminate the thread. A graceful stop
   * that does not finish in `timeoutMs` (a resource method that never returns) is abandoned:
   * stop() and reconfigure() must always return.
   */
  async stop(graceful?: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
    if (this.st === 'stopped' || this.st === 'stopping') return;
    const alive = this.st !== 'failed';
    this.to('stopping');
    let timer: NodeJS.Timeout | undefined;
    try {
      if (alive && graceful) {
        const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
        if ((await Promise.race([graceful().then(() => 'ok' as const), timedOut])) === 'timeout') {
          log.error({ worker: this.name, timeoutMs }, 'worker did not stop in time; terminating it');
        }
      }
    } finally {
      clearTimeout(timer);
      this.api[Comlink.releaseProxy]();
      await this.worker.terminate();
      this.st = 'stopped';
    }
  }
}
