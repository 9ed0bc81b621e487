#!/usr/bin/env node
/**
 * Health latency at the ingest while one huge capture file arrives (issue #12: an honest Health
 * within 200 ms while a 512 MiB upload is checked). Three processes, so only the server's own
 * stalls are measured: `serve.js` (TLS), the uploader (test/fixtures/big-upload.mjs: 65 binary
 * readings of 8 MiB in 1 MiB messages, as the edge sends them) and this prober, which calls
 * Health every 20 ms — first with the server idle (the baseline of the same run), then during
 * the upload. Prints one JSON line: {idle, during} as {n, p50, p99, max} in ms, plus the upload's
 * size, seconds and MB/s.
 *
 *   pnpm build && node packages/ingest/bench/health-latency.js [--readings 65]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadSyncProto } from '@edgecap/proto';
import { makeDevCert } from '../dist/devcert.js';

const { values } = parseArgs({ options: { readings: { type: 'string', default: '65' }, 'idle-seconds': { type: 'string', default: '3' } } });
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-health-latency-'));
const cert = makeDevCert(path.join(dir, 'tls'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = spawn(process.execPath, [path.join(here, '../dist/serve.js'), '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data'), '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--api-key', 'k'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' },
});
const port = await new Promise((resolve, reject) => {
  server.stdout.on('data', (d) => {
    const m = /listening .*:(\d+)/.exec(d.toString());
    if (m) resolve(Number(m[1]));
  });
  server.once('exit', (c) => reject(new Error(`ingest exited ${c}`)));
});

const Ctor = loadSyncProto().edgecap.sync.v1.DataSync;
const client = new Ctor(`localhost:${port}`, grpc.credentials.createSsl(fs.readFileSync(cert.caFile)));
const md = new grpc.Metadata();
md.set('authorization', 'Bearer k');
const health = () =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    client.Health({}, md, (err) => (err ? reject(err) : resolve(performance.now() - t)));
  });
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s.at(-1) };
};

try {
  await health(); // connect
  const idle = [];
  for (const end = Date.now() + Number(values['idle-seconds']) * 1000; Date.now() < end; await sleep(20)) idle.push(await health());

  const up = spawn(process.execPath, [path.join(here, '../test/fixtures/big-upload.mjs'), `localhost:${port}`, cert.caFile, 'k', values.readings], { stdio: ['ignore', 'pipe', 'inherit'] });
  let sending;
  let result;
  up.stdout.on('data', (d) => {
    for (const l of d.toString().split('\n').filter(Boolean)) {
      if (l.startsWith('sending ')) sending = { ...JSON.parse(l.slice(8)), t0: performance.now() };
      else result = { ...JSON.parse(l), t1: performance.now() };
    }
  });
  const exited = new Promise((r) => up.once('exit', r));
  while (!sending) await sleep(20);
  const during = [];
  while (!result) {
    during.push(await health());
    await sleep(20);
  }
  await exited;
  if (result.status !== 'UPLOAD_STATUS_COMMITTED') throw new Error(`upload not committed: ${JSON.stringify(result)}`);
  const seconds = (result.t1 - sending.t0) / 1000;
  process.stdout.write(`${JSON.stringify({ idle: stats(idle), during: stats(during), bytes: sending.size, seconds, mbps: sending.size / 1e6 / seconds })}\n`);
} finally {
  client.close();
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
}
