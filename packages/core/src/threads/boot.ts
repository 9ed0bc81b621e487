/**
 * `@edgecap/core/thread-boot`: first import of every thread entry ManagedWorker starts (ESM evaluates imports in order, so this runs
 * before any module below it makes its logger): logs go to the main thread through parentPort
 * (thread-log.ts), never through a logger loaded here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setRootLogger } from '../log.js';
import { CTL_SLOTS } from './ctl.js';
import { PortLogger } from './thread-log.js';

/** What ManagedWorker hands every thread it starts. */
export interface ThreadData {
  edgecap?: {
    /** Main thread's log level: lines below it are dropped here. */
    logLevel?: string;
    /** Control words (Int32 slots `Ctl` of ctl.ts). */
    wakeSab?: SharedArrayBuffer;
  };
}

const data = (workerData as ThreadData | undefined)?.edgecap;
// only in a thread ManagedWorker started (its workerData says so): anyone else's worker keeps its own logging
if (parentPort && data) setRootLogger(new PortLogger(parentPort, data?.logLevel ?? process.env.EDGECAP_LOG_LEVEL ?? 'info').asLogger());

/** The control words of this thread (private ones when not started by ManagedWorker). */
export const wakeWord = new Int32Array(data?.wakeSab ?? new SharedArrayBuffer(CTL_SLOTS * 4));

// What a thread entry needs besides, from this one module (the main thread's side is ./index.ts).
export { Comlink, nodeEndpoint } from './comlink.js';
export { Ctl } from './ctl.js';
export { gatedObject, openGated } from './txn-gate.js';
