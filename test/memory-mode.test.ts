/**
 * storage: "memory" (issue 17) against a real ingest over TLS on 127.0.0.1: nothing is written
 * under capture_dir, every reading arrives exactly once, a full budget drops files explained as
 * memory_full gaps, and a SIGKILLed `edgecap run` leaves no unexplained gap after its restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager } from '@edgecap/datamanager';
import { exportReadings, gapReport, makeDevCert, startIngestServer } from '@edgecap/ingest';
import { freePort, runCli, sigkill, tmpdir, waitFor, writeJson } from './helpers.js';

type Ingest = Awaited<ReturnType<typeof startIngestServer>>;

async function seqsByStream(dataDir: string): Promise<Map<string, number[]>> {
  const m = new Map<string, number[]>();
  for await (const r of exportReadings(dataDir)) {
    const k = `${r.resource}/${r.method}`;
    const a = m.get(k) ?? [];
    a.push(r.seq);
    m.set(k, a);
  }
  return m;
}

/** Every file and folder under `dir` (empty when it does not exist). */
function everything(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String);
}

describe('memory mode', () => {
  const root = tmpdir('memory');
  let certs: ReturnType<typeof makeDevCert>;
  beforeAll(() => {
    certs = makeDevCert(path.join(root, 'certs'));
  });
  afterAll(() => {
    if (fs.existsSync(path.join(root, 'ro'))) fs.chmodSync(path.join(root, 'ro'), 0o700);
  });

  it('captures and syncs every reading exactly once without writing under capture_dir', async () => {
    const server: Ingest = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(root, 'ingest1'), tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
    try {
      // a capture dir that does not exist, under a read-only parent (root ignores the mode: the
      // proof is that nothing exists there afterwards)
      fs.mkdirSync(path.join(root, 'ro'));
      fs.chmodSync(path.join(root, 'ro'), 0o500);
      const captureDir = path.join(root, 'ro', 'capture');
      const dm = new DataManager({
        storage: 'memory',
        capture_dir: captureDir,
        part_id: 'mem1',
        sync_interval_mins: 0.005,
        maximum_capture_file_age_ms: 300,
        ingest: { address: `localhost:${server.port}`, ca_file: certs.caFile, api_key: 'k1' },
        resources: [
          { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 200 }] },
          { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 4096 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 5 }] },
        ],
      });
      await dm.start();
      await waitFor('files synced from memory', () => (dm.stats().sync as { uploadedFiles?: number }).uploadedFiles! >= 4, 30_000);
      await dm.stopCapture();
      const streams = dm.stats().capture.streams;
      await dm.sync();
      const mem = dm.stats().memory!;
      expect(mem.heldFiles).toBe(0);
      expect(mem.droppedFiles).toBe(0);
      await dm.stop();

      expect(everything(captureDir)).toEqual([]);
      expect(fs.existsSync(captureDir)).toBe(false);
      const got = await seqsByStream(path.join(root, 'ingest1'));
      for (const s of streams) {
        const seqs = got.get(`${s.resource}/${s.method}`) ?? [];
        expect(s.captured).toBeGreaterThan(0);
        expect(seqs.length).toBe(s.captured);
        expect(new Set(seqs).size).toBe(seqs.length);
        // one epoch: consecutive seqs from the base up
        const sorted = [...seqs].sort((a, b) => a - b);
        expect(sorted[sorted.length - 1]! - sorted[0]! + 1).toBe(seqs.length);
      }
      const report = await gapReport(path.join(root, 'ingest1'));
      expect(report.unexplained_gaps).toBe(0);
      for (const st of report.streams) for (const g of st.gaps) expect(g.reasons).toEqual(['memory_lost']);
    } finally {
      await server.close();
    }
  }, 90_000);

  it('capture stopped and started again continues every stream after what was sealed: no seq is reused', async () => {
    const dataDir = path.join(root, 'ingest-restart');
    const server: Ingest = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
    try {
      const dm = new DataManager({
        storage: 'memory',
        capture_dir: path.join(root, 'nowhere-restart'),
        part_id: 'mem-restart',
        sync_interval_mins: 0.005,
        maximum_capture_file_age_ms: 200,
        ingest: { address: `localhost:${server.port}`, ca_file: certs.caFile, api_key: 'k1' },
        resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 200 }] }],
      });
      await dm.start();
      let captured = 0;
      for (let round = 0; round < 3; round++) {
        await waitFor('readings', () => (dm.stats().capture.streams[0]?.captured ?? 0) > 50, 20_000);
        await dm.stopCapture();
        captured += dm.stats().capture.streams[0]!.captured;
        if (round < 2) await dm.startCapture();
      }
      await dm.sync();
      await dm.stop();
      const seqs = (await seqsByStream(dataDir)).get('temp/Readings') ?? [];
      // three engines, one stream: every reading once, no seq twice (before the fix each engine
      // started again at the epoch base and the ingest held the same seqs three times)
      expect(seqs.length).toBe(captured);
      expect(new Set(seqs).size).toBe(seqs.length);
      const report = await gapReport(dataDir);
      expect(report.unexplained_gaps).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('a full budget drops files as memory_full gaps while capture goes on', async () => {
    const port = await freePort();
    const dataDir = path.join(root, 'ingest2');
    const budget = 512 * 1024;
    const dm = new DataManager({
      storage: 'memory',
      memory_budget_bytes: budget,
      capture_dir: path.join(root, 'capture2'),
      part_id: 'mem2',
      sync_interval_mins: 0.005,
      sync_probe_interval_ms: 200,
      maximum_capture_file_age_ms: 200,
      ingest: { address: `localhost:${port}`, ca_file: certs.caFile, api_key: 'k1' },
      resources: [{ name: 'cam', model: 'sim:camera', attributes: { image_bytes: 16384 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 40 }] }],
    });
    await dm.start();
    let server: Ingest | undefined;
    try {
      await waitFor('first drop', () => dm.stats().memory!.droppedFiles > 0, 30_000);
      const rss0 = process.memoryUsage().rss;
      const captured0 = dm.stats().capture.streams[0]!.captured;
      await waitFor('more drops', () => dm.stats().memory!.droppedFiles >= 5, 30_000);
      const m = dm.stats().memory!;
      // within the budget (sealed + open), and the process did not grow past it + overhead
      expect(m.heldBytes).toBeLessThanOrEqual(budget);
      expect(process.memoryUsage().rss - rss0).toBeLessThan(budget * 4 + 64 * 1024 * 1024);
      expect(m.droppedReadings).toBeGreaterThan(0);
      expect(dm.stats().capture.streams[0]!.captured).toBeGreaterThan(captured0); // capture never stopped

      server = await startIngestServer({ listen: `127.0.0.1:${port}`, dataDir, tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
      await waitFor('sync after the outage', () => (dm.stats().sync as { uploadedFiles?: number }).uploadedFiles! > 0, 30_000);
      await dm.stopCapture();
      const st = dm.stats().capture.streams[0]!;
      const dropped = dm.stats().memory!.droppedReadings;
      await dm.sync();
      await dm.stop();

      const got = (await seqsByStream(dataDir)).get('cam/ReadImage') ?? [];
      expect(new Set(got).size).toBe(got.length);
      expect(got.length + dropped + st.dropped).toBe(st.captured + st.dropped);
      const report = await gapReport(dataDir);
      expect(report.unexplained_gaps).toBe(0);
      const reasons = new Set(report.streams.flatMap((s) => s.gaps.flatMap((g) => g.reasons)));
      expect(reasons.has('memory_full')).toBe(true);
      expect(everything(path.join(root, 'capture2'))).toEqual([]);
    } finally {
      await dm.stop().catch(() => undefined);
      await server?.close();
    }
  }, 120_000);

  it('after SIGKILL of `edgecap run` the restart explains the lost range', async () => {
    const dataDir = path.join(root, 'ingest3');
    const server: Ingest = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
    const captureDir = path.join(root, 'capture3');
    const config = writeJson(path.join(root, 'cfg3', 'config.json'), {
      storage: 'memory',
      capture_dir: captureDir,
      part_id: 'mem3',
      sync_interval_mins: 0.005,
      maximum_capture_file_age_ms: 300,
      ingest: { address: `localhost:${server.port}`, ca_file: certs.caFile, api_key: 'k1' },
      resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }],
    });
    const received = async (): Promise<number> => ((await seqsByStream(dataDir)).get('temp/Readings') ?? []).length;
    try {
      const a = runCli(['run', '--config', config]);
      await waitFor('first run synced', async () => (await received()) > 50, 60_000, 200);
      await sigkill(a); // what it held in memory is lost
      const before = await received();
      const b = runCli(['run', '--config', config]);
      await waitFor('second run synced', async () => (await received()) > before + 50, 60_000, 200);
      b.proc.kill('SIGTERM');
      await b.exited;
      const report = await gapReport(dataDir);
      const st = report.streams.find((s) => s.resource === 'temp')!;
      expect(report.unexplained_gaps).toBe(0);
      expect(st.unexplained_readings).toBe(0);
      // two epochs received; every hole between them is memory_lost
      expect(st.received.length).toBeGreaterThanOrEqual(2);
      for (const g of st.gaps) expect(g.reasons).toContain('memory_lost');
      expect(everything(captureDir)).toEqual([]);
    } finally {
      await server.close();
    }
  }, 180_000);
});
