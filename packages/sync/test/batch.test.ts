/**
 * Issue #16: small files travel together (UploadBatch, sync/src/batch.ts) — each file settled on
 * its own verdict; an ingest without UploadBatch gets one file per call, remembered. The real
 * ingest's side of the same call is packages/ingest/test/upload-batch.test.ts, and
 * cost.test.ts sends 150 small files through it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SyncEngine, type SyncOptions } from '@edgecap/sync';
import { TestServer, makeCapture, tmpDir } from './helpers.js';

const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function setup(batch: boolean): Promise<{ server: TestServer; captureDir: string; opts: SyncOptions }> {
  const server = new TestServer({ apiKey: 'k', batch });
  await server.start();
  servers.push(server);
  const base = tmpDir('batch');
  dirs.push(base);
  const captureDir = path.join(base, 'capture');
  const opts: SyncOptions = {
    captureDir,
    stateDir: path.join(captureDir, '.edgecap'),
    additionalSyncPaths: [],
    fileLastModifiedMs: 0,
    intervalMs: 3_600_000,
    threads: 1,
    partId: 'p',
    tags: [],
    ingest: { address: server.address, insecure: true, apiKey: 'k' },
  };
  return { server, captureDir, opts };
}

describe('small files in UploadBatch calls', () => {
  it('go many to a call; a file the server refuses goes to failed/ on its own verdict, the others are deleted once acknowledged', async () => {
    const { server, captureDir, opts } = await setup(true);
    const files = Array.from({ length: 90 }, (_, i) => makeCapture(captureDir, `s${i % 3}`, 5 + (i % 7)));
    const bad = files[41]!;
    server.faults.reject = (m) => (m.file_id === bad.id ? 'refused by the test' : undefined);
    const engine = new SyncEngine(opts);
    try {
      const res = await engine.syncNow();
      expect(res.uploaded).toBe(89);
      expect(res.failed).toBe(1);
      // several files per call: far fewer calls than files (a lone file left over may go in an Upload)
      expect(server.hits.UploadBatch + server.hits.Upload).toBeLessThanOrEqual(6);
      expect(server.batchSizes.reduce((a, b) => a + b, 0) + server.hits.Upload).toBe(90);
      for (const f of files) {
        if (f === bad) continue;
        expect(server.stored.get(f.id)?.data.equals(f.bytes), f.id).toBe(true);
        expect(server.stored.get(f.id)?.stores).toBe(1);
        expect(fs.existsSync(f.path)).toBe(false);
      }
      expect(server.stored.has(bad.id)).toBe(false);
      const failed = path.join(captureDir, '.edgecap', 'failed', path.relative(captureDir, bad.path));
      expect(fs.existsSync(failed)).toBe(true);
    } finally {
      await engine.stop();
    }
  });

  it('a small file changed after the batch read it: the bytes read are what the server gets, and the file is kept, not deleted', async () => {
    const { server, captureDir, opts } = await setup(true);
    const files = Array.from({ length: 12 }, (_, i) => makeCapture(captureDir, `s${i % 3}`, 5 + i));
    const victim = files[5]!;
    const replacement = Buffer.concat([victim.bytes, Buffer.from('appended after the read')]);
    // The files are in the batch call already (read by the upload thread): the victim is changed
    // now, on disk, as a user or another tool could.
    server.faults.reject = (m) => {
      if (m.file_id === victim.id) fs.writeFileSync(victim.path, replacement);
      return undefined;
    };
    const engine = new SyncEngine(opts);
    try {
      const res = await engine.syncNow();
      expect(res.uploaded).toBe(12);
      expect(server.hits.UploadBatch).toBeGreaterThanOrEqual(1);
      for (const f of files) {
        expect(server.stored.get(f.id)?.data.equals(f.bytes), f.id).toBe(true); // the bytes the batch read
        expect(fs.existsSync(f.path), f.path).toBe(f === victim); // changed after the read: kept
      }
      expect(fs.readFileSync(victim.path).equals(replacement)).toBe(true);
    } finally {
      await engine.stop();
    }
  });

  it('a backlog of many small files goes in one round, none left behind: a file put back to wait for a batch slot is still sent after the walk ended', async () => {
    // ~40 KiB each: a batch is full by bytes (1 MiB) before it is by count, so the runner that
    // filled it holds the next file and puts it back in the round's queue to wait for a batch
    // slot. When another runner has meanwhile found the claim walk at its end, that file must
    // still be taken (before the fix the ended generator never looked at the queue again: the
    // round ended with it unsent, counted as deferred).
    const { server, captureDir, opts } = await setup(true);
    const files = Array.from({ length: 400 }, (_, i) => makeCapture(captureDir, `m${i % 8}`, 60, { payloadBytes: 600 }));
    const engine = new SyncEngine(opts);
    try {
      const res = await engine.syncNow();
      expect({ uploaded: res.uploaded, deferred: res.deferred, failed: res.failed, errors: res.errors }).toEqual({ uploaded: files.length, deferred: 0, failed: 0, errors: [] });
      for (const f of files) expect(server.stored.get(f.id)?.stores, f.id).toBe(1);
    } finally {
      await engine.stop();
    }
  });

  it('an ingest with a lower maxBatchFiles refuses a batch as a whole: its files go again in smaller batches, and later batches are that size', async () => {
    const { server, captureDir, opts } = await setup(true);
    server.faults.maxBatchFiles = 40;
    const files = Array.from({ length: 600 }, (_, i) => makeCapture(captureDir, `l${i % 6}`, 2));
    const engine = new SyncEngine(opts);
    try {
      const res = await engine.syncNow();
      expect({ uploaded: res.uploaded, failed: res.failed, errors: res.errors }).toEqual({ uploaded: files.length, failed: 0, errors: [] });
      for (const f of files) expect(server.stored.get(f.id)?.stores, f.id).toBe(1);
      // 256 → 128 → 64 → 32: at most a few refused calls (their files sent again, halved), then
      // every batch taken; far fewer calls than one per file.
      const refused = server.hits.UploadBatch - server.batchSizes.length;
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(3 * 4); // 3 halvings, each with up to BATCHES_PER_THREAD calls in flight
      expect(Math.max(...server.batchSizes)).toBeLessThanOrEqual(40);
      expect(server.batchSizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(files.length / 2);
    } finally {
      await engine.stop();
    }
  });

  it('under a bandwidth cap they still go in batches, each file in pieces of the cap’s size, byte for byte and within the cap', async () => {
    const { server, captureDir, opts } = await setup(true);
    // ~40 KiB each: more than one piece at 64 KiB/s (pieces of 16 KiB)
    const files = Array.from({ length: 5 }, (_, i) => makeCapture(captureDir, `c${i}`, 60, { payloadBytes: 600 }));
    const total = files.reduce((a, f) => a + f.bytes.length, 0);
    const rate = 64 * 1024;
    const engine = new SyncEngine({ ...opts, maxBytesPerSecond: rate });
    try {
      const t0 = performance.now();
      const res = await engine.syncNow();
      const sec = (performance.now() - t0) / 1000;
      expect(res.uploaded).toBe(5);
      expect(server.hits.UploadBatch).toBeGreaterThanOrEqual(1);
      expect(server.batchSizes.reduce((a, b) => a + b, 0)).toBe(5);
      for (const f of files) expect(server.stored.get(f.id)?.data.equals(f.bytes), f.id).toBe(true);
      // the cap holds for batches too: no faster than the rate after its 100 ms burst
      expect(sec).toBeGreaterThanOrEqual(total / rate - 0.1 - 0.05);
    } finally {
      await engine.stop();
    }
  });

  it('an ingest without UploadBatch (older) gets one file per call, and is not asked again', async () => {
    const { server, captureDir, opts } = await setup(false);
    const first = Array.from({ length: 12 }, (_, i) => makeCapture(captureDir, `a${i}`, 4));
    const engine = new SyncEngine(opts);
    try {
      expect((await engine.syncNow()).uploaded).toBe(12);
      expect(server.hits.UploadBatch).toBe(1);
      expect(server.hits.Upload).toBe(12);
      const second = Array.from({ length: 12 }, (_, i) => makeCapture(captureDir, `b${i}`, 4));
      expect((await engine.syncNow()).uploaded).toBe(12);
      expect(server.hits.UploadBatch).toBe(1); // remembered
      expect(server.hits.Upload).toBe(24);
      for (const f of [...first, ...second]) expect(server.stored.get(f.id)?.stores).toBe(1);
    } finally {
      await engine.stop();
    }
  });
});
