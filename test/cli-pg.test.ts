import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager } from '@edgecap/datamanager';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../packages/ingest/dist/pg/cluster.js';
import { cli, freePort, runCli, tmpdir, waitFor } from './helpers.js';

// `edgecap ingest --storage postgres` and `edgecap export --pg-url` against a real PostgreSQL
// (Debian packages; .ci/run installs them).
const unavailable = pgUnavailableReason();
let cluster: PgCluster | undefined;
beforeAll(async () => {
  if (!unavailable) cluster = await startPgCluster({ settings: { fsync: 'off' } });
}, 60_000);
afterAll(() => cluster?.stop());

describe('CLI on the PostgreSQL backend', () => {
  it('ingest --storage postgres receives a sync; export --pg-url prints every reading once', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const root = tmpdir('cli-pg');
    const port = await freePort();
    const ingest = runCli(['ingest', '--listen', `127.0.0.1:${port}`, '--storage', 'postgres', '--pg-url', cluster!.url, '--insecure', '--api-key', 'k']);
    await waitFor('ingest', () => ingest.stdout.some((l) => l.startsWith('listening')) || (ingest.proc.exitCode !== null && Promise.reject(new Error(ingest.stderr.join('\n')))));
    const dm = new DataManager({
      capture_dir: path.join(root, 'capture'),
      part_id: 'pg-cli',
      sync_disabled: true,
      ingest: { address: `127.0.0.1:${port}`, insecure: true, api_key: 'k' },
      resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 200 }] }],
    });
    await dm.start();
    await new Promise((r) => setTimeout(r, 800));
    await dm.stopCapture();
    const r = await dm.sync();
    const written = dm.stats().capture.streams[0]!.captured;
    await dm.stop();
    expect(r.uploaded).toBeGreaterThan(0);
    const out = await cli(['export', '--pg-url', cluster!.url]);
    expect(out.code).toBe(0);
    const rows = out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { part_id: string; resource: string; seq: number });
    const seqs = rows.filter((x) => x.part_id === 'pg-cli').map((x) => x.seq).sort((a, b) => a - b);
    expect(seqs).toEqual([...Array(written).keys()]);
    const gaps = await cli(['export', '--pg-url', cluster!.url, '--gaps']);
    expect(JSON.parse(gaps.stdout).unexplained_gaps).toBe(0);
    ingest.proc.kill('SIGTERM');
    expect((await ingest.exited).code).toBe(0);
  });
});
