/**
 * Issue #13: what a failed upload means for the file.
 *  - failed/ only for a verdict about the bytes (INVALID_ARGUMENT, FAILED_PRECONDITION,
 *    ALREADY_EXISTS); server storage errors, overload, transport and auth wait and retry;
 *  - failed/ is visible and can be retried (retryFailed(), `edgecap sync --retry-failed`);
 *  - while offline a Health probe at a short cadence ends the outage, not the long backoff;
 *  - an arbitrary file that changed after it was read is kept, and its new content sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FileMetadata__Output } from '@edgecap/proto';
import { SyncEngine, type FileFailedEvent, type SyncErrorEvent, type SyncOptions } from '@edgecap/sync';
import { StateStore } from '@edgecap/store';
import { TestServer, byName, makeCapture, makeFile, tmpDir, until } from './helpers.js';

let dir: string;
let server: TestServer;
let n = 0;

beforeAll(async () => {
  dir = tmpDir('outcomes');
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

type Clock = { t: number; now(): number };

function setup(over: Partial<SyncOptions> = {}): { opts: SyncOptions; captureDir: string; stateDir: string; extra: string; clock: Clock } {
  const base = path.join(dir, `case${n++}`);
  const captureDir = path.join(base, 'capture');
  const stateDir = path.join(captureDir, '.edgecap');
  const extra = path.join(base, 'extra');
  fs.mkdirSync(extra, { recursive: true });
  const clock: Clock = { t: Date.now(), now() { return this.t; } };
  const opts: SyncOptions = {
    captureDir,
    stateDir,
    additionalSyncPaths: [extra],
    fileLastModifiedMs: 10_000,
    intervalMs: 60_000,
    threads: 1,
    partId: 'p',
    tags: [],
    ingest: { address: server.address, insecure: true, apiKey: 'k' },
    chunkBytes: 64 * 1024,
    clock,
    ...over,
  };
  return { opts, captureDir, stateDir, extra, clock };
}

/** Every regular file under `root` (recursively), '/'-separated, sorted. */
function filesUnder(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true }) as string[])
    .filter((p) => fs.statSync(path.join(root, p)).isFile())
    .map((p) => p.split(path.sep).join('/'))
    .sort();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('server-side faults wait and retry; they never move a file to failed/', () => {
  it.each([
    ['INTERNAL', grpc.status.INTERNAL],
    ['RESOURCE_EXHAUSTED', grpc.status.RESOURCE_EXHAUSTED],
  ])('%s answered 24 times, then OK: nothing in failed/, every file uploaded exactly once', async (name, code) => {
    const { opts, captureDir, stateDir, extra, clock } = setup();
    const cap = makeCapture(captureDir, `srv-${name}`, 5);
    const file = makeFile(extra, 'a/data.bin', `payload ${name}`);
    server.faults.failUploads = { code, times: 24 };
    const errors: SyncErrorEvent[] = [];
    const failed: FileFailedEvent[] = [];
    const engine = new SyncEngine(opts);
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    engine.on('file-failed', (e: FileFailedEvent) => failed.push(e));
    try {
      let sawError = false;
      for (let i = 0; i < 100 && (fs.existsSync(cap.path) || fs.existsSync(file)); i++) {
        await engine.syncNow();
        if (engine.stats().lastError) sawError = true;
        clock.t += 2 * 3_600_000; // past any backoff (capped at 1 h)
      }
      expect(server.faults.failUploads.times).toBe(0); // all 24 faults were answered
      expect(failed).toEqual([]);
      expect(filesUnder(path.join(stateDir, 'failed'))).toEqual([]);
      expect(engine.stats().failedFiles).toBe(0);
      expect(server.stored.get(cap.id)?.stores).toBe(1);
      expect(server.stored.get(cap.id)?.alreadyHave).toBe(0);
      const blob = byName(server).get('a/data.bin');
      expect(blob?.data.toString()).toBe(`payload ${name}`);
      expect([...server.stored.values()].filter((s) => s.meta.file_name === 'a/data.bin' && s.data.toString() === `payload ${name}`)).toHaveLength(1);
      expect(fs.existsSync(cap.path) || fs.existsSync(file)).toBe(false);
      // Surfaced as a sync error (event and lastError), with a stable code and the status named.
      expect(sawError).toBe(true);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]!.code).toBe('EDGECAP_ERR_UNAVAILABLE');
      expect(errors[0]!.message).toContain(name);
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['UNKNOWN', grpc.status.UNKNOWN],
    ['ABORTED', grpc.status.ABORTED],
    ['PERMISSION_DENIED', grpc.status.PERMISSION_DENIED],
  ])('%s answered 12 times (more than the per-file attempts): the file waits, then goes out', async (_name, code) => {
    const { opts, captureDir, stateDir, clock } = setup();
    const cap = makeCapture(captureDir, `w${code}`, 3);
    server.faults.failUploads = { code, times: 12 };
    const engine = new SyncEngine(opts);
    try {
      for (let i = 0; i < 60 && fs.existsSync(cap.path); i++) {
        await engine.syncNow();
        clock.t += 2 * 3_600_000;
      }
      expect(server.faults.failUploads.times).toBe(0);
      expect(filesUnder(path.join(stateDir, 'failed'))).toEqual([]);
      expect(server.stored.get(cap.id)?.stores).toBe(1);
    } finally {
      await engine.stop();
    }
  });
});

describe('verdicts about the bytes go to failed/, visibly, and can be retried', () => {
  it('ALREADY_EXISTS (this id committed with other content) → failed/ at once with both digests; nothing deleted or overwritten', async () => {
    const { opts, captureDir, stateDir } = setup();
    const cap = makeCapture(captureDir, 'dup', 5);
    server.stored.set(cap.id, { meta: { file_id: cap.id, file_name: 'elsewhere' } as FileMetadata__Output, data: Buffer.from('other content'), stores: 1, alreadyHave: 0 });
    const failed: FileFailedEvent[] = [];
    const engine = new SyncEngine(opts);
    engine.on('file-failed', (e: FileFailedEvent) => failed.push(e));
    try {
      const r = await engine.syncNow();
      expect(r.failed).toBe(1);
      expect(r.uploaded + r.alreadyHad).toBe(0);
      const dest = path.join(stateDir, 'failed', ...path.relative(captureDir, cap.path).split(path.sep));
      expect(fs.readFileSync(dest).equals(cap.bytes)).toBe(true);
      expect(fs.existsSync(cap.path)).toBe(false);
      const reason = fs.readFileSync(`${dest}.reason`, 'utf8');
      expect(reason).toMatch(/ALREADY_EXISTS.*sha256 [0-9a-f]{64}.*sha256 [0-9a-f]{64}/);
      expect(reason).toContain(`source: ${cap.path}`);
      expect(failed).toHaveLength(1);
      expect(failed[0]!.path).toBe(cap.path);
      expect(failed[0]!.reason).toMatch(/ALREADY_EXISTS/);
      expect(server.stored.get(cap.id)!.data.toString()).toBe('other content');
      expect(engine.stats()).toMatchObject({ failedFiles: 1, failedOnDisk: 1 });
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['INVALID_ARGUMENT', grpc.status.INVALID_ARGUMENT],
    ['FAILED_PRECONDITION', grpc.status.FAILED_PRECONDITION],
  ])('%s → failed/ with the reason and a file-failed event', async (name, code) => {
    const { opts, captureDir, stateDir } = setup();
    const cap = makeCapture(captureDir, `v${code}`, 3);
    server.faults.failUploads = { code, times: 1 };
    const failed: FileFailedEvent[] = [];
    const engine = new SyncEngine(opts);
    engine.on('file-failed', (e: FileFailedEvent) => failed.push(e));
    try {
      const r = await engine.syncNow();
      expect(r.failed).toBe(1);
      const dest = path.join(stateDir, 'failed', ...path.relative(captureDir, cap.path).split(path.sep));
      expect(fs.readFileSync(`${dest}.reason`, 'utf8')).toMatch(new RegExp(`${name}.*told to fail`));
      expect(failed.map((e) => e.path)).toEqual([cap.path]);
      expect(failed[0]!.reason).toContain(name);
    } finally {
      await engine.stop();
    }
  });

  it('retryFailed() (edgecap sync --retry-failed) moves failed files back; they upload and failed/ is empty', async () => {
    const { opts, captureDir, stateDir, extra } = setup();
    const cap = makeCapture(captureDir, 'rf', 5);
    const file = makeFile(extra, 'sub/r.bin', 'retry me');
    server.faults.reject = () => 'refused for now';
    const first = new SyncEngine(opts);
    try {
      const r = await first.syncNow();
      expect(r.failed).toBe(2);
      expect(first.stats().failedOnDisk).toBe(2);
      // Retried failed files stay in failed/ on later rounds (nothing retried by itself).
      const r2 = await first.syncNow();
      expect(r2.failed + r2.uploaded).toBe(0);
    } finally {
      await first.stop();
    }
    expect(fs.existsSync(cap.path) || fs.existsSync(file)).toBe(false);
    server.faults = {};
    // As the CLI does it: a new engine (a new process) over the same state.
    const again = new SyncEngine(opts);
    try {
      expect(again.stats().failedOnDisk).toBe(2);
      const moved = await again.retryFailed();
      expect(moved.moved).toBe(2);
      expect(moved.errors).toEqual([]);
      expect(fs.readFileSync(cap.path).equals(cap.bytes)).toBe(true);
      expect(fs.readFileSync(file, 'utf8')).toBe('retry me');
      expect(filesUnder(path.join(stateDir, 'failed'))).toEqual([]);
      expect(again.stats().failedOnDisk).toBe(0);
      const r = await again.syncNow();
      expect(r.uploaded).toBe(2);
      expect(server.stored.get(cap.id)?.stores).toBe(1);
      expect(byName(server).get('sub/r.bin')?.data.toString()).toBe('retry me');
      expect(fs.existsSync(cap.path) || fs.existsSync(file)).toBe(false);
    } finally {
      await again.stop();
    }
    const store = new StateStore(stateDir);
    expect(store.fileState(cap.path)).toBeUndefined();
    await store.close();
  });
});

describe('outage: a Health probe at a short cadence ends it, not the backoff', () => {
  it('server gone long enough for a 60 s backoff: the first upload comes within probe interval + 2 s of its return; pending counts are the real backlog meanwhile', async () => {
    const own = new TestServer();
    await own.start();
    const probeIntervalMs = 300;
    const { opts, captureDir } = setup({
      clock: undefined,
      intervalMs: 100,
      probeIntervalMs,
      // A fake long backoff: already the first failure waits a minute.
      backoff: { initialMs: 60_000 },
      ingest: { address: own.address, insecure: true },
    });
    const engine = new SyncEngine(opts);
    const errors: SyncErrorEvent[] = [];
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    let firstCommitAt = 0;
    own.on('committed', () => (firstCommitAt ||= Date.now()));
    await engine.start();
    try {
      const before = makeCapture(captureDir, 'before', 3);
      await until(() => own.stored.has(before.id), 'the upload before the outage');
      await own.close();
      firstCommitAt = 0;
      const during = Array.from({ length: 4 }, (_, i) => makeCapture(captureDir, `during${i}`, 20 + i * 10));
      await until(() => errors.length > 0, 'the outage to be noticed');
      expect(engine.stats().nextRetryAt! - Date.now()).toBeGreaterThan(30_000);
      const later = makeCapture(captureDir, 'later', 7);
      // Probes run at their cadence while the backoff waits: the counts follow the backlog.
      await sleep(4 * probeIntervalMs);
      const backlog = [...during, later];
      expect(engine.stats().pendingFiles).toBe(backlog.length);
      expect(engine.stats().pendingBytes).toBe(backlog.reduce((s, f) => s + f.bytes.length, 0));
      expect(engine.stats().nextRetryAt! - Date.now()).toBeGreaterThan(30_000); // probes do not touch the backoff
      await own.start(); // back, on the same port
      const back = Date.now();
      await until(() => firstCommitAt > 0, 'the first upload after the outage', 30_000);
      expect(firstCommitAt - back).toBeLessThan(probeIntervalMs + 2_000);
      await until(() => backlog.every((f) => own.stored.has(f.id)), 'the backlog', 10_000);
      for (const f of backlog) expect(own.stored.get(f.id)!.stores).toBe(1);
      await until(() => engine.stats().pendingFiles === 0, 'pending to reach 0', 5_000);
      expect(engine.stats().pendingBytes).toBe(0);
      expect(engine.stats().nextRetryAt).toBeUndefined();
    } finally {
      await engine.stop();
      await own.close();
    }
  });
});

describe('pending counts are the real backlog while a round is stuck', () => {
  it('an upload that hangs (a link dead mid-round): pendingFiles/pendingBytes count every waiting file, not the walk so far', async () => {
    const { opts, captureDir } = setup({ probeIntervalMs: 200 });
    const files = Array.from({ length: 30 }, (_, i) => makeCapture(captureDir, `stuck${String(i).padStart(2, '0')}`, 5 + i));
    server.faults.hang = () => 'before-commit';
    let hung = false;
    server.once('hung', () => (hung = true));
    const engine = new SyncEngine(opts);
    const round = engine.syncNow();
    try {
      await until(() => hung, 'the server to hang on the first upload');
      await sleep(3 * 200);
      expect(engine.stats().pendingFiles).toBe(files.length);
      expect(engine.stats().pendingBytes).toBe(files.reduce((s, f) => s + f.bytes.length, 0));
    } finally {
      await engine.stop();
      await round;
    }
  });
});

describe('additional_sync_paths: a file that changed after it was read is kept', () => {
  it.each(['append', 'replace (same size and mtime, new inode)'] as const)('%s during the upload: kept, and its new content arrives under a new file id', async (how) => {
    const { opts, extra, clock } = setup();
    const f = makeFile(extra, 'log/app.log', 'line 1\n');
    const mtime = fs.statSync(f).mtime;
    const newContent = how === 'append' ? 'line 1\nline 2\n' : 'LINE 1\n';
    let changed = false;
    const onStart = (m: FileMetadata__Output): void => {
      if (m.file_name !== 'log/app.log' || changed) return;
      changed = true;
      // The worker has read and hashed the file; the ack is not sent yet.
      if (how === 'append') fs.appendFileSync(f, 'line 2\n');
      else {
        fs.writeFileSync(`${f}.tmp`, newContent);
        fs.utimesSync(`${f}.tmp`, mtime, mtime);
        fs.renameSync(`${f}.tmp`, f);
      }
    };
    server.on('upload-start', onStart);
    const engine = new SyncEngine(opts);
    try {
      const r1 = await engine.syncNow();
      expect(changed).toBe(true);
      expect(r1.uploaded).toBe(1);
      expect(fs.readFileSync(f, 'utf8')).toBe(newContent); // not deleted
      clock.t = Date.now() + 60_000; // old enough to sync again
      const r2 = await engine.syncNow();
      expect(r2.uploaded).toBe(1);
      const copies = [...server.stored.values()].filter((s) => s.meta.file_name === 'log/app.log' && s.meta.source === extra);
      expect(copies.map((c) => c.data.toString()).sort()).toEqual(['line 1\n', newContent].sort());
      expect(new Set(copies.map((c) => c.meta.file_id)).size).toBe(2);
      expect(fs.existsSync(f)).toBe(false); // the second upload matched the file: deleted
    } finally {
      server.off('upload-start', onStart);
      await engine.stop();
    }
  });
});
