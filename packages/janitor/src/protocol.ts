import type { WireError } from '@edgecap/core';
import type { JanitorRound } from './core.js';

/** Options that cross the thread boundary (no functions: statfs injection is in-process only). */
export interface WorkerInit {
  captureDir: string;
  stateDir: string;
  runId: string;
  diskUsageThreshold?: number;
  captureDirThreshold?: number;
  deleteEveryNth?: number;
  excludePaths?: string[];
}

/** Every reply is one of these; errors cross as {code, message} and are rebuilt with fromWire. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: WireError };

/** The comlink surface of the janitor worker: the closed set of control calls. */
export interface JanitorWorkerApi {
  init(o: WorkerInit): Promise<Reply<null>>;
  check(): Promise<Reply<JanitorRound>>;
  close(): Promise<Reply<null>>;
}
