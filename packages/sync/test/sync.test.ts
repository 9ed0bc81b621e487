import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncEngine, type FileSyncedEvent, type SyncOptions } from '@edgecap/sync';
import { StateStore } from '@edgecap/store';
import { setThreadCompileCache } from '@edgecap/core/threads';
import module from 'node:module';
import { TestServer, byName, hasOpenssl, makeCapture, makeFile, makeTls, tmpDir } from './helpers.js';

const tlsOk = hasOpenssl();

describe.skipIf(!tlsOk)('sync over TLS against a real gRPC server', () => {
  let dir: string;
  let tls: ReturnType<typeof makeTls>;
  let server: TestServer;

  beforeAll(async () => {
    dir = tmpDir('tls');
    tls = makeTls(dir);
    server = new TestServer({ tls, apiKey: 'k1' });
    await server.start();
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the upload threads compile through the compile cache set for edgecap threads (the state dir)', async (ctx) => {
    if (typeof (module as { enableCompileCache?: unknown }).enableCompileCache !== 'function') ctx.skip(); // Node < 22.1: no compile cache
    const captureDir = path.join(dir, 'cc-capture');
    const cache = path.join(dir, 'cc-cache');
    makeCapture(captureDir, 'temp', 20);
    // a server of its own: the other tests count what the shared one stored
    const own = new TestServer({ tls, apiKey: 'k1' });
    await own.start();
    setThreadCompileCache(cache);
    const engine = new SyncEngine({ captureDir, stateDir: path.join(dir, 'cc-state'), additionalSyncPaths: [], fileLastModifiedMs: 0, intervalMs: 60_000, threads: 1, partId: 'part-1', tags: [], ingest: { address: `localhost:${own.port}`, caFile: tls.certFile, apiKey: 'k1' } });
    try {
      const r = await engine.syncNow();
      expect(r.uploaded).toBe(1);
    } finally {
      await engine.stop();
      setThreadCompileCache(undefined);
      await own.close();
    }
    // written by the pool's thread: its worker entry and the modules it loaded
    expect(fs.existsSync(cache) ? (fs.readdirSync(cache, { recursive: true }) as string[]).length : 0).toBeGreaterThan(0);
  });

  it('uploads capture files and additional_sync_paths files exactly once, deletes them, leaves .prog and young files', async () => {
    const captureDir = path.join(dir, 'capture');
    const stateDir = path.join(captureDir, '.edgecap');
    const extra = path.join(dir, 'extra');
    const caps = [makeCapture(captureDir, 'temp', 50), makeCapture(captureDir, 'hum', 2000, { payloadBytes: 600 }), makeCapture(captureDir, 'cam', 3, { type: 'binary' })];
    const prog = makeCapture(captureDir, 'temp', 5, { ext: '.prog' });
    const a = makeFile(extra, 'top.txt', 'hello');
    const b = makeFile(extra, 'nested/deeper/data.bin', Buffer.alloc(300_000, 7));
    const young = makeFile(extra, 'nested/young.log', 'still being written', 0);
    // A symlink pointing outside the root is never followed.
    const outside = makeFile(dir, 'outside/secret.txt', 'do not sync');
    fs.symlinkSync(outside, path.join(extra, 'link.txt'));
    // An explained gap waiting to be reported.
    const st0 = new StateStore(stateDir);
    st0.recordGap({ kind: 'sensor', name: 'temp', method: 'Readings', from_seq: 10, to_seq: 12, reason: 'ring_full', time_us: 1 });
    await st0.close();

    let now = Date.now();
    const opts: SyncOptions = {
      captureDir,
      stateDir,
      additionalSyncPaths: [extra],
      fileLastModifiedMs: 10_000,
      intervalMs: 60_000,
      threads: 2,
      partId: 'part-1',
      tags: ['site:a'],
      ingest: { address: `localhost:${server.port}`, caFile: tls.certFile, apiKey: 'k1' },
      chunkBytes: 64 * 1024,
      clock: { now: () => now },
    };
    const engine = new SyncEngine(opts);
    const events: FileSyncedEvent[] = [];
    engine.on('file-synced', (e: FileSyncedEvent) => events.push(e));
    try {
      const r1 = await engine.syncNow();
      expect(r1.errors).toEqual([]);
      expect(r1.uploaded).toBe(5);
      expect(server.stored.size).toBe(5);
      // Capture files: id from the header, resource from the header, deleted locally.
      for (const c of caps) {
        const s = server.stored.get(c.id)!;
        expect(s.stores).toBe(1);
        expect(s.data.equals(c.bytes)).toBe(true);
        expect(s.meta.part_id).toBe('part-1');
        expect(s.meta.resource_kind).toBe('sensor');
        expect(s.meta.method).toBe('Readings');
        expect(s.meta.tags).toEqual(expect.arrayContaining(['site:a', 't1']));
        expect(fs.existsSync(c.path)).toBe(false);
      }
      expect(server.stored.get(caps[2]!.id)!.meta.data_type).toBe('DATA_TYPE_BINARY');
      expect(server.stored.get(caps[0]!.id)!.meta.data_type).toBe('DATA_TYPE_TABULAR');
      // Arbitrary files: nested folders kept as relative file_name.
      const named = byName(server);
      expect(named.get('top.txt')!.data.toString()).toBe('hello');
      expect(named.get('top.txt')!.meta.data_type).toBe('DATA_TYPE_FILE');
      expect(named.get('nested/deeper/data.bin')!.data.length).toBe(300_000);
      expect(named.has('nested/young.log')).toBe(false);
      expect(named.has('link.txt')).toBe(false);
      expect(fs.existsSync(a) || fs.existsSync(b)).toBe(false);
      // Untouched: the in-progress capture file, the young file, the symlink target.
      expect(fs.existsSync(prog.path)).toBe(true);
      expect(fs.existsSync(young)).toBe(true);
      expect(fs.existsSync(outside)).toBe(true);
      expect(server.gaps.map((g) => [g.resource_name, g.from_seq, g.to_seq, g.reason, g.part_id])).toEqual([['temp', 10, 12, 'ring_full', 'part-1']]);
      expect(events.map((e) => e.status)).toEqual(Array(5).fill('committed'));

      // Nothing new: nothing is sent again; gaps are not re-reported.
      const uploadsBefore = server.hits.Upload;
      const r2 = await engine.syncNow();
      expect(r2.uploaded + r2.alreadyHad).toBe(0);
      expect(server.hits.Upload).toBe(uploadsBefore);
      expect(server.gaps.length).toBe(1);

      // The young file ages past file_last_modified_millis → uploaded next round.
      now += 11_000;
      const r3 = await engine.syncNow();
      expect(r3.uploaded).toBe(1);
      expect(byName(server).get('nested/young.log')!.data.toString()).toBe('still being written');
      expect(fs.existsSync(young)).toBe(false);
      expect(fs.existsSync(prog.path)).toBe(true);
      for (const s of server.stored.values()) expect(s.stores).toBe(1);
      const st = engine.stats();
      expect(st.uploadedFiles).toBe(6);
      expect(st.pendingFiles).toBe(0);
      expect(st.nextRetryAt).toBeUndefined();
    } finally {
      await engine.stop();
    }
    // Synced and deleted: their state went with them (the state is as large as the backlog).
    const store = new StateStore(stateDir);
    try {
      for (const c of caps) expect(store.fileState(c.path)).toBeUndefined();
      expect([...store.fileEntries()].map((e) => e.file)).toEqual([]);
      expect(store.fileIdKeys()).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a file claimed by the janitor (claimDelete) is not uploaded', async () => {
    const captureDir = path.join(dir, 'capture2');
    const stateDir = path.join(captureDir, '.edgecap');
    const keep = makeCapture(captureDir, 'a', 3);
    const claimed = makeCapture(captureDir, 'b', 3);
    const store = new StateStore(stateDir);
    expect(store.claimDelete(claimed.path, 'run-x', claimed.id, claimed.bytes.length)).toBe(true);
    await store.flushed();
    await store.close();
    const engine = new SyncEngine({
      captureDir,
      stateDir,
      additionalSyncPaths: [],
      fileLastModifiedMs: 10_000,
      intervalMs: 60_000,
      threads: 1,
      partId: 'p',
      tags: [],
      runId: 'run-x',
      ingest: { address: `127.0.0.1:${server.port}`, caFile: tls.certFile, serverName: 'localhost', apiKey: 'k1' },
    });
    try {
      const r = await engine.syncNow();
      expect(r.uploaded).toBe(1);
      expect(server.stored.has(keep.id)).toBe(true);
      expect(server.stored.has(claimed.id)).toBe(false);
      expect(fs.existsSync(claimed.path)).toBe(true); // the janitor's to delete, not ours
    } finally {
      await engine.stop();
    }
  });
});
