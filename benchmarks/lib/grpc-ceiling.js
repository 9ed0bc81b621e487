// gRPC upload ceiling on loopback TLS: what grpc-js client streaming can do at all, what our
// ingest server costs on top, and what our client (uploadFile) costs on top.
//
//   node benchmarks/lib/grpc-ceiling.js [--mib=512] [--runs=3] [--inflight=4] [--only=raw,bare-win,...] [--json]
//   (--json: one more line, `JSON {...}`, with each case's median MB/s and CPU s/GB: the sync
//   section of run.js judges the engine against the bare case of the same run with it)
//
// Rows (server always in its own process, client in this one; 8 MiB files in 1 MiB chunks):
//   bare server, default windows   ← bare client, default windows
//   bare server, 16 MiB windows    ← bare client, 16 MiB window option
//   real ingest server (files)     ← bare client (DATA_TYPE_FILE: no capture check)
//   real ingest server (capture)   ← bare client (valid capture files: capture check too)
//   bare server, 16 MiB windows    ← uploadFile() (our client: read + sha256 + stream)
//   real ingest server (capture)   ← uploadFile()
// plus raw TLS socket throughput (benchmarks/lib/limits.js) in the same run.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSyncProto, dataSyncService } from '@edgecap/proto';
import { makeDevCert, startIngestServer } from '@edgecap/ingest';
import { median } from './util.js';

const MiB = 1024 * 1024;
const WIN = 16 * MiB;
const API_KEY = 'ceiling-key';
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- server child
if (process.argv[2] === '--server') {
  const [kind, certFile, keyFile, dataDir] = process.argv.slice(3);
  const cpu0 = process.cpuUsage();
  let port;
  let stop;
  if (kind === 'ingest') {
    const s = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile, keyFile }, apiKeys: [API_KEY] });
    port = s.port;
    stop = () => s.forceClose();
  } else {
    const win = kind === 'bare-win';
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * MiB, ...(win ? { 'grpc-node.flow_control_window': WIN } : {}) });
    if (win) {
      // grpc-js has no server window option: same private-field tuning as packages/ingest/src/server.ts.
      server.commonServerOptions.settings = { ...(server.commonServerOptions.settings ?? {}), initialWindowSize: WIN };
    }
    server.addService(dataSyncService(), {
      Upload(call, cb) {
        let bytes = 0;
        let id = '';
        call.on('data', (m) => {
          if (m.packet === 'metadata') id = m.metadata.file_id;
          else bytes += m.chunk.length;
        });
        call.on('end', () => cb(null, { file_id: id, status: 'UPLOAD_STATUS_COMMITTED', stored_bytes: bytes }));
      },
      ReportGaps: (_c, cb) => cb(null, { accepted: 0 }),
      Health: (_c, cb) => cb(null, { version: 'bare', storage: 'none' }),
    });
    const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: fs.readFileSync(keyFile), cert_chain: fs.readFileSync(certFile) }], false);
    port = await new Promise((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
    if (win) for (const h of server.http2Servers.keys()) h.on('session', (s) => s.setLocalWindowSize(WIN));
    stop = () => server.forceShutdown();
  }
  process.send({ port });
  process.on('message', (m) => {
    if (m === 'cpu') {
      const c = process.cpuUsage(cpu0);
      process.send({ cpuSec: (c.user + c.system) / 1e6 });
    }
  });
  process.on('disconnect', () => {
    stop();
    process.exit(0);
  });
} else {
  await main();
}

async function startServer(kind, certs, dataDir = '') {
  const child = fork(self, ['--server', kind, certs.certFile, certs.keyFile, dataDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: process.env.CEILING_SERVER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CEILING_SERVER_PROF}`] : [] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.port));
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  return {
    port,
    cpu: () => {
      child.send('cpu');
      return new Promise((r) => child.once('message', (m) => r(m.cpuSec)));
    },
    stop: () => child.disconnect(),
  };
}

/** Valid edgecap capture files of ~8 MiB (each its own id), as bytes + id. */
async function captureFiles(dir, n) {
  const { makeBacklog } = await import('./sync.js');
  const cap = path.join(dir, 'capture');
  makeBacklog(cap, { files: n, fileBytes: 8 * MiB });
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.capture')) out.push({ path: p, id: e.name.slice(e.name.indexOf('-') + 1, -'.capture'.length), bytes: fs.readFileSync(p) });
    }
  };
  walk(cap);
  return out;
}

function bareClient(port, caFile, win) {
  const Ctor = loadSyncProto().edgecap.sync.v1.DataSync;
  const opts = { 'grpc.max_send_message_length': 64 * MiB, 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };
  if (win) opts['grpc-node.flow_control_window'] = WIN;
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(fs.readFileSync(caFile)), opts);
}

/** One file over one Upload call: metadata, then views of `bytes` in 1 MiB chunks (no copies). */
function bareUpload(client, file, mode) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${API_KEY}`);
  return new Promise((resolve, reject) => {
    const call = client.Upload(md, (err, res) => (err ? reject(err) : resolve(res)));
    const size = file.bytes.length;
    const meta = {
      file_id: file.id,
      part_id: 'bench',
      data_type: mode === 'file' ? 'DATA_TYPE_FILE' : 'DATA_TYPE_BINARY',
      file_name: mode === 'file' ? `f/${file.id}` : '',
      size,
      sha256: file.sha,
      mtime_ms: Date.now(),
      source: 'capture',
    };
    call.write({ metadata: meta });
    let pos = 0;
    const pump = () => {
      while (pos < size) {
        const n = Math.min(MiB, size - pos);
        const ok = call.write({ chunk: file.bytes.subarray(pos, pos + n) });
        pos += n;
        if (!ok) return void call.once('drain', pump);
      }
      call.end();
    };
    pump();
  });
}

/** Upload `total` bytes of 8 MiB files with `inflight` calls at a time; MB/s, client & server CPU. */
async function measure({ label, server, upload, files, total, inflight }) {
  const n = Math.ceil(total / (8 * MiB));
  const srvCpu0 = await server.cpu();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  let bytes = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const f = files[i % files.length];
      const r = await upload(f, i);
      if (r && r.status !== 'UPLOAD_STATUS_COMMITTED' && r.ok !== true) throw new Error(`${label}: ${JSON.stringify(r)}`);
      bytes += f.bytes.length;
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const srvCpu = (await server.cpu()) - srvCpu0;
  return { label, mbps: bytes / 1e6 / sec, sec, clientCpu: (c.user + c.system) / 1e6, serverCpu: srvCpu };
}

async function main() {
  const arg = (k, d) => Number(process.argv.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d);
  const total = arg('mib', 512) * MiB;
  const runs = arg('runs', 3);
  const inflight = arg('inflight', 4);
  const only = process.argv.find((a) => a.startsWith('--only='))?.split('=')[1]?.split(',');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpc-ceiling-'));
  try {
    const certs = makeDevCert(path.join(dir, 'certs'));
    const { rawTls } = await import('./limits.js');
    const { uploadFile } = await import('@edgecap/sync');
    // Enough distinct files that every upload in a run is new to the ingest server (its dedup).
    const nFiles = Math.ceil(total / (8 * MiB));
    const caps = await captureFiles(dir, nFiles);
    for (const f of caps) f.sha = crypto.createHash('sha256').update(f.bytes).digest();
    const target = (port) => ({ address: `127.0.0.1:${port}`, caFile: certs.caFile, apiKey: API_KEY, serverName: 'localhost' });

    const cases = [
      { key: 'bare', label: 'bare server, default windows  <- bare client, default window', server: 'bare', client: 'bare', win: false },
      { key: 'bare-win', label: 'bare server, 16 MiB windows   <- bare client, 16 MiB window', server: 'bare-win', client: 'bare', win: true },
      { key: 'ingest-file', label: 'ingest server (DATA_TYPE_FILE) <- bare client, 16 MiB window', server: 'ingest', client: 'bare', win: true, mode: 'file' },
      { key: 'ingest-cap', label: 'ingest server (capture files)  <- bare client, 16 MiB window', server: 'ingest', client: 'bare', win: true, mode: 'capture' },
      { key: 'upload-bare', label: 'bare server, 16 MiB windows   <- uploadFile() (our client)', server: 'bare-win', client: 'ours' },
      { key: 'upload-ingest', label: 'ingest server (capture files)  <- uploadFile() (our client)', server: 'ingest', client: 'ours' },
    ].filter((c) => !only || only.includes(c.key) || only.includes('raw'));

    const rows = [];
    const raws = [];
    for (let r = 0; r < runs; r++) {
      if (!only || only.includes('raw')) raws.push((await rawTls({ certDir: path.join(dir, 'certs'), totalBytes: total })).mbps);
      for (const c of cases) {
        if (only && !only.includes(c.key)) continue;
        const dataDir = path.join(dir, `ingest-${c.key}-${r}`);
        const server = await startServer(c.server, certs, dataDir);
        let upload;
        let client;
        if (c.client === 'bare') {
          client = bareClient(server.port, certs.caFile, c.win);
          upload = (f) => bareUpload(client, f, c.mode);
        } else {
          const t = target(server.port);
          upload = (f) => uploadFile({ path: f.path, target: t, addressIndex: 0, meta: { file_id: f.id, part_id: 'bench', data_type: 'DATA_TYPE_BINARY', tags: [], source: 'capture' } });
        }
        try {
          const m = await measure({ label: c.label, server, upload, files: caps, total, inflight });
          rows.push({ ...c, ...m });
          process.stderr.write(`run ${r + 1}: ${c.key} ${m.mbps.toFixed(0)} MB/s\n`);
        } finally {
          client?.close();
          server.stop();
          fs.rmSync(dataDir, { recursive: true, force: true });
        }
      }
    }
    const raw = raws.length ? median(raws) : NaN;
    console.log(`\n8 MiB files, 1 MiB chunks, ${inflight} calls in flight, ${total / MiB} MiB per run, ${runs} runs (median; all runs in brackets); TLS on loopback, ${os.cpus().length} cores, node ${process.version}`);
    console.log(`raw TLS socket: ${raw.toFixed(0)} MB/s  [${raws.map((x) => x.toFixed(0)).join(', ')}]\n`);
    console.log('| case | MB/s | ÷ raw TLS | client CPU s/GB | server CPU s/GB | runs MB/s |');
    console.log('|---|---|---|---|---|---|');
    for (const c of cases) {
      const rs = rows.filter((x) => x.key === c.key);
      if (rs.length === 0) continue;
      const m = median(rs.map((x) => x.mbps));
      const gb = total / 1e9;
      console.log(
        `| ${c.label} | ${m.toFixed(0)} | ${((m / raw) * 100).toFixed(0)} % | ${(median(rs.map((x) => x.clientCpu)) / gb).toFixed(2)} | ${(median(rs.map((x) => x.serverCpu)) / gb).toFixed(2)} | ${rs.map((x) => x.mbps.toFixed(0)).join(', ')} |`,
      );
    }
    if (process.argv.includes('--json')) {
      const gb = total / 1e9;
      const json = {};
      for (const c of cases) {
        const rs = rows.filter((x) => x.key === c.key);
        if (rs.length) json[c.key] = { mbps: median(rs.map((x) => x.mbps)), clientCpuSecPerGB: median(rs.map((x) => x.clientCpu)) / gb, serverCpuSecPerGB: median(rs.map((x) => x.serverCpu)) / gb };
      }
      console.log(`JSON ${JSON.stringify({ rawTlsMBps: Number.isFinite(raw) ? raw : null, cases: json })}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
