// first: logs through the parent, the control words (its gate below)
import { Comlink, Ctl, nodeEndpoint, openGated, wakeWord } from '@edgecap/core/thread-boot';
import { parentPort } from 'node:worker_threads';
import { ErrorCodes, toWire } from '@edgecap/core';
import { StateStore } from '@edgecap/store';
import { JanitorCore } from './core.js';
import { JanitorError } from './errors.js';
import type { JanitorWorkerApi, Reply, WorkerInit } from './protocol.js';

/**
 * Janitor worker body: one JanitorCore, driven by the Janitor on the main thread through
 * ManagedWorker. Its ledger handle is gated: the thread is never terminated (a hung check) inside
 * an LMDB transaction, which would hang every other thread that writes the ledger.
 */
let core: JanitorCore | undefined;
let store: StateStore | undefined;

function wrap<T>(f: () => T | Promise<T>): Promise<Reply<T>> {
  return Promise.resolve()
    .then(f)
    .then(
      (value) => ({ ok: true as const, value }),
      (e: unknown) => ({ ok: false as const, error: toWire(e) }),
    );
}

const api: JanitorWorkerApi = {
  init: (o: WorkerInit) =>
    wrap(() => {
      if (core) throw new JanitorError(ErrorCodes.STATE, 'janitor worker already initialised');
      store = openGated(() => new StateStore(o.stateDir), wakeWord, Ctl.GATE);
      core = new JanitorCore({ ...o, store });
      return null;
    }),
  check: () =>
    wrap(() => {
      if (!core) throw new JanitorError(ErrorCodes.STATE, 'janitor worker not initialised');
      return core.check();
    }),
  close: () =>
    wrap(async () => {
      const c = core;
      const s = store;
      core = undefined;
      store = undefined;
      if (c) await c.close();
      if (s) await s.close();
      return null;
    }),
};

if (!parentPort) throw new JanitorError(ErrorCodes.STATE, 'janitor worker must run in a worker thread');
Comlink.expose(api, nodeEndpoint(parentPort));
