import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SyncEngine, type SyncErrorEvent, type SyncOptions } from '@edgecap/sync';
import { StateStore } from '@edgecap/store';
import { DropProxy, TestServer, byName, makeCapture, makeFile, tmpDir, until } from './helpers.js';

let dir: string;
let server: TestServer;
let n = 0;

beforeAll(async () => {
  dir = tmpDir('faults');
  server = new TestServer({ apiKey: 'k' });
  await server.start();
});
afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  server.faults = {};
});

function setup(over: Partial<SyncOptions> = {}): { opts: SyncOptions; captureDir: string; stateDir: string; extra: string; clock: { t: number; now(): number } } {
  const base = path.join(dir, `case${n++}`);
  const captureDir = path.join(base, 'capture');
  const stateDir = path.join(captureDir, '.edgecap');
  const extra = path.join(base, 'extra');
  fs.mkdirSync(extra, { recursive: true });
  const clock = { t: Date.now(), now() { return this.t; } };
  const opts: SyncOptions = {
    captureDir,
    stateDir,
    additionalSyncPaths: [extra],
    fileLastModifiedMs: 10_000,
    intervalMs: 60_000,
    threads: 2,
    partId: 'p',
    tags: [],
    ingest: { address: server.address, insecure: true, apiKey: 'k' },
    chunkBytes: 64 * 1024,
    clock,
    ...over,
  };
  return { opts, captureDir, stateDir, extra, clock };
}

async function drain(engine: SyncEngine, done: () => boolean, clock: { t: number }, rounds = 12): Promise<number> {
  let i = 0;
  for (; i < rounds && !done(); i++) {
    await engine.syncNow();
    clock.t += 2_000; // past any per-file retry time
  }
  return i;
}

describe('faults', () => {
  it('server fails UNAVAILABLE 3 times then recovers: every file committed exactly once, no herd', async () => {
    const { opts, captureDir, clock } = setup();
    const files = Array.from({ length: 5 }, (_, i) => makeCapture(captureDir, `s${i}`, 20));
    server.faults.failUploads = { code: grpc.status.UNAVAILABLE, times: 3 };
    const before = server.hits.Upload;
    const errors: SyncErrorEvent[] = [];
    const engine = new SyncEngine(opts);
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    try {
      const r1 = await engine.syncNow();
      // Two threads ⇒ at most two attempts before the link is marked down; the rest wait for the probe.
      expect(r1.deferred).toBeGreaterThanOrEqual(3);
      expect(server.hits.Upload - before).toBeLessThanOrEqual(2);
      await drain(engine, () => files.every((f) => !fs.existsSync(f.path)), clock);
      for (const f of files) {
        expect(server.stored.get(f.id)?.stores).toBe(1);
        expect(fs.existsSync(f.path)).toBe(false);
      }
      expect(server.hits.Upload - before).toBe(5 + 3);
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(errors[0]!.code).toBe('EDGECAP_ERR_UNAVAILABLE');
      expect(engine.stats().nextRetryAt).toBeUndefined(); // reset on success
    } finally {
      await engine.stop();
    }
  });

  it('an INTERNAL answer (server storage) is retried after the file\'s own backoff, then committed once', async () => {
    const { opts, captureDir, stateDir, clock } = setup({ threads: 1 });
    const f = makeCapture(captureDir, 'x', 5);
    server.faults.failUploads = { code: grpc.status.INTERNAL, times: 2 };
    const engine = new SyncEngine(opts);
    try {
      const r1 = await engine.syncNow();
      expect(r1.deferred).toBe(1);
      const r2 = await engine.syncNow(); // not yet due: nothing sent
      expect(r2.deferred).toBe(1);
      expect(r2.uploaded).toBe(0);
      await drain(engine, () => !fs.existsSync(f.path), clock);
      expect(server.stored.get(f.id)?.stores).toBe(1);
    } finally {
      await engine.stop();
    }
    const store = new StateStore(stateDir);
    expect(store.fileState(f.path)).toBeUndefined(); // synced, deleted, state dropped
    await store.close();
  });

  it('server connection dropped mid-upload: the file is re-sent from the start and committed once', async () => {
    const proxy = new DropProxy(server.port);
    await proxy.start();
    const { opts, captureDir, extra, clock } = setup({ threads: 1, ingest: { address: `127.0.0.1:${proxy.port}`, insecure: true, apiKey: 'k' } });
    const big = Buffer.alloc(1_000_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    makeFile(extra, 'big/blob.bin', big);
    const cap = makeCapture(captureDir, 'c', 100);
    proxy.drop = { afterBytes: 300_000, times: 1 };
    const engine = new SyncEngine(opts);
    try {
      await drain(engine, () => server.stored.has(cap.id) && byName(server).has('big/blob.bin'), clock);
      expect(proxy.drops).toBe(1);
      const blob = [...server.stored.values()].filter((s) => s.meta.file_name === 'big/blob.bin');
      expect(blob.length).toBe(1);
      expect(blob[0]!.stores).toBe(1);
      expect(blob[0]!.data.equals(big)).toBe(true);
      expect(server.stored.get(cap.id)!.stores).toBe(1);
      expect(fs.readdirSync(extra, { recursive: true }).filter((p) => String(p).endsWith('.bin'))).toEqual([]);
    } finally {
      await engine.stop();
      await proxy.close();
    }
  });

  it('INVALID_ARGUMENT and unreadable headers → failed/ with a reason; never deleted, never retried', async () => {
    const { opts, captureDir, stateDir, extra, clock } = setup();
    makeFile(extra, 'dir/bad.bin', 'bad bytes');
    makeFile(extra, 'good.txt', 'fine');
    const broken = path.join(captureDir, 'sensor', 'z', 'Readings', 'broken.capture');
    fs.mkdirSync(path.dirname(broken), { recursive: true });
    fs.writeFileSync(broken, 'not a capture file at all, just text');
    server.faults.reject = (m) => (m.file_name === 'dir/bad.bin' ? 'checksum does not match' : undefined);
    const failedEvents: { path: string; reason: string }[] = [];
    const engine = new SyncEngine(opts);
    engine.on('file-failed', (e: { path: string; reason: string }) => failedEvents.push(e));
    try {
      const r = await engine.syncNow();
      expect(r.failed).toBe(2);
      expect(r.uploaded).toBe(1);
      const failedBad = path.join(stateDir, 'failed', 'additional', path.basename(extra), 'dir', 'bad.bin');
      expect(fs.readFileSync(failedBad, 'utf8')).toBe('bad bytes');
      expect(fs.readFileSync(`${failedBad}.reason`, 'utf8')).toMatch(/INVALID_ARGUMENT.*checksum does not match/);
      expect(fs.existsSync(path.join(extra, 'dir', 'bad.bin'))).toBe(false);
      const failedBroken = path.join(stateDir, 'failed', 'sensor', 'z', 'Readings', 'broken.capture');
      expect(fs.readFileSync(failedBroken, 'utf8')).toMatch(/^not a capture/);
      expect(fs.readFileSync(`${failedBroken}.reason`, 'utf8')).toMatch(/unreadable capture header/);
      expect(failedEvents.length).toBe(2);
      const hits = server.hits.Upload;
      clock.t += 3_600_000;
      const r2 = await engine.syncNow();
      expect(r2.failed + r2.uploaded).toBe(0);
      expect(server.hits.Upload).toBe(hits);
      expect(engine.stats().failedFiles).toBe(2);
    } finally {
      await engine.stop();
    }
    const store = new StateStore(stateDir);
    expect(store.fileState(path.join(extra, 'dir', 'bad.bin'))?.status).toBe('failed');
    await store.close();
  });

  it('UNAUTHENTICATED → sync-error with a clear message, backoff, file kept', async () => {
    const { opts, captureDir } = setup({ ingest: { address: server.address, insecure: true, apiKey: 'wrong' } });
    const f = makeCapture(captureDir, 'u', 3);
    const engine = new SyncEngine(opts);
    const errors: SyncErrorEvent[] = [];
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    try {
      const r = await engine.syncNow();
      expect(r.uploaded).toBe(0);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.code).toBe('EDGECAP_ERR_UNAUTHENTICATED');
      expect(errors[0]!.message).toMatch(/refused our credentials \(UNAUTHENTICATED\).*api_key/);
      expect(errors[0]!.nextRetryAt).toBeGreaterThan(0);
      expect(engine.stats().lastError).toBe(errors[0]!.message);
      expect(fs.existsSync(f.path)).toBe(true);
    } finally {
      await engine.stop();
    }
  });

  it('stop() during an upload aborts it; the next run restarts that file and commits it once', async () => {
    const { opts, captureDir, stateDir } = setup({ threads: 1 });
    const f = makeCapture(captureDir, 'h', 10);
    server.faults.hang = (m) => (m.file_id === f.id ? 'before-commit' : undefined);
    let hung = false;
    server.once('hung', () => (hung = true));
    const engine = new SyncEngine(opts);
    const p = engine.syncNow();
    await until(() => hung, 'server to hang on the upload');
    await engine.stop();
    const r = await p;
    expect(r.deferred).toBe(1);
    expect(fs.existsSync(f.path)).toBe(true);
    const store = new StateStore(stateDir);
    expect(store.fileState(f.path)?.status).toBe('pending');
    await store.close();
    server.faults = {};
    const again = new SyncEngine(opts);
    try {
      const r2 = await again.syncNow();
      expect(r2.uploaded).toBe(1);
      expect(server.stored.get(f.id)?.stores).toBe(1);
      expect(fs.existsSync(f.path)).toBe(false);
    } finally {
      await again.stop();
    }
  });

  it('several addresses: fails over from a dead one', async () => {
    const dead = new TestServer();
    await dead.start();
    const deadPort = dead.port;
    await dead.close();
    // random() = 0 pins the start at the first (dead) address; by default the start is random.
    const { opts, captureDir, clock } = setup({ ingest: { address: [`127.0.0.1:${deadPort}`, server.address], insecure: true, apiKey: 'k' }, random: () => 0 });
    const f = makeCapture(captureDir, 'fo', 3);
    const engine = new SyncEngine(opts);
    const errors: SyncErrorEvent[] = [];
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    try {
      await drain(engine, () => !fs.existsSync(f.path), clock, 4);
      expect(server.stored.get(f.id)?.stores).toBe(1);
      expect(errors.length).toBeGreaterThan(0); // the dead address was tried first
    } finally {
      await engine.stop();
    }
  });

  it('start(): scheduled rounds every intervalMs pick up new files; stop() ends them', async () => {
    const { opts, captureDir } = setup({ intervalMs: 30, clock: undefined });
    const engine = new SyncEngine(opts);
    await engine.start();
    try {
      expect(engine.stats().running).toBe(true);
      const a = makeCapture(captureDir, 'sa', 2);
      await until(() => server.stored.has(a.id), 'first scheduled upload');
      const b = makeCapture(captureDir, 'sb', 2);
      await until(() => server.stored.has(b.id), 'second scheduled upload');
      expect(server.stored.get(a.id)!.stores + server.stored.get(b.id)!.stores).toBe(2);
    } finally {
      await engine.stop();
    }
    expect(engine.stats().running).toBe(false);
  });

  it('refuses plain text to a non-loopback address', () => {
    const { opts } = setup();
    expect(() => new SyncEngine({ ...opts, ingest: { address: '10.1.2.3:50051', insecure: true } })).toThrow(/only allowed for loopback/);
    expect(() => new SyncEngine({ ...opts, ingest: { address: ['127.0.0.1:1', 'example.com:443'], insecure: true } })).toThrow(
      expect.objectContaining({ code: 'EDGECAP_ERR_CONFIG_INVALID' }),
    );
    expect(() => new SyncEngine({ ...opts, ingest: { address: '[::1]:50051', insecure: true } })).not.toThrow();
  });
});
