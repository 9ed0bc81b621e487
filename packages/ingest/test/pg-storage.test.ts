/**
 * PostgreSQL backend against a real throwaway cluster (Debian's PostgreSQL binaries):
 * migrations under the advisory lock, the dedup race between two storages on two pools
 * (made deterministic with a third connection holding the file_id row lock), and the
 * export functions giving the same answers as the embedded store for the same uploads.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, gapReport, listReceived, PgStorage, startIngestServer, type IngestServer, type NewFileRecord } from '@edgecap/ingest';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../dist/pg/cluster.js';
import { auth, captureMeta, collect, fileMeta, health, makeCapture, makeClient, sha256, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const why = pgUnavailableReason();
if (why) console.warn(`SKIPPING PostgreSQL ingest tests: ${why}`);

/** A fresh database on the cluster, so each test starts from an empty schema. */
async function freshDb(cluster: PgCluster, name: string): Promise<string> {
  const c = new pg.Client({ connectionString: cluster.url });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  return cluster.url.replace(/\/postgres$/, `/${name}`);
}

function recordOf(c: ReturnType<typeof makeCapture>, part = 'robot-1'): NewFileRecord {
  return {
    file_id: c.id,
    part_id: part,
    data_type: 'tabular',
    resource_kind: c.kind,
    resource_name: c.name,
    method: c.method,
    tags: ['t1'],
    size: c.bytes.length,
    sha256: sha256(c.bytes).toString('hex'),
    mtime_ms: 1,
    source: 'capture',
  };
}

async function stageBytes(s: PgStorage, bytes: Buffer) {
  const st = await s.stage();
  await st.write(bytes);
  await st.finish();
  return st;
}

describe.skipIf(why)('PostgreSQL ingest storage', () => {
  let cluster: PgCluster;
  let dir: string;

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { fsync: 'off', synchronous_commit: 'off' } });
    dir = tmpDir('pg');
  });
  afterAll(() => {
    cluster?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('migrations: two nodes opening a fresh database together apply each version once', async () => {
    const url = await freshDb(cluster, 'mig');
    const opened = await Promise.all([0, 1, 2].map(() => PgStorage.open({ url, stagingDir: path.join(dir, 'scratch') })));
    const { rows } = await opened[0]!.pool.query('SELECT version, name FROM schema_migrations ORDER BY version');
    expect(rows).toEqual([{ version: 1, name: 'initial schema' }, { version: 2, name: 'files keyed by part; device keys' }]);
    const tables = await opened[0]!.pool.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
    expect(tables.rows.map((r: { tablename: string }) => r.tablename)).toEqual(['binary_items', 'device_keys', 'file_chunks', 'files', 'ingest_meta', 'readings', 'reported_gaps', 'schema_migrations']);
    await Promise.all(opened.map((s) => s.close()));
    // Export on a database nobody migrated is refused with a clear error, not an empty answer.
    const empty = await freshDb(cluster, 'empty');
    await expect(listReceived({ pgUrl: empty })).rejects.toMatchObject({ code: 'EDGECAP_ERR_STATE', message: expect.stringContaining('no edgecap ingest schema') });
  });

  it('the same file_id committed concurrently by two storages on two pools: one row set, the loser ALREADY_HAVE', async () => {
    const url = await freshDb(cluster, 'dup');
    const a = await PgStorage.open({ url, stagingDir: path.join(dir, 'a') });
    const b = await PgStorage.open({ url, stagingDir: path.join(dir, 'b') });
    try {
      // 1) Free race, many times: exactly one commit per id.
      const caps = Array.from({ length: 12 }, (_, i) => makeCapture({ name: `race${i}`, seqs: Array.from({ length: 300 }, (_, k) => k) }));
      const results = await Promise.all(
        caps.map(async (c) => {
          const [sa, sb] = await Promise.all([stageBytes(a, c.bytes), stageBytes(b, c.bytes)]);
          return Promise.all([a.commit(sa, recordOf(c)), b.commit(sb, recordOf(c))]);
        }),
      );
      for (const pair of results) expect(pair.map((r) => r.status).sort()).toEqual(['already_have', 'committed']);

      // 2) Deterministic: node X is mid-commit (holds the new files row, uncommitted); node B's
      //    commit blocks on it; X commits → B answers ALREADY_HAVE. Then X rolls back → B commits.
      for (const outcome of ['COMMIT', 'ROLLBACK'] as const) {
        const c = makeCapture({ name: `held-${outcome}`, seqs: [0, 1, 2, 3] });
        const x = new pg.Client({ connectionString: url });
        await x.connect();
        await x.query('BEGIN');
        await x.query(
          "INSERT INTO files (file_id, part_id, data_type, resource_kind, resource_name, method, size, sha256, mtime_ms, source, path, received_at_ms) VALUES ($1, 'robot-1', 'tabular', 'sensor', $2, 'Readings', $3, $4, 1, 'capture', 'x', 0)",
          [c.id, c.name, c.bytes.length, sha256(c.bytes).toString('hex')],
        );
        if (outcome === 'COMMIT') {
          await x.query("INSERT INTO readings (file_id, ord, part_id, resource_kind, resource, method, seq, time_requested, time_received, time_requested_us, time_received_us) SELECT $1, g, 'robot-1', 'sensor', $2, 'Readings', g, now(), now(), 0, 0 FROM generate_series(0, 3) g", [c.id, c.name]);
        }
        const pending = b.commit(await stageBytes(b, c.bytes), recordOf(c));
        // Wait (bounded by the test timeout) until B's INSERT is blocked on X's row lock. Asked
        // outside X's transaction: pg_stat_activity is snapshotted once per transaction.
        for (;;) {
          const w = await a.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO files%'");
          if (w.rows[0].n > 0) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        await x.query(outcome);
        await x.end();
        expect((await pending).status).toBe(outcome === 'COMMIT' ? 'already_have' : 'committed');
      }

      const counts = await a.pool.query(
        `SELECT (SELECT count(*)::int FROM files) AS files, (SELECT count(*)::int FROM readings) AS readings,
                (SELECT count(DISTINCT (file_id, seq))::int FROM readings) AS distinct_readings, (SELECT count(*)::int FROM file_chunks) AS chunks`,
      );
      expect(counts.rows[0]).toEqual({ files: 14, readings: 12 * 300 + 4 + 4, distinct_readings: 12 * 300 + 4 + 4, chunks: 13 });
      // Byte for byte, from either node.
      const rec = (await b.get('robot-1', caps[3]!.id))!;
      expect(Buffer.from(await a.readBytes(rec)).equals(caps[3]!.bytes)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a server with storage postgres: upload, ALREADY_HAVE, files, binary readings; export/listReceived/gapReport match the embedded store', async () => {
    const url = await freshDb(cluster, 'srv');
    const pgSrv: IngestServer = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'node1'), insecure: true, apiKeys: ['test-key-1'], storage: 'postgres', pgUrl: url });
    const fsDir = path.join(dir, 'embedded');
    const fsSrv: IngestServer = await startIngestServer({ listen: '127.0.0.1:0', dataDir: fsDir, insecure: true, apiKeys: ['test-key-1'] });
    const cp = makeClient(pgSrv.address);
    const cf = makeClient(fsSrv.address);
    try {
      expect(await health(cp)).toMatchObject({ ok: true, storage: 'postgres' });
      const tab = makeCapture({ name: 'temp', seqs: [0, 1, 2, 5, 6, 9], gaps: [[3, 4, 'ring_full']] });
      const bin = makeCapture({ name: 'cam', seqs: [0, 1, 2], binary: true });
      // a viam image's annotations (with their ids) are kept as the embedded store keeps them
      const annotations = {
        bboxes: [{ id: 'b1', label: 'cat', x_min_normalized: 0.1, y_min_normalized: 0.2, x_max_normalized: 0.5, y_max_normalized: 0.6, confidence: 0.9 }],
        classifications: [{ id: 'c1', label: 'indoor', confidence: 0.7 }],
      };
      const ann = makeCapture({ name: 'cam-annotated', seqs: [0, 1], binary: true, annotations });
      const big = makeCapture({ name: 'big', seqs: Array.from({ length: 9000 }, (_, i) => i) });
      const file = Buffer.alloc(2.5 * 1024 * 1024, 7);
      for (const c of [cp, cf]) {
        expect(await upload(c, captureMeta(tab), tab.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
        expect(await upload(c, captureMeta(bin, 'robot-1', true), bin.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
        expect(await upload(c, captureMeta(ann, 'robot-1', true), ann.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
        expect(await upload(c, captureMeta(big), big.bytes, { chunk: 256 * 1024 })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
        expect(await upload(c, fileMeta('file-1', 'logs/a.bin', file), file)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
        // Retry of a committed id: answered without storing twice.
        expect(await upload(c, captureMeta(tab), tab.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_ALREADY_HAVE' } });
        // A bad upload is still refused with the same status as the embedded store.
        expect(await upload(c, fileMeta('file-2', '../escape', file), file)).toMatchObject({ ok: false, code: 3 });
      }
      await new Promise<void>((resolve, reject) =>
        cp.ReportGaps({ gaps: [{ part_id: 'robot-1', resource_kind: 'sensor', resource_name: 'temp', method: 'Readings', from_seq: 7, to_seq: 8, reason: 'janitor', time_us: 1 }] }, auth(), (err: unknown) => (err ? reject(err) : resolve())),
      );

      const target = { pgUrl: url };
      const fromPg = await collect(exportReadings(target));
      const fromFs = await collect(exportReadings(fsDir));
      expect(fromPg.length).toBe(6 + 3 + 2 + 9000);
      expect(fromPg).toEqual(fromFs);
      expect(fromPg.find((r) => r.resource === 'cam-annotated')!.data).toMatchObject({ binary: { annotations } });
      expect(fromPg.find((r) => r.resource === 'cam')!.data).toEqual({ binary: { size: 1000, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), mime_type: 'image/jpeg' } });

      const strip = (l: Awaited<ReturnType<typeof listReceived>>) => l.map(({ received_at_ms: _r, ...e }) => ('path' in e ? { ...e, path: '' } : e));
      expect(strip(await listReceived(target))).toEqual(strip(await listReceived(fsDir)));

      const gp = await gapReport(target);
      expect(gp.streams.find((s) => s.resource === 'temp')!.gaps).toEqual([
        { from_seq: 3, to_seq: 4, explained: true, reasons: ['ring_full'] },
        { from_seq: 7, to_seq: 8, explained: true, reasons: ['janitor'] },
      ]);

      // The SQL a user would write: readings, binary bytes and arbitrary files are all there.
      const q = new pg.Client({ connectionString: url });
      await q.connect();
      try {
        const r = await q.query("SELECT seq, data->>'label' AS label, time_received_us, extract(epoch FROM time_received) * 1e6 AS t FROM readings WHERE resource = 'temp' ORDER BY seq");
        expect(r.rows.map((x: { seq: string }) => Number(x.seq))).toEqual([0, 1, 2, 5, 6, 9]);
        expect(r.rows[1]).toMatchObject({ label: 'r1', time_received_us: '2001' });
        expect(Number(r.rows[1].t)).toBe(2001);
        const bi = await q.query("SELECT b.sha256, b.size, b.data FROM binary_items b JOIN readings r USING (file_id, ord) WHERE r.resource = 'cam' AND r.seq = 2");
        expect(bi.rows[0].size).toBe(1000);
        expect(Buffer.from(bi.rows[0].data).equals(Buffer.alloc(1000, 2))).toBe(true);
        const f = await q.query("SELECT string_agg(data, ''::bytea ORDER BY chunk_no) AS bytes, count(*)::int AS n FROM file_chunks WHERE file_id = 'file-1'");
        expect(f.rows[0].n).toBe(3);
        expect(Buffer.from(f.rows[0].bytes).equals(file)).toBe(true);
      } finally {
        await q.end();
      }
    } finally {
      cp.close();
      cf.close();
      await pgSrv.close();
      await fsSrv.close();
    }
  });

  it('the same file sent to two nodes at once over gRPC: one COMMITTED, one ALREADY_HAVE, one row set', async () => {
    const url = await freshDb(cluster, 'grpcrace');
    const opts = { listen: '127.0.0.1:0', dataDir: '', insecure: true, apiKeys: ['test-key-1'], storage: 'postgres' as const, pgUrl: url };
    const [n1, n2] = await Promise.all([startIngestServer(opts), startIngestServer(opts)]);
    const [c1, c2] = [makeClient(n1.address), makeClient(n2.address)];
    try {
      for (let i = 0; i < 10; i++) {
        const c = makeCapture({ name: `r${i}`, seqs: Array.from({ length: 2000 }, (_, k) => k) });
        const res = await Promise.all([upload(c1, captureMeta(c), c.bytes, { chunk: 16 * 1024 }), upload(c2, captureMeta(c), c.bytes, { chunk: 16 * 1024 })]);
        expect(res.map((r) => (r.ok ? r.res.status : `error ${r.code}`)).sort()).toEqual(['UPLOAD_STATUS_ALREADY_HAVE', 'UPLOAD_STATUS_COMMITTED']);
      }
    } finally {
      c1.close();
      c2.close();
      await Promise.all([n1.close(), n2.close()]);
    }
    const q = new pg.Client({ connectionString: url });
    await q.connect();
    const { rows } = await q.query('SELECT (SELECT count(*)::int FROM files) AS files, (SELECT count(*)::int FROM readings) AS readings, (SELECT count(DISTINCT (file_id, seq))::int FROM readings) AS distinct_readings');
    await q.end();
    expect(rows[0]).toEqual({ files: 10, readings: 20000, distinct_readings: 20000 });
  });

  it('options: postgres without a URL is a config error (API and serve.js), unknown storage refused', async () => {
    await expect(startIngestServer({ listen: '127.0.0.1:0', dataDir: '', insecure: true, apiKeys: [], storage: 'postgres' })).rejects.toMatchObject({ code: 'EDGECAP_ERR_CONFIG_INVALID', message: expect.stringContaining('pgUrl') });
    await expect(startIngestServer({ listen: '127.0.0.1:0', dataDir: '', insecure: true, apiKeys: [], storage: 'mysql' as 'files' })).rejects.toMatchObject({ code: 'EDGECAP_ERR_CONFIG_INVALID' });
    const serve = fileURLToPath(new URL('../dist/serve.js', import.meta.url));
    const env = { ...process.env, EDGECAP_PG_URL: '' };
    const r = spawnSync(process.execPath, [serve, '--listen', '127.0.0.1:0', '--insecure', '--storage', 'postgres'], { env, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--storage postgres needs --pg-url URL');
    const r2 = spawnSync(process.execPath, [serve, '--listen', '127.0.0.1:0', '--insecure', '--storage', 'nosql', '--data', dir], { env, encoding: 'utf8' });
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain('--storage must be files or postgres');
  });

  // Last: stops the cluster.
  it('database down: uploads answer UNAVAILABLE (retryable, the edge fails over), never INTERNAL', async () => {
    const url = await freshDb(cluster, 'down');
    const srv = await startIngestServer({ listen: '127.0.0.1:0', dataDir: '', insecure: true, apiKeys: ['test-key-1'], storage: 'postgres', pgUrl: url });
    const c = makeClient(srv.address);
    try {
      const one = makeCapture({ name: 'before', seqs: [0, 1] });
      expect(await upload(c, captureMeta(one), one.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
      cluster.stop();
      const two = makeCapture({ name: 'after', seqs: [0, 1] });
      expect(await upload(c, captureMeta(two), two.bytes)).toMatchObject({ ok: false, code: 14, details: expect.stringContaining('storage unavailable') });
      // Opening a node against a database that is not there is refused the same way.
      await expect(PgStorage.open({ url })).rejects.toMatchObject({ name: 'PgStorageError', code: 'EDGECAP_ERR_UNAVAILABLE' });
    } finally {
      c.close();
      await srv.close();
    }
  });
});
