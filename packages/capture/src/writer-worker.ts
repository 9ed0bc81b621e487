/** Worker entry of the writer: the Writer body bound to comlink, real fs, its own StateStore handle. */
// first: logs through the parent (no logger in this thread)
import { Comlink, Ctl, nodeEndpoint, openGated, wakeWord } from '@edgecap/core/thread-boot';
import { parentPort, type MessagePort } from 'node:worker_threads';
import { openStateStore, type StateStore } from '@edgecap/store';
import { MemoryFs } from './memory-fs.js';
import type { MemoryWriterInit, MemoryWriterMessage } from './memory-store.js';
import type { OversizeMessage, StreamInfo, WriterEvent } from './types.js';
import { Writer, type SeqSink, type WriterOptions } from './writer.js';

let writer: Writer | undefined;
let store: StateStore | undefined;

/**
 * Memory mode: no StateStore (nothing may be written under capture_dir), seqs are not persisted
 * (nothing survives a restart anyway), gaps go to the main thread's MemoryStore, and a finished
 * file is posted there with its bytes transferred.
 */
function memoryWriter(o: WriterOptions, events: MessagePort, mem: MemoryWriterInit): Writer {
  const mfs = new MemoryFs(mem.openSab);
  const post = (m: MemoryWriterMessage, transfer: ArrayBuffer[] = []): void => mem.port.postMessage(m, transfer);
  // What the disk writer persists before a rename (the seqs a finished file covers) goes to the
  // main thread's MemoryStore, on the same port, so it arrives before the sealed file: a new
  // engine (capture restarted) and a replacement writer resume from there.
  const sink: SeqSink = {
    advanceSeqSync: (key, next) => post({ type: 'seqs', seqs: [{ key, next }] }),
    advanceSeqsSync: (seqs) => post({ type: 'seqs', seqs: [...seqs] }),
    recordGap: (g) => post({ type: 'gap', gap: g }),
  };
  // nothing durable to batch: a sealed file reaches the MemoryStore at the next flush tick
  return new Writer({ ...o, commitIntervalMs: 0 }, {
    fs: mfs,
    store: sink,
    emit: (ev: WriterEvent) => {
      if (ev.type !== 'file-finished') return events.postMessage(ev);
      const bytes = mfs.take(ev.path);
      post({ type: 'sealed', path: ev.path, header: ev.header, readings: ev.readings, bytes }, [bytes.buffer as ArrayBuffer]);
    },
  });
}

export const writerApi = {
  init(o: WriterOptions, stateDir: string, events: MessagePort, mem?: MemoryWriterInit): void {
    if (mem) writer = memoryWriter(o, events, mem);
    else {
      // the open and every ledger call behind the thread's gate: a terminate() never lands inside LMDB
      store = openGated(() => openStateStore(stateDir), wakeWord, Ctl.GATE);
      writer = new Writer(o, { store, emit: (ev: WriterEvent) => events.postMessage(ev) });
    }
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
