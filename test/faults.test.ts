import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDevCert, gapReport } from '@edgecap/ingest';
import { Ledger } from './ledger.js';
import { cli, freePort, runCli, sigkill, startIngestProcess, tmpdir, waitFor, writeJson, type Child, type IngestProc } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('exactly once through process kills', () => {
  it('ingest and edge SIGKILLed and restarted during uploads: every flushed reading ingested exactly once', async () => {
    const root = tmpdir('faults');
    const certs = makeDevCert(path.join(root, 'certs'));
    const port = await freePort();
    const data = path.join(root, 'ingest');
    const captureDir = path.join(root, 'capture');
    const config = writeJson(path.join(root, 'edge.json'), {
      capture_dir: captureDir,
      part_id: 'faulty',
      sync_interval_mins: 0.005,
      maximum_capture_file_age_ms: 300,
      maximum_capture_file_size_bytes: 65536,
      ingest: { address: `localhost:${port}`, ca_file: certs.caFile, api_key: 'key' },
      resources: [
        { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 1000 }] },
        { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] },
        { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 32768 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 10 }] },
      ],
    });
    const ledger = new Ledger();
    let ingest: IngestProc = await startIngestProcess({ data, port, tls: certs, apiKey: 'key' });
    const startEdge = (): Child => runCli(['run', '--config', config]);
    let edge = startEdge();
    const kills = { edge: 0, ingest: 0 };
    for (let round = 0; round < 6; round++) {
      await sleep(900 + Math.floor(Math.random() * 600));
      if (round % 2 === 0) {
        ledger.snapshotDisk(captureDir);
        await sigkill(edge);
        kills.edge++;
        edge = startEdge();
      } else {
        await sigkill(ingest);
        kills.ingest++;
        await sleep(300);
        ingest = await startIngestProcess({ data, port, tls: certs, apiKey: 'key' });
      }
    }
    await sleep(1000);
    edge.proc.kill('SIGTERM');
    const end = await edge.exited;
    expect(end.code).toBe(0);
    ledger.snapshotDisk(captureDir);
    // Drain whatever is left, as a restarted edge would.
    await waitFor(
      'backlog drained',
      async () => {
        const r = await cli(['sync', '--config', config]);
        expect(r.code).toBe(0);
        const res = JSON.parse(r.stdout.split('\n').at(-1)!) as { uploaded: number; alreadyHad: number };
        return res.uploaded + res.alreadyHad === 0;
      },
      60_000,
      200,
    );
    ingest.proc.kill('SIGTERM');
    await ingest.exited;
    await ledger.loadExport(data);
    const rep = ledger.report();
    expect(kills).toEqual({ edge: 3, ingest: 3 });
    expect(rep.flushed).toBeGreaterThan(1000);
    expect(rep.lostExamples).toEqual([]);
    expect(rep.lost).toBe(0);
    expect(rep.duplicated).toBe(0);
    expect(rep.corrupt).toBe(0);
    // seqs continue across restarts: any hole must be explained by the edge (ring drops etc.).
    const gaps = await gapReport(data);
    expect(gaps.streams.length).toBe(3);
    expect(gaps.streams.map((s) => s.duplicates)).toEqual([0, 0, 0]);
    expect(gaps.streams.flatMap((s) => s.gaps.filter((g) => !g.explained))).toEqual([]);
    expect(gaps.unexplained_gaps).toBe(0);
  }, 180_000);
});
