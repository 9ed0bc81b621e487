#!/usr/bin/env node
/**
 * Readings/s ingested into PostgreSQL through 1 and 2 ingest nodes.
 *
 *   pnpm build   (or: npx tsc -b packages/ingest)
 *   node packages/ingest/bench/pg-ingest.js [--files 48] [--readings 5000] [--concurrency 4] [--fsync on|off]
 *
 * Starts a throwaway PostgreSQL cluster (Debian binaries, as the `postgres` user when root),
 * then for each node count: a fresh database, N `serve.js --storage postgres` child processes
 * (plain text on loopback: the figure is ingest + database, not TLS), and `--concurrency`
 * uploaders spread round-robin over the nodes, each uploading whole capture files made with
 * @edgecap/format (tabular readings {v, label}). Time = first upload start → last COMMITTED ack;
 * readings/s = rows in `readings` / time (checked against what was sent).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { encodeFileStart, FrameEncoder } from '@edgecap/format';
import { loadSyncProto } from '@edgecap/proto';
import { pgUnavailableReason, startPgCluster } from '../dist/pg/cluster.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '48' },
    readings: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '4' },
    fsync: { type: 'string', default: 'on' },
  },
});
const FILES = Number(values.files);
const READINGS = Number(values.readings);
const CONCURRENCY = Number(values.concurrency);
const SERVE = fileURLToPath(new URL('../dist/serve.js', import.meta.url));
const KEY = 'bench-key';

const why = pgUnavailableReason();
if (why) {
  process.stderr.write(`pg-ingest bench skipped: ${why}\n`);
  process.exit(0);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function makeFiles(run) {
  const enc = new FrameEncoder();
  const buf = new Uint8Array(1 << 16);
  const out = [];
  for (let f = 0; f < FILES; f++) {
    const { bytes: head, header } = encodeFileStart({ kind: 'sensor', name: `s${f % 8}`, method: 'Readings', type: 'tabular', tags: [], start_us: 1_700_000_000_000_000 });
    const parts = [Buffer.from(head)];
    for (let i = 0; i < READINGS; i++) {
      const seq = Math.floor(f / 8) * READINGS + i;
      const n = enc.reading(buf, 0, seq, 1_700_000_000_000_000 + seq * 1000, 1_700_000_000_000_050 + seq * 1000, { v: seq * 0.5, label: `r${seq}`, ok: true });
      parts.push(Buffer.from(buf.subarray(0, n)));
    }
    const bytes = Buffer.concat(parts);
    out.push({
      bytes,
      meta: {
        file_id: header.id,
        part_id: `bench-${run}`,
        resource_kind: 'sensor',
        resource_name: `s${f % 8}`,
        method: 'Readings',
        data_type: 'DATA_TYPE_TABULAR',
        tags: [],
        size: bytes.length,
        sha256: createHash('sha256').update(bytes).digest(),
        mtime_ms: 1,
        source: 'capture',
      },
    });
  }
  return out;
}

async function startNode(url, scratch) {
  const port = await freePort();
  const proc = spawn(process.execPath, [SERVE, '--listen', `127.0.0.1:${port}`, '--insecure', '--storage', 'postgres', '--pg-url', url, '--data', scratch], {
    env: { ...process.env, EDGECAP_API_KEY: KEY, EDGECAP_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => proc.once('exit', r));
  await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', resolve);
    proc.once('exit', (c) => reject(new Error(`serve.js exited ${c}`)));
  });
  return { proc, exited, address: `127.0.0.1:${port}` };
}

function upload(client, f) {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${KEY}`);
    const call = client.Upload(md, (err, res) => (err ? reject(err) : resolve(res)));
    call.write({ metadata: f.meta });
    for (let o = 0; o < f.bytes.length; o += 1 << 20) call.write({ chunk: f.bytes.subarray(o, o + (1 << 20)) });
    call.end();
  });
}

async function run(clusterUrl, nodes, dir) {
  const db = `bench_${nodes}`;
  const admin = new pg.Client({ connectionString: clusterUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  await admin.end();
  const url = clusterUrl.replace(/\/postgres$/, `/${db}`);
  const servers = [];
  for (let i = 0; i < nodes; i++) servers.push(await startNode(url, path.join(dir, `n${nodes}-${i}`)));
  const Ctor = loadSyncProto().edgecap.sync.v1.DataSync;
  const clients = servers.map((s) => new Ctor(s.address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 32 << 20 }));
  const files = makeFiles(nodes);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let i = next++; i < files.length; i = next++) {
        const res = await upload(clients[(w + i) % clients.length], files[i]);
        if (res.status !== 'UPLOAD_STATUS_COMMITTED') throw new Error(`unexpected ${res.status}`);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const q = new pg.Client({ connectionString: url });
  await q.connect();
  const rows = Number((await q.query('SELECT count(*) AS n FROM readings')).rows[0].n);
  await q.end();
  if (rows !== FILES * READINGS) throw new Error(`readings table has ${rows}, expected ${FILES * READINGS}`);
  const mb = files.reduce((n, f) => n + f.bytes.length, 0) / 1e6;
  for (const c of clients) c.close();
  for (const s of servers) s.proc.kill('SIGTERM');
  await Promise.all(servers.map((s) => s.exited));
  return { nodes, rows, secs, perSec: rows / secs, mb };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-pg-bench-'));
const cluster = await startPgCluster({ settings: values.fsync === 'off' ? { fsync: 'off', synchronous_commit: 'off' } : {} });
try {
  const vq = new pg.Client({ connectionString: cluster.url });
  await vq.connect();
  const pgVersion = (await vq.query('SHOW server_version')).rows[0].server_version;
  await vq.end();
  process.stdout.write(
    `pg-ingest: ${FILES} files x ${READINGS} readings, ${CONCURRENCY} concurrent uploaders, fsync ${values.fsync}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg()[0].toFixed(1)}, PostgreSQL ${pgVersion}\n`,
  );
  for (const nodes of [1, 2]) {
    const r = await run(cluster.url, nodes, dir);
    process.stdout.write(`  ${r.nodes} node${r.nodes > 1 ? 's' : ' '}: ${r.rows} readings in ${r.secs.toFixed(2)} s = ${Math.round(r.perSec).toLocaleString('en-US')} readings/s (${(r.mb / r.secs).toFixed(1)} MB/s of capture files)\n`);
  }
} finally {
  cluster.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
