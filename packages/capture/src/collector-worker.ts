/**
 * Worker entry of a collector thread: Collector bodies bound to comlink over parentPort. Loads
 * what a collector uses and no more (no logger, no validator; undici only for an http model).
 *
 * A thread of its own holds one collector (it sleeps on the control word: wait mode). The shared
 * thread holds one per resource that opted in, keyed by resource name, each with its own ring,
 * seqs and oversize port; they run in loop mode (an Atomics.wait would stop the others).
 */
// first: logs through the parent (no logger in this thread), the control word
import { Comlink, nodeEndpoint, wakeWord } from '@edgecap/core/thread-boot';
import { parentPort, type MessagePort } from 'node:worker_threads';
import { EdgecapError, ErrorCodes, toWire, type WireError } from '@edgecap/core';
import { Collector, type CollectorInit, type CollectorStreamStart } from './collector.js';

interface Hosted {
  collector: Collector;
  bulk: MessagePort;
}

const hosted = new Map<string, Hosted>();

/** The named collector, or the only one (a thread of its own is called without a name). */
function find(name: string | undefined): Hosted | undefined {
  if (name !== undefined) return hosted.get(name);
  return hosted.size === 1 ? hosted.values().next().value : undefined;
}

export const collectorApi = {
  async load(init: CollectorInit, port: MessagePort, shared = false): Promise<{ ok: true; kind: string } | { ok: false; error: WireError }> {
    const name = init.spec.name;
    if (hosted.has(name)) return { ok: false, error: toWire(new EdgecapError(ErrorCodes.STATE, `resource "${name}" is already collected in this thread`)) };
    const h: Hosted = { collector: undefined as unknown as Collector, bulk: port };
    h.collector = new Collector(init, (m) => h.bulk.postMessage(m, [m.frame.buffer as ArrayBuffer]), shared ? undefined : wakeWord);
    try {
      const { kind } = await h.collector.load();
      hosted.set(name, h);
      return { ok: true, kind };
    } catch (e) {
      port.close();
      return { ok: false, error: toWire(e) };
    }
  },
  /**
   * The writer thread was replaced: oversize frames go to `port` from now on. Returns the last
   * token sent to the old one (those bytes died with it).
   */
  rebindWriter(port: MessagePort, name?: string): number {
    const h = find(name);
    if (!h) {
      port.close();
      return 0;
    }
    h.bulk.close();
    h.bulk = port;
    return h.collector.lastOversizeToken;
  },
  start(streams: CollectorStreamStart[], name?: string): void {
    const h = find(name);
    if (!h) throw new EdgecapError(ErrorCodes.STATE, `no resource "${name ?? ''}" loaded in this thread`);
    h.collector.start(streams);
  },
  /** Stop one collector (by name), or every one in the thread. */
  async stop(name?: string): Promise<void> {
    const names = name !== undefined ? [name] : [...hosted.keys()];
    await Promise.all(
      names.map(async (n) => {
        const h = hosted.get(n);
        if (!h) return;
        hosted.delete(n);
        // its port stays open: oversize frames it posted last are still on their way
        await h.collector.stop();
      }),
    );
  },
};
export type CollectorApi = typeof collectorApi;

if (parentPort) Comlink.expose(collectorApi, nodeEndpoint(parentPort));
