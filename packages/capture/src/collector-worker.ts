/** Worker entry of a collector: the Collector body bound to comlink over parentPort. */
import { parentPort, type MessagePort } from 'node:worker_threads';
import { toWire, type WireError } from '@edgecap/core';
import { Collector, type CollectorInit, type CollectorStreamStart } from './collector.js';
import { Comlink, nodeEndpoint } from './comlink.js';

let collector: Collector | undefined;
let bulk: MessagePort | undefined;

export const collectorApi = {
  async load(init: CollectorInit, port: MessagePort): Promise<{ ok: true; kind: string } | { ok: false; error: WireError }> {
    bulk = port;
    collector = new Collector(init, (m) => bulk!.postMessage(m, [m.frame.buffer as ArrayBuffer]));
    try {
      const { kind } = await collector.load();
      return { ok: true, kind };
    } catch (e) {
      return { ok: false, error: toWire(e) };
    }
  },
  /**
   * The writer thread was replaced: oversize frames go to `port` from now on. Returns the last
   * token sent to the old one (those bytes died with it).
   */
  rebindWriter(port: MessagePort): number {
    bulk?.close();
    bulk = port;
    return collector?.lastOversizeToken ?? 0;
  },
  start(streams: CollectorStreamStart[]): void {
    collector!.start(streams);
  },
  async stop(): Promise<void> {
    await collector?.stop();
  },
};
export type CollectorApi = typeof collectorApi;

if (parentPort) Comlink.expose(collectorApi, nodeEndpoint(parentPort));
