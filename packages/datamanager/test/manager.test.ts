import fs from 'node:fs';
import module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager } from '@edgecap/datamanager';
import { listFiles, readCaptureFile, type Reading } from '@edgecap/format';
import { startIngestServer, exportReadings } from '@edgecap/ingest';
import { waitFor } from '../../../test/helpers.js';
import { cpuSharesOf } from '../src/status-http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-dm-${p}-`));

/** All readings on disk for one resource/method, in seq order. */
function onDisk(captureDir: string, resource: string, method: string): Reading[] {
  const out: Reading[] = [];
  for (const f of [...listFiles(captureDir, '.capture'), ...listFiles(captureDir, '.prog')]) {
    const s = readCaptureFile(f);
    if (s.header?.name === resource && s.header.method === method) out.push(...s.readings);
  }
  return out.sort((a, b) => a.seq - b.seq);
}

describe('DataManager', () => {
  let server: Awaited<ReturnType<typeof startIngestServer>>;
  const ingestDir = tmp('ingest');
  beforeAll(async () => {
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: ingestDir, insecure: true, apiKeys: ['k'] });
  });
  afterAll(async () => server?.close());

  it('cpu(): CPU time by thread — the writer and each collector thread by resource, within the process figure', async () => {
    const dm = new DataManager({
      capture_dir: tmp('cpu'),
      sync_disabled: true,
      resources: [
        { name: 'busy', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 500 }] },
        { name: 'slow', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 1 }] },
      ],
    });
    expect((await dm.cpu()).capture).toEqual([]); // nothing started: no capture threads
    await dm.start();
    try {
      await waitFor('readings', () => dm.stats().capture.streams.every((s) => s.captured > 0));
      await sleep(300);
      const c = await dm.cpu();
      const sec = (u: { userUs: number; systemUs: number }) => u.userUs + u.systemUs;
      // the Nodes CI runs (the newest 22, 24 and 26) have both APIs; an older 22.x or 24.x reports less, not wrong
      const perThread = typeof (Worker.prototype as { cpuUsage?: unknown }).cpuUsage === 'function';
      expect(c.capture.map((t) => `${t.thread}:${t.resources.join(',')}`).sort()).toEqual(perThread ? ['collector:busy', 'collector:slow', 'writer:'] : []);
      expect(new Set(c.capture.map((t) => t.threadId)).size).toBe(c.capture.length);
      for (const t of c.capture) expect(sec(t)).toBeGreaterThan(0);
      expect(c.main !== undefined).toBe(typeof (process as { threadCpuUsage?: unknown }).threadCpuUsage === 'function');
      // read part by part, the process last: the parts never add up to more than the whole
      expect((c.main ? sec(c.main) : 0) + c.capture.reduce((a, t) => a + sec(t), 0)).toBeLessThanOrEqual(sec(c.process));
    } finally {
      await dm.stop();
    }
    expect((await dm.cpu()).capture).toEqual([]);
  });

  it('cpuSharesOf: % of a core per thread between two reads; a thread restarted in between counts in "other"', () => {
    const u = (us: number) => ({ userUs: us, systemUs: 0 });
    const a = { process: u(1_000_000), main: u(100_000), capture: [{ thread: 'collector' as const, resources: ['a'], threadId: 2, ...u(50_000) }, { thread: 'collector' as const, resources: ['b'], threadId: 3, ...u(80_000) }, { thread: 'writer' as const, resources: [], threadId: 1, ...u(20_000) }] };
    // over 2 s: a +20 ms, b restarted (its new thread has 5 ms), the writer +40 ms, main +10 ms, the process +200 ms
    const b = { process: u(1_200_000), main: u(110_000), capture: [{ thread: 'collector' as const, resources: ['a'], threadId: 2, ...u(70_000) }, { thread: 'collector' as const, resources: ['b'], threadId: 4, ...u(5_000) }, { thread: 'writer' as const, resources: [], threadId: 1, ...u(60_000) }] };
    expect(cpuSharesOf(a, b, 2)).toEqual([
      { thread: 'main thread', pct: 0.5 },
      { thread: 'writer', pct: 2 },
      { thread: 'collector a', pct: 1 },
      { thread: 'other threads (V8, libuv, sync, janitor)', pct: 6.5 },
      { thread: 'whole process', pct: 10 },
    ]);
    expect(cpuSharesOf(a, b, 0)).toEqual([]);
  });

  it('starts and stops capture and sync independently at run time', async () => {
    const dir = tmp('indep');
    const dm = new DataManager({
      capture_dir: dir,
      part_id: 'indep',
      sync_interval_mins: 0.005,
      maximum_capture_file_age_ms: 200,
      ingest: { address: server.address, insecure: true, api_key: 'k' },
      resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }],
    });
    const synced: string[] = [];
    dm.on('file-synced', (e) => synced.push(e.path));
    await dm.start();
    await waitFor('a file synced', () => synced.length > 0);
    await dm.stopSync();
    const syncedBefore = synced.length;
    expect(syncedBefore).toBeGreaterThan(0);
    const capturedA = dm.stats().capture.streams[0]!.captured;
    await waitFor('capture to go on', () => dm.stats().capture.streams[0]!.captured > capturedA + 20);
    // capture goes on without sync, files pile up locally
    expect(dm.stats().capture.streams[0]!.captured).toBeGreaterThan(capturedA);
    expect(synced.length).toBe(syncedBefore);
    await dm.stopCapture();
    expect(dm.stats().capture.running).toBe(false);
    await waitFor('finished files', () => listFiles(dir, '.capture').length > 0);
    // sync without capture drains them
    await dm.startSync();
    const r = await dm.sync();
    expect(r.uploaded + synced.length - syncedBefore).toBeGreaterThan(0);
    await sleep(300);
    expect(listFiles(dir, '.capture')).toEqual([]);
    await dm.startCapture();
    await sleep(300);
    expect(dm.stats().capture.running).toBe(true);
    await dm.stop();
    const seqs: number[] = [];
    for await (const x of exportReadings(ingestDir)) if (x.part_id === 'indep') seqs.push(x.seq);
    const local = onDisk(dir, 'temp', 'Readings').map((x) => x.seq);
    // one stream across capture restarts: seq continues, nothing twice at the ingest, nothing
    // missing. A file the ingest committed just as stop() aborted its round may still be on disk
    // too: the next start answers it ALREADY_HAVE and deletes it, so it counts once.
    expect(seqs.filter((x, i) => seqs.indexOf(x) !== i)).toEqual([]);
    const all = [...new Set([...seqs, ...local])].sort((a, b) => a - b);
    expect(all).toEqual([...Array(all.length).keys()]);
  });

  it('reconfigure changing one resource keeps the other streams gap-free', async () => {
    const dir = tmp('reconf');
    const base = {
      capture_dir: dir,
      sync_disabled: true,
      resources: [
        { name: 'a', model: 'sim:sensor' as const, capture_methods: [{ method: 'Readings', capture_frequency_hz: 200 }] },
        { name: 'b', model: 'sim:sensor' as const, capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] },
      ],
    };
    const dm = new DataManager(base);
    await dm.start();
    await sleep(500);
    await dm.reconfigure({ ...base, resources: [base.resources[0]!, { ...base.resources[1]!, capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }] });
    await sleep(500);
    const stats = dm.stats().capture.streams;
    await dm.stop();
    const a = onDisk(dir, 'a', 'Readings').map((r) => r.seq);
    expect(a.length).toBeGreaterThan(100);
    expect(a).toEqual([...Array(a.length).keys()]);
    const b = onDisk(dir, 'b', 'Readings').map((r) => r.seq);
    expect(b).toEqual([...Array(b.length).keys()]); // restarted collector continues its seq
    const sa = stats.find((s) => s.resource === 'a')!;
    expect(sa.dropped).toBe(0);
  });

  it('push(): readings arrive on disk in order, with their data', async () => {
    const dir = tmp('push');
    const dm = new DataManager({ capture_dir: dir, sync_disabled: true, resources: [{ name: 'serial', kind: 'sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 0 }] }] });
    await dm.start();
    for (let i = 0; i < 5000; i++) expect(dm.push('serial', 'Readings', { i, line: `line ${i}` })).toBe(true);
    await dm.stop();
    const got = onDisk(dir, 'serial', 'Readings');
    expect(got.map((r) => (r.data as { i: number }).i)).toEqual([...Array(5000).keys()]);
    expect(got.map((r) => r.seq)).toEqual([...Array(5000).keys()]);
  });

  it('selective sync: scheduled sync runs only while the syncer resource says should_sync', async () => {
    const dir = tmp('selective');
    const mod = path.join(dir, '..', `gate-${path.basename(dir)}.js`);
    // The gate's answer comes from a file the test flips, read by the resource in its thread.
    const flag = `${mod}.flag`;
    fs.writeFileSync(flag, 'no');
    fs.writeFileSync(mod, `import fs from 'node:fs';\nexport default { kind: 'sensor', Readings: () => ({ should_sync: fs.readFileSync(${JSON.stringify(flag)}, 'utf8') === 'yes' }) };\n`);
    const dm = new DataManager({
      capture_dir: dir,
      part_id: 'selective',
      sync_interval_mins: 0.003,
      maximum_capture_file_age_ms: 150,
      selective_syncer_name: 'gate',
      ingest: { address: server.address, insecure: true, api_key: 'k' },
      resources: [{ name: 'gate', module: mod, capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] }],
    });
    const synced: string[] = [];
    dm.on('file-synced', (e) => synced.push(e.path));
    await dm.start();
    await waitFor('finished files', () => listFiles(dir, '.capture').length >= 3);
    await sleep(600); // several scheduled rounds with the gate closed
    expect(synced).toEqual([]);
    fs.writeFileSync(flag, 'yes');
    await waitFor('a file synced', () => synced.length > 0);
    await dm.stop();
  });

  it('sync() runs in line with stop(): one asked for during or after stop is refused, the store is not reopened', async () => {
    const dir = tmp('sync-stop');
    const dm = new DataManager({
      capture_dir: dir,
      part_id: 'sync-stop',
      sync_disabled: true,
      ingest: { address: server.address, insecure: true, api_key: 'k' },
      resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }],
    });
    await dm.start();
    await sleep(300);
    const during = dm.sync(); // queued before stop: runs, then stop
    const stopping = dm.stop();
    const after = dm.sync(); // queued behind stop: refused
    await expect(during).resolves.toMatchObject({ uploaded: expect.any(Number) });
    await stopping;
    await expect(after).rejects.toMatchObject({ code: 'EDGECAP_ERR_STATE' });
    await expect(dm.sync()).rejects.toMatchObject({ code: 'EDGECAP_ERR_STATE' });
    // nothing holds the state dir open: another manager can take it at once
    const again = new DataManager({ capture_dir: dir, part_id: 'sync-stop', sync_disabled: true, resources: [] });
    await again.start();
    await again.stop();
  });

  it('an invalid config throws ConfigError listing every bad field', () => {
    // @ts-expect-error -- capture_dir is not a string: on purpose (a config from JSON is not typed)
    expect(() => new DataManager({ capture_dir: 1, resources: [{ name: 'x', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: -1 }] }] })).toThrow(
      /capture_dir[\s\S]*resources\[0\]\.capture_methods\[0\]\.capture_frequency_hz/,
    );
  });
});

describe('DataManager lifecycle guards', () => {
  it('one capturing process per capture dir; a sync-only manager leaves the live writer’s files alone', async () => {
    const dir = tmp('lock');
    const cfg = { capture_dir: dir, sync_disabled: true, resources: [{ name: 't', model: 'sim:sensor' as const, capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }] };
    const a = new DataManager(cfg);
    await a.start();
    await sleep(200);
    const b = new DataManager(cfg);
    await expect(b.start()).rejects.toThrow(/being captured into by another edgecap process/);
    const progBefore = listFiles(dir, '.prog');
    expect(progBefore.length).toBe(1);
    const syncOnly = new DataManager({ ...cfg, capture_disabled: true });
    await syncOnly.start();
    expect(listFiles(dir, '.prog')).toEqual(progBefore); // not finalized under the live writer
    await syncOnly.stop();
    await a.stop();
    // the lock is released on stop: the next one may capture
    await b.start();
    await b.stop();
    const seqs = onDisk(dir, 't', 'Readings').map((r) => r.seq);
    expect(seqs).toEqual([...Array(seqs.length).keys()]);
  });

  it('a failed start leaves nothing running and can be retried', async () => {
    const dir = tmp('failstart');
    const mod = path.join(dir, '..', `broken-${path.basename(dir)}.js`);
    fs.writeFileSync(mod, 'export default { kind: "sensor" };\n'); // no Readings method
    const dm = new DataManager({ capture_dir: dir, sync_disabled: true, resources: [{ name: 'b', module: mod, capture_methods: [{ method: 'Readings', capture_frequency_hz: 10 }] }] });
    await expect(dm.start()).rejects.toThrow(/Readings/);
    expect(dm.stats().capture.running).toBe(false);
    await expect(dm.start()).rejects.toThrow(/Readings/); // state went back to stopped: retry is allowed
  });

  it('threads compile their bundles through a code cache in the state dir, reused by the next start; memory mode writes none', async (ctx) => {
    if (typeof (module as { enableCompileCache?: unknown }).enableCompileCache !== 'function') ctx.skip(); // Node < 22.1: no compile cache
    const dir = tmp('compile-cache');
    const cfg = { capture_dir: dir, sync_disabled: true, resources: [{ name: 't', model: 'sim:sensor' as const, capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] }] };
    const entries = (): string[] => {
      const root = path.join(dir, '.edgecap', 'compile-cache');
      return fs.existsSync(root) ? (fs.readdirSync(root, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(root, f)).isFile()).sort() : [];
    };
    for (let run = 0; run < 2; run++) {
      const dm = new DataManager(cfg);
      await dm.start();
      await waitFor('a reading', () => (dm.stats().capture.streams[0]?.captured ?? 0) > 0);
      await dm.stop();
      if (run === 0) expect(entries().length).toBeGreaterThan(0); // the collector and writer bundles, cached at their exit
    }
    const first = entries();
    const dm = new DataManager(cfg);
    await dm.start();
    await dm.stop();
    expect(entries()).toEqual(first); // the same bundles: read from the cache, nothing new compiled
    const memDir = tmp('compile-cache-mem');
    const mem = new DataManager({ ...cfg, capture_dir: memDir, storage: 'memory' as const });
    await mem.start();
    await mem.stop();
    expect(fs.existsSync(path.join(memDir, '.edgecap', 'compile-cache'))).toBe(false);
  });

  it('push to a polled method is refused (one producer per stream)', async () => {
    const dir = tmp('pushpoll');
    const dm = new DataManager({ capture_dir: dir, sync_disabled: true, resources: [{ name: 't', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 10 }] }] });
    await dm.start();
    expect(() => dm.push('t', 'Readings', { x: 1 })).toThrow(/polled at 10 Hz/);
    await dm.stop();
  });

  it('overlapping lifecycle calls run one at a time', async () => {
    const dir = tmp('overlap');
    const base = { capture_dir: dir, sync_disabled: true, resources: [{ name: 't', model: 'sim:sensor' as const, capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }] };
    const dm = new DataManager(base);
    await dm.start();
    const changed = { ...base, flush_interval_ms: 50 }; // engine-level change: capture restarts
    await Promise.all([dm.reconfigure(changed), dm.reconfigure({ ...changed, flush_interval_ms: 60 }), dm.stopCapture(), dm.startCapture()]);
    await dm.stop();
    const seqs = onDisk(dir, 't', 'Readings').map((r) => r.seq);
    expect(seqs).toEqual([...Array(seqs.length).keys()]); // no duplicate seq from two engines
  });
});

describe('DataManager with a stuck resource', () => {
  it('stop() returns even when a resource method never does, and flushed readings are kept', async () => {
    const dir = tmp('stuck');
    const mod = path.join(dir, '..', `stuck-${path.basename(dir)}.js`);
    fs.writeFileSync(mod, 'let n = 0;\nexport default { kind: "sensor", Readings: () => (n++ < 20 ? { n } : new Promise(() => {})) };\n');
    const dm = new DataManager({ capture_dir: dir, sync_disabled: true, resources: [{ name: 's', module: mod, capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }] });
    await dm.start();
    await sleep(500);
    await dm.stop(); // the collector is terminated after its stop timeout
    expect(onDisk(dir, 's', 'Readings').map((r) => r.seq)).toEqual([...Array(20).keys()]);
  });
});
