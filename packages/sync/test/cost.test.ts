/**
 * Issue #16 (per-file cost, bytes per CPU-second, capture first) through real parts: the real
 * ingest server (TLS, files + LMDB, group commit) in this process, real capture files.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataSyncService } from '@edgecap/proto';
import { listReceived, makeDevCert, readReceived, startIngestServer } from '@edgecap/ingest';
import { FLOOR_BYTES_PER_SECOND, SyncEngine, type SyncOptions } from '@edgecap/sync';
// Internal (not exported by the package): the compiled file the worker threads run.
import { closeClients, frameChunk, uploadFile } from '../dist/upload.js';
import { createRateLimit } from '../dist/link.js';
import { makeCapture, tmpDir } from './helpers.js';

describe('pre-framed chunks', () => {
  it('are byte for byte what protobufjs encodes for UploadRequest{chunk}', () => {
    const encode = dataSyncService().Upload!.requestSerialize as (m: object) => Buffer;
    for (const len of [1, 5, 127, 128, 300, 16_383, 16_384, 1_048_576, 2_097_151, 2_097_152]) {
      const data = Buffer.alloc(len, len % 251);
      const buf = Buffer.alloc(8 + len);
      data.copy(buf, 8);
      expect(frameChunk(buf, 8, len).equals(encode({ chunk: data })), `length ${len}`).toBe(true);
    }
  });
});

/** Every capture file the ingest stored, by id (read through its storage: small ones sit in packs). */
async function storedCaptures(dataDir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await listReceived(dataDir)) if (e.type === 'capture') out.set(e.file_id, Buffer.from((await readReceived(dataDir, e.part_id, e.file_id))!));
  return out;
}

/** nice value of each thread of this process (Linux). */
function threadNices(): { tid: number; nice: number }[] {
  return fs.readdirSync('/proc/self/task').map((t) => {
    const st = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    return { tid: Number(t), nice: Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]) };
  });
}

describe('small and big files through the real ingest server', () => {
  const root = tmpDir('cost');
  let server: Awaited<ReturnType<typeof startIngestServer>>;
  let certs: ReturnType<typeof makeDevCert>;
  const dataDir = path.join(root, 'ingest');

  beforeAll(async () => {
    certs = makeDevCert(path.join(root, 'certs'));
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
  });
  afterAll(async () => {
    await server?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const options = (captureDir: string, extra: Partial<SyncOptions> = {}): SyncOptions => ({
    captureDir,
    stateDir: path.join(captureDir, '.edgecap'),
    additionalSyncPaths: [],
    fileLastModifiedMs: 0,
    intervalMs: 3_600_000,
    threads: 2,
    partId: 'cost',
    tags: [],
    ingest: { address: `localhost:${server.port}`, caFile: certs.caFile, apiKey: 'k1' },
    // Several chunks per file from 256 KiB: the in-memory layout and the streamed path both.
    chunkBytes: 96 * 1024,
    ...extra,
  });

  it('every file arrives once, byte for byte: many small ones sharing group commits, big ones in chunks', async () => {
    const captureDir = path.join(root, 'capture-a');
    const files = [
      ...Array.from({ length: 150 }, (_, i) => makeCapture(captureDir, `s${i % 5}`, 3 + (i % 40))), // small: held in memory at the ingest
      makeCapture(captureDir, 'mid', 400, { payloadBytes: 200 }), // ~90 KiB: staged on disk, one chunk
      makeCapture(captureDir, 'big', 1500, { payloadBytes: 600 }), // ~1 MiB: whole read, many chunks
      makeCapture(captureDir, 'huge', 3000, { payloadBytes: 700 }), // > 1 MiB: read in chunks on the sync thread
      // more of them, each smaller than the last: a committed file's buffer is reused for the next
      // (upload.ts, spare), so stale bytes of a bigger file lie beyond each smaller one's end
      ...[2900, 2800, 2700, 2600].map((n, i) => makeCapture(captureDir, `huge${i}`, n, { payloadBytes: 700 })),
    ];
    const engine = new SyncEngine(options(captureDir, { niceIncrement: 0 }));
    try {
      const res = await engine.syncNow();
      expect(res.errors).toEqual([]);
      expect(res.uploaded).toBe(files.length);
      expect(res.failed).toBe(0);
      const stored = await storedCaptures(dataDir);
      for (const f of files) {
        expect(stored.get(f.id)?.equals(f.bytes), `${f.id} (${f.bytes.length} bytes)`).toBe(true);
        expect(fs.existsSync(f.path)).toBe(false);
      }
      // Nothing left to send; the same bytes again are recognised, not stored twice.
      expect((await engine.syncNow()).uploaded).toBe(0);
      const again = files[7]!;
      fs.mkdirSync(path.dirname(again.path), { recursive: true });
      fs.writeFileSync(again.path, again.bytes);
      const r2 = await engine.syncNow();
      expect([r2.uploaded, r2.alreadyHad]).toEqual([0, 1]);
    } finally {
      await engine.stop();
    }
  });

  it('whole-file buffers reused across uploads on one thread never mix two files', async () => {
    // uploadFile in this thread, five files > 1 MiB started 20 ms apart, twice: a committed
    // file's buffer goes to the next file read (upload.ts, spare); one handed over while grpc-js
    // still sent from it would store the wrong bytes (caught below, byte for byte).
    const captureDir = path.join(root, 'capture-c');
    const target = { address: `localhost:${server.port}`, caFile: certs.caFile, apiKey: 'k1' };
    // a cap keeps each file sending for ~50 ms after its read: the next file's read lands meanwhile
    const rateLimit = createRateLimit(40e6);
    const upload = (f: { path: string; id: string }) =>
      uploadFile({
        path: f.path,
        target,
        addressIndex: 0,
        rateLimit,
        chunkBytes: 96 * 1024,
        meta: { file_id: f.id, part_id: 'cost', resource_kind: 'sensor', resource_name: 'r', method: 'Readings', data_type: 'DATA_TYPE_TABULAR', tags: [], file_name: path.basename(f.path), source: 'capture' },
      });
    try {
      for (const round of [0, 1]) {
        const files = [3000, 2900, 2800, 2700, 2600].map((n, i) => makeCapture(captureDir, `reuse${round}-${i}`, n - round * 50, { payloadBytes: 700 }));
        // staggered: each read lands while the one before it is still being sent
        const calls = [];
        for (const f of files) {
          calls.push(upload(f));
          await new Promise((r) => setTimeout(r, 20));
        }
        const outs = await Promise.all(calls);
        expect(outs.map((o) => o.ok && o.status)).toEqual(files.map(() => 'committed'));
        const stored = await storedCaptures(dataDir);
        for (const f of files) expect(stored.get(f.id)?.equals(f.bytes), `${f.id} (${f.bytes.length} bytes)`).toBe(true);
      }
    } finally {
      closeClients();
    }
  });

  it('capture first: a capture made late by sync holds sync’s pace down; every file still arrives once, byte for byte', async () => {
    const captureDir = path.join(root, 'capture-cf');
    const files = Array.from({ length: 4 }, (_, i) => makeCapture(captureDir, `cf${i}`, 1500, { payloadBytes: 600 })); // ~1 MiB each
    // A 1 kHz capture that runs 5 % late whenever sync may send faster than 2 × the floor rate
    // (a CPU that sync's pace saturates beyond that), 0.1 % late otherwise.
    let engine: SyncEngine | undefined;
    const t0 = performance.now();
    let last = t0;
    let late = 0;
    const rates: number[] = [];
    const lateness = () => {
      const now = performance.now();
      const rate = engine?.stats().captureFirst?.rate ?? 0;
      late += ((now - last) / 1000) * 1000 * (rate === 0 || rate > 2 * FLOOR_BYTES_PER_SECOND ? 0.05 : 0.001);
      last = now;
      return { late: Math.floor(late), due: Math.floor(now - t0) };
    };
    engine = new SyncEngine(options(captureDir, { captureLateness: lateness }));
    const sample = setInterval(() => rates.push(engine!.stats().captureFirst!.rate), 50);
    try {
      const res = await engine.syncNow();
      expect(res.errors).toEqual([]);
      expect(res.uploaded).toBe(files.length);
      const stored = await storedCaptures(dataDir);
      for (const f of files) expect(stored.get(f.id)?.equals(f.bytes), f.id).toBe(true);
      const st = engine.stats().captureFirst!;
      // the first windows at the floor measured capture at rest (0.1 %); growing past 2 × the
      // floor made it late: cut back at least once
      expect(st.baseline).toBeLessThan(0.01);
      expect(st.cuts).toBeGreaterThanOrEqual(1);
      expect(Math.max(...rates)).toBeGreaterThan(2 * FLOOR_BYTES_PER_SECOND);
      expect(rates.slice(rates.findIndex((r) => r > 2 * FLOOR_BYTES_PER_SECOND)).some((r) => r <= 2 * FLOOR_BYTES_PER_SECOND)).toBe(true);
    } finally {
      clearInterval(sample);
      await engine.stop();
    }
  }, 60_000);

  it.skipIf(process.platform !== 'linux')('capture first: sync threads run niceIncrement below the process, the main thread keeps its priority', async () => {
    const captureDir = path.join(root, 'capture-b');
    for (let i = 0; i < 6; i++) makeCapture(captureDir, `n${i}`, 20);
    const base = os.getPriority(0);
    const before = new Set(threadNices().map((t) => t.tid));
    const engine = new SyncEngine(options(captureDir, { niceIncrement: 3 }));
    try {
      expect((await engine.syncNow()).uploaded).toBe(6);
      // The pool's threads stay alive (idleTimeout) right after the round.
      const fresh = threadNices().filter((t) => !before.has(t.tid));
      expect(fresh.some((t) => t.nice === Math.min(19, base + 3))).toBe(base < 19);
      expect(os.getPriority(0)).toBe(base);
      expect(threadNices().find((t) => t.tid === process.pid)?.nice).toBe(base);
    } finally {
      await engine.stop();
    }
  });
});
