import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager } from '@edgecap/datamanager';
import { startIngestServer, exportReadings, makeDevCert, listReceived } from '@edgecap/ingest';
import { listFiles } from '@edgecap/format';
import { tmpdir, waitFor } from './helpers.js';

type Ingest = Awaited<ReturnType<typeof startIngestServer>>;

async function exported(dataDir: string): Promise<Map<string, number[]>> {
  const m = new Map<string, number[]>();
  for await (const r of exportReadings(dataDir)) {
    const k = `${r.resource}/${r.method}`;
    const a = m.get(k) ?? [];
    a.push(r.seq);
    m.set(k, a);
  }
  return m;
}

describe('capture + sync end to end over TLS', () => {
  const root = tmpdir('e2e');
  let server: Ingest;
  let certs: ReturnType<typeof makeDevCert>;
  beforeAll(async () => {
    certs = makeDevCert(path.join(root, 'certs'));
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(root, 'ingest'), tls: { certFile: certs.certFile, keyFile: certs.keyFile }, apiKeys: ['k1'] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('every captured reading reaches the server exactly once and synced files leave the capture dir', async () => {
    const captureDir = path.join(root, 'capture');
    const dm = new DataManager({
      capture_dir: captureDir,
      part_id: 'e2e',
      sync_interval_mins: 0.01,
      maximum_capture_file_age_ms: 500,
      ingest: { address: `localhost:${server.port}`, ca_file: certs.caFile, api_key: 'k1' },
      resources: [
        { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 1000 }] },
        { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 10 }] },
        { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 16384 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 5 }] },
      ],
    });
    await dm.start();
    await waitFor('some files synced', () => (dm.stats().sync as { uploadedFiles?: number }).uploadedFiles! > 2, 20_000);
    await new Promise((r) => setTimeout(r, 2500));
    await dm.stopCapture();
    const streams = dm.stats().capture.streams;
    for (let i = 0; i < 10; i++) {
      const r = await dm.sync();
      if (r.uploaded + r.alreadyHad === 0) break;
    }
    await dm.stop();

    expect(listFiles(captureDir, '.capture')).toEqual([]);
    expect(listFiles(captureDir, '.prog')).toEqual([]);
    const got = await exported(path.join(root, 'ingest'));
    expect(streams.length).toBe(3);
    for (const s of streams) {
      const seqs = got.get(`${s.resource}/${s.method}`) ?? [];
      const stored = s.captured - s.droppedOnWriteError;
      expect(stored).toBeGreaterThan(0);
      expect(seqs.length).toBe(stored);
      expect(new Set(seqs).size).toBe(seqs.length); // no duplicates
      if (s.dropped === 0) expect([...seqs].sort((a, b) => a - b)).toEqual([...Array(seqs.length).keys()]);
    }
  });

  it('sync without capture uploads additional_sync_paths (nested names kept), not a file still being written', async () => {
    const extra = path.join(root, 'extra');
    fs.mkdirSync(path.join(extra, 'logs', 'day1'), { recursive: true });
    fs.writeFileSync(path.join(extra, 'a.csv'), 'x,y\n1,2\n');
    fs.writeFileSync(path.join(extra, 'logs', 'day1', 'b.log'), 'hello\n');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(extra, 'a.csv'), old, old);
    fs.utimesSync(path.join(extra, 'logs', 'day1', 'b.log'), old, old);
    fs.writeFileSync(path.join(extra, 'fresh.log'), 'still writing');
    const dm = new DataManager({
      capture_dir: path.join(root, 'capture2'),
      part_id: 'e2e-files',
      capture_disabled: true,
      sync_disabled: true,
      file_last_modified_millis: 30_000,
      additional_sync_paths: [extra],
      ingest: { address: `localhost:${server.port}`, ca_file: certs.caFile, api_key: 'k1' },
    });
    await dm.start();
    const r = await dm.sync();
    await dm.stop();
    expect(r.uploaded).toBe(2);
    expect(fs.existsSync(path.join(extra, 'a.csv'))).toBe(false);
    expect(fs.existsSync(path.join(extra, 'logs', 'day1', 'b.log'))).toBe(false);
    expect(fs.existsSync(path.join(extra, 'fresh.log'))).toBe(true);
    const files = await listReceived(path.join(root, 'ingest'));
    const names = files.flatMap((f) => (f.type === 'file' && f.part_id === 'e2e-files' ? [f.file_name] : [])).sort();
    expect(names).toEqual(['a.csv', 'logs/day1/b.log']);
  });
});
