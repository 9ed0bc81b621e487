/** Worker entry of the writer: the Writer body bound to comlink, real fs, its own StateStore handle. */
import { parentPort, type MessagePort } from 'node:worker_threads';
import { openStateStore, type StateStore } from '@edgecap/store';
import { Comlink, nodeEndpoint } from './comlink.js';
import type { OversizeMessage, StreamInfo, WriterEvent } from './types.js';
import { Writer, type WriterOptions } from './writer.js';

let writer: Writer | undefined;
let store: StateStore | undefined;

export const writerApi = {
  init(o: WriterOptions, stateDir: string, events: MessagePort): void {
    store = openStateStore(stateDir);
    writer = new Writer(o, { store, emit: (ev: WriterEvent) => events.postMessage(ev) });
    writer.start();
  },
  addRing(id: number, sab: SharedArrayBuffer, streams: StreamInfo[], lostTokensUpTo?: number): void {
    writer!.addRing(id, sab, streams, lostTokensUpTo);
  },
  retireRing(id: number, graceful?: boolean): ReturnType<Writer['retireRing']> {
    return writer!.retireRing(id, graceful);
  },
  /** A port over which producers send OversizeMessage. */
  addBulkPort(port: MessagePort): void {
    port.on('message', (m: OversizeMessage) => writer!.addOversize(m.ringId, m.token, m.frame));
  },
  async stop(): Promise<void> {
    await writer?.stop();
    await store?.flushed();
  },
};
export type WriterApi = typeof writerApi;

if (parentPort) Comlink.expose(writerApi, nodeEndpoint(parentPort));
