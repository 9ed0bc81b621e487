/**
 * Slow links and the bandwidth cap (issue #16), end to end: the real SyncEngine (piscina
 * threads, gRPC over TLS) uploads capture files made with @edgecap/format to a real ingest
 * server (files storage) through a throttling TCP proxy (test/proxy.ts).
 *
 * Scaled down so the suite stays short: the link is 32 KiB/s as in the issue, the file 448 KiB
 * instead of 8 MiB, keepalive pings every second with a 4 s timeout instead of 30 s / 10 s, and a
 * 4 s stall timeout instead of 60 s. Unbounded, the whole file would sit queued ahead of the link
 * (~14 s), every keepalive ping behind it, and grpc-js would drop the connection 5 s into every
 * attempt (what the issue saw every 40 s). No assertion is on speed: a loaded host only makes
 * things slower, which none of the checks mind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, makeDevCert, startIngestServer, type IngestServer } from '@edgecap/ingest';
import { FrameEncoder, encodeFileStart } from '@edgecap/format';
import { SyncEngine, type FileSyncedEvent, type SyncErrorEvent, type SyncOptions } from '@edgecap/sync';
import { tmpdir, waitFor } from './helpers.js';
import { FaultyProxy } from './proxy.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const LINK_BYTES_PER_SECOND = 32 * 1024;
const KEEPALIVE_MS = 1000;
const KEEPALIVE_TIMEOUT_MS = 4000;
const STALL_TIMEOUT_MS = 4000;
const API_KEY = 'slow-link-key';

let root: string;
let certs: { certFile: string; keyFile: string; caFile: string };

beforeAll(() => {
  root = tmpdir('slow-link');
  certs = makeDevCert(path.join(root, 'certs'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** One finished capture file of about `bytes` bytes (incompressible readings); returns its reading count. */
function writeCapture(captureDir: string, name: string, bytes: number, firstSeq: number): number {
  const dir = path.join(captureDir, 'sensor', 'link', 'Readings');
  fs.mkdirSync(dir, { recursive: true });
  const { bytes: head, header } = encodeFileStart({ kind: 'sensor', name: 'link', method: 'Readings', type: 'tabular', tags: [], start_us: 1_700_000_000_000_000 + firstSeq });
  const enc = new FrameEncoder();
  const buf = new Uint8Array(1 << 16);
  const parts: Buffer[] = [Buffer.from(head)];
  let size = head.length;
  let n = 0;
  while (size < bytes) {
    const seq = firstSeq + n++;
    const len = enc.reading(buf, 0, seq, 1_700_000_000_000_000 + seq, 1_700_000_000_000_100 + seq, { v: seq, pad: Buffer.from(crypto.getRandomValues(new Uint8Array(600))).toString('base64') });
    parts.push(Buffer.from(buf.subarray(0, len)));
    size += len;
  }
  fs.writeFileSync(path.join(dir, `${name}-${header.id}.capture`), Buffer.concat(parts));
  return n;
}

const remaining = (captureDir: string): number => (fs.readdirSync(captureDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.capture')).length;

interface Rig {
  dir: string;
  captureDir: string;
  ingest: IngestServer;
  proxy: FaultyProxy;
  engine: SyncEngine;
  synced: FileSyncedEvent[];
  errors: SyncErrorEvent[];
}

async function rig(name: string, throttle: ConstructorParameters<typeof FaultyProxy>[2], extra: Partial<SyncOptions> = {}): Promise<Rig> {
  const dir = path.join(root, name);
  const captureDir = path.join(dir, 'capture');
  fs.mkdirSync(captureDir, { recursive: true });
  const ingest = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'ingest'), tls: certs, apiKeys: [API_KEY] });
  const proxy = new FaultyProxy(ingest.port, '127.0.0.1', throttle);
  const port = await proxy.listen();
  const engine = new SyncEngine({
    captureDir,
    stateDir: path.join(dir, 'state'),
    additionalSyncPaths: [],
    fileLastModifiedMs: 0,
    intervalMs: 3_600_000,
    threads: 1,
    partId: 'slow-edge',
    tags: [],
    ingest: { address: `localhost:${port}`, caFile: certs.caFile, apiKey: API_KEY, keepaliveMs: KEEPALIVE_MS, keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS },
    stallTimeoutMs: STALL_TIMEOUT_MS,
    backoff: { initialMs: 50, maxMs: 500 },
    probeIntervalMs: 200,
    random: () => 0,
    ...extra,
  });
  const synced: FileSyncedEvent[] = [];
  const errors: SyncErrorEvent[] = [];
  engine.on('file-synced', (e: FileSyncedEvent) => synced.push(e));
  engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
  return { dir, captureDir, ingest, proxy, engine, synced, errors };
}

async function teardown(r: Rig): Promise<void> {
  await r.engine.stop();
  await r.proxy.close();
  await r.ingest.close();
}

/** Sync until the capture dir is empty (or give up after `ms`). */
async function drain(r: Rig, ms: number): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (remaining(r.captureDir) > 0) {
    if (Date.now() > giveUpAt) throw new Error(`${remaining(r.captureDir)} capture files left; errors: ${r.errors.map((e) => e.message).join(' | ')}`);
    await r.engine.syncNow();
    if (remaining(r.captureDir) > 0) await new Promise((res) => setTimeout(res, 100));
  }
}

/** Every reading the ingest holds, as seq numbers. */
async function storedSeqs(r: Rig): Promise<number[]> {
  const out: number[] = [];
  for await (const x of exportReadings(path.join(r.dir, 'ingest'))) out.push(x.seq);
  return out.sort((a, b) => a - b);
}

describe('slow link', () => {
  it('a file that takes many keepalive intervals and stall timeouts over 32 KiB/s commits once, on one connection', async () => {
    const r = await rig('slow', LINK_BYTES_PER_SECOND);
    try {
      const readings = writeCapture(r.captureDir, 'big', 448 * 1024, 0);
      const t0 = Date.now();
      await drain(r, 120_000);
      const elapsed = Date.now() - t0;
      // The premise: the transfer outlasted several keepalive rounds (ping + timeout) and stall
      // timeouts, so a queued ping or a fixed deadline would have cut it.
      expect(elapsed).toBeGreaterThan(2 * (KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS));
      expect(elapsed).toBeGreaterThan(2 * STALL_TIMEOUT_MS);
      // Never cut (a keepalive drop fails the upload with UNAVAILABLE: a sync error), one commit.
      expect(r.errors.map((e) => e.message)).toEqual([]);
      expect(r.synced.map((s) => s.status)).toEqual(['committed']);
      expect(await storedSeqs(r)).toEqual(Array.from({ length: readings }, (_, i) => i));
    } finally {
      await teardown(r);
    }
  }, 150_000);

  it('a stalled link is cut after the stall timeout; the file is retried and arrives once when the link resumes', async () => {
    const r = await rig('stall', 2 * LINK_BYTES_PER_SECOND);
    try {
      const readings = writeCapture(r.captureDir, 'stalled', 384 * 1024, 0);
      const first = r.engine.syncNow();
      // Stop the link mid-upload: connections stay open, nothing moves either way.
      await waitFor('the upload to be under way', () => r.proxy.forwardedUp > 96 * 1024, 60_000, 10);
      r.proxy.pause();
      const cutAt = Date.now();
      await waitFor('the stalled upload to be cut', () => r.errors.some((e) => /stalled/.test(e.message)), 60_000, 50);
      // Not before the stall timeout (the watchdog, not something else, cut it).
      expect(Date.now() - cutAt).toBeGreaterThanOrEqual(STALL_TIMEOUT_MS - 1000);
      expect(remaining(r.captureDir)).toBe(1);
      await first;
      r.proxy.resume();
      await drain(r, 120_000);
      expect(r.synced.map((s) => s.status)).toEqual(['committed']);
      expect(await storedSeqs(r)).toEqual(Array.from({ length: readings }, (_, i) => i));
    } finally {
      r.proxy.resume();
      await teardown(r);
    }
  }, 200_000);
});

describe('bandwidth cap', () => {
  it('sync_max_bytes_per_second holds over all threads: the link carries at most the cap + 10 %', async () => {
    const CAP = 96 * 1024;
    // An unthrottled link; two threads with several uploads each, so one bucket per thread
    // (or none) would show as twice the cap or more.
    const r = await rig('cap', 0, { maxBytesPerSecond: CAP, threads: 2 });
    try {
      let readings = 0;
      for (let f = 0; f < 8; f++) readings += writeCapture(r.captureDir, `cap${f}`, 96 * 1024, readings);
      const before = r.proxy.forwardedUp;
      const t0 = performance.now();
      await drain(r, 120_000);
      const seconds = (performance.now() - t0) / 1000;
      // Everything the link carried (TLS, HTTP/2, probes included) over the whole transfer.
      const rate = (r.proxy.forwardedUp - before) / seconds;
      expect(rate).toBeLessThanOrEqual(CAP * 1.1);
      expect(r.synced.filter((s) => s.status === 'committed')).toHaveLength(8);
      expect(await storedSeqs(r)).toEqual(Array.from({ length: readings }, (_, i) => i));
    } finally {
      await teardown(r);
    }
  }, 150_000);
});
