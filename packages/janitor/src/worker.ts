import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { ErrorCodes, toWire } from '@edgecap/core';
import { JanitorCore } from './core.js';
import { nodeEndpoint } from './endpoint.js';
import { JanitorError } from './errors.js';
import type { JanitorWorkerApi, Reply, WorkerInit } from './protocol.js';

/** Janitor worker body: one JanitorCore, driven over comlink by the Janitor on the main thread. */
let core: JanitorCore | undefined;

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
      core = new JanitorCore(o);
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
      core = undefined;
      if (c) await c.close();
      return null;
    }),
};

if (!parentPort) throw new JanitorError(ErrorCodes.STATE, 'janitor worker must run in a worker thread');
Comlink.expose(api, nodeEndpoint(parentPort));
