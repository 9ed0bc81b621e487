import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { DataManager, type EdgecapConfigInput } from '@edgecap/datamanager';
import { startIngestServer, exportReadings } from '@edgecap/ingest';
import { applyConfigLogLevel } from '@edgecap/core';
import { Exit, fmtBytes, fmtCount, table } from './util.js';

/**
 * The README's main job: an embedded ingest server on loopback and a DataManager with
 * simulated resources, run for a while, then a full drain and a check that what was
 * captured is exactly what the server holds (per stream: count, and seq with no gap or
 * duplicate).
 */
export async function demo(opts: { seconds: number; dir?: string; keep?: boolean }, out: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  // Per-file server logs would drown the progress display; warnings and errors still show
  // (unless --log-level, --verbose or EDGECAP_LOG_LEVEL asked for a level).
  applyConfigLogLevel('warn');
  const root = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-demo-'));
  const apiKey = 'demo-key';
  const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(root, 'ingest'), insecure: true, apiKeys: [apiKey] });
  out.write(`ingest server on ${server.address}, data in ${root}\n`);
  const config: EdgecapConfigInput = {
    capture_dir: path.join(root, 'capture'),
    part_id: 'demo-machine',
    sync_interval_mins: 0.02,
    maximum_capture_file_age_ms: 1000,
    tags: ['demo'],
    log_level: 'warn',
    ingest: { address: server.address, insecure: true, api_key: apiKey },
    resources: [
      { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 1000 }, { method: 'LinearVelocity', capture_frequency_hz: 100 }] },
      { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 10 }] },
      { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 65536 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 5, additional_params: { mime_type: 'image/jpeg' } }] },
    ],
  };
  const dm = new DataManager(config);
  await dm.start();
  const bar = new cliProgress.SingleBar(
    { format: 'capturing [{bar}] {value}/{total} s | {captured} readings | {synced} files synced', hideCursor: true, noTTYOutput: true, notTTYSchedule: 2000, stream: out as NodeJS.WriteStream },
    cliProgress.Presets.shades_classic,
  );
  const counts = () => {
    const s = dm.stats();
    return { captured: fmtCount(s.capture.streams.reduce((a, x) => a + x.captured, 0)), synced: s.sync.enabled ? s.sync.uploadedFiles : 0 };
  };
  bar.start(opts.seconds, 0, counts());
  for (let i = 1; i <= opts.seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    bar.update(i, counts());
  }
  bar.stop();
  await dm.stopCapture();
  const captured = dm.stats().capture;
  out.write('capture stopped; draining the backlog...\n');
  // Files finish on stop; a last explicit sync uploads everything still pending.
  for (let i = 0; i < 20; i++) {
    const r = await dm.sync();
    if (r.uploaded + r.alreadyHad === 0 && r.deferred === 0) break;
  }
  const syncStats = dm.stats().sync;
  await dm.stop();

  const got = new Map<string, { n: number; seqs: Set<number>; dup: number }>();
  for await (const r of exportReadings(path.join(root, 'ingest'))) {
    const k = `${r.resource}/${r.method}`;
    const e = got.get(k) ?? { n: 0, seqs: new Set<number>(), dup: 0 };
    e.n++;
    if (e.seqs.has(r.seq)) e.dup++;
    e.seqs.add(r.seq);
    got.set(k, e);
  }
  await server.close();
  const rows: (string | number)[][] = [];
  let ok = captured.streams.length > 0;
  for (const s of captured.streams) {
    const k = `${s.resource}/${s.method}`;
    const g = got.get(k) ?? { n: 0, seqs: new Set<number>(), dup: 0 };
    const onDisk = s.captured - s.droppedOnWriteError;
    const match = g.n === onDisk && g.dup === 0;
    ok &&= match;
    rows.push([k, s.captured, s.dropped + s.droppedOnWriteError, g.n, g.dup, match ? 'yes' : 'NO']);
  }
  out.write('\n' + table(['stream', 'captured', 'dropped', 'synced', 'duplicates', 'match'], rows) + '\n');
  if (syncStats.enabled) out.write(`synced ${syncStats.uploadedFiles} files, ${fmtBytes(syncStats.uploadedBytes)}\n`);
  out.write(ok ? 'OK: every captured reading reached the ingest server exactly once\n' : 'MISMATCH: captured and synced counts differ\n');
  if (!opts.keep && !opts.dir) fs.rmSync(root, { recursive: true, force: true });
  return ok ? Exit.OK : Exit.MISMATCH;
}
