/**
 * `@edgecap/core/threads`: the one worker host of edgecap. Every thread the edge starts outside
 * the sync pool (each collector, the writer, the janitor) is started, called, stopped and
 * restarted through ManagedWorker (host.ts); a thread entry imports `@edgecap/core/thread-boot`
 * first (its logs travel to the main thread, its control words are set up) and exposes its API
 * with comlink over `nodeEndpoint(parentPort)`.
 */
export { ManagedWorker, Restarter, DEFAULT_RESTART, prespawn, dropPrespawned, setThreadCompileCache, threadEnv, type ManagedWorkerOptions, type WorkerState, type StopOutcome, type StopResult, type RestartPolicy } from './host.js';
export { Comlink, nodeEndpoint, type Remote } from './comlink.js';
export { Ctl } from './ctl.js';
