/**
 * Issue #12 attacks on resources, against a real TLS ingest: uploads that never finish or
 * stall, uploads cancelled or past their deadline (nothing committed, no staging left), idle
 * connections hoarded, a stampede against a tiny fd limit (everything stored exactly once,
 * every refusal retryable), and an honest Health while a 512 MiB capture file is checked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, listReceived, makeDevCert, openKeyAdmin, startIngestServer, type IngestLimits, type IngestServer, type NewDeviceKey } from '@edgecap/ingest';
import type { DataSyncClient } from '@edgecap/proto';
import { API_KEY, auth, captureMeta, collect, health, makeCapture, makeClient, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const SERVE = path.resolve(import.meta.dirname, '../dist/serve.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RETRYABLE = new Set([grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

/** An upload that sends its metadata (or nothing) and then never finishes. */
function hangingUpload(client: DataSyncClient, key: string, meta?: Parameters<typeof captureMeta>[0]) {
  let result: { code: number; details: string } | 'ok' | undefined;
  const call = client.Upload(auth(key), (err) => {
    result = err ? { code: err.code, details: err.details } : 'ok';
  });
  if (meta) call.write({ metadata: captureMeta(meta, '') });
  return { call, result: () => result };
}

/** The ingest in a process of its own (serve.js), optionally under a shell prefix such as `ulimit -n 160 &&`. */
async function spawnIngest(dataDir: string, args: string[], shellPrefix = ''): Promise<{ port: number; child: ChildProcess; stop(): Promise<void> }> {
  const cert = certOf(dataDir);
  const quoted = [SERVE, '--listen', '127.0.0.1:0', '--data', dataDir, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--api-key', API_KEY, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('bash', ['-c', `${shellPrefix} exec '${process.execPath}' ${quoted}`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' } });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening .*:(\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`ingest exited ${c}`)));
  });
  return {
    port,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    },
  };
}

let certOf: (dataDir: string) => ReturnType<typeof makeDevCert>;

async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(100);
  }
}

function stagingFiles(dataDir: string): string[] {
  return fs.readdirSync(path.join(dataDir, 'staging'));
}

describe('ingest trust: bounded resources', () => {
  let dir: string;
  let cert: ReturnType<typeof makeDevCert>;
  const servers: IngestServer[] = [];
  const clients: DataSyncClient[] = [];

  async function start(limits: Partial<IngestLimits>, name: string): Promise<{ server: IngestServer; client: DataSyncClient; dataDir: string; keys: NewDeviceKey[] }> {
    const dataDir = path.join(dir, name);
    const admin = await openKeyAdmin({ dataDir });
    const keys = [await admin.create('attacker'), await admin.create('honest')];
    await admin.close();
    const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: [API_KEY], limits });
    const client = makeClient(`localhost:${server.port}`, cert.caFile);
    servers.push(server);
    clients.push(client);
    return { server, client, dataDir, keys };
  }

  beforeAll(() => {
    dir = tmpDir('hostile-limits');
    cert = makeDevCert(path.join(dir, 'tls'));
    certOf = () => cert;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) s.forceClose();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('bounds uploads per key and in all; an honest key still uploads while an attacker holds its limit', async () => {
    const { client, dataDir, keys } = await start({ maxUploadsPerKey: 10, maxConcurrentUploads: 30, firstMessageMs: 60_000 }, 'slots');
    const [attacker, honest] = keys as [NewDeviceKey, NewDeviceKey];
    const hangs = Array.from({ length: 25 }, (_, i) => hangingUpload(client, attacker.secret, makeCapture({ seqs: [i] })));
    const answered = () => hangs.filter((h) => typeof h.result() === 'object');
    for (let i = 0; i < 100 && answered().length < 15; i++) await sleep(100); // refusals come at once; a loaded host is slow
    await sleep(300); // ...and no more than 15 come
    const refused = answered();
    expect(refused).toHaveLength(15);
    for (const h of refused) expect((h.result() as { code: number }).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const c = makeCapture({ seqs: [1, 2, 3], name: 'honest' });
    expect(await upload(client, captureMeta(c, ''), c.bytes, { key: honest.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    for (const h of hangs) h.call.cancel();
    await sleep(300);
    expect(stagingFiles(dataDir)).toEqual([]);
  });

  it('cuts an upload without metadata after firstMessageMs and one that stalls; a slow but moving one commits', async () => {
    const { client, dataDir, keys } = await start({ firstMessageMs: 400, minBytesPerSecond: 2000, progressWindowMs: 1000 }, 'stall');
    const key = keys[0]!.secret;
    const silent = hangingUpload(client, key);
    const big = makeCapture({ seqs: Array.from({ length: 400 }, (_, i) => i), name: 'stall' });
    const stalled = hangingUpload(client, key, big);
    stalled.call.write({ chunk: big.bytes.subarray(0, 100) });
    // ~8 KB/s in 1 KB pieces: slow, but above the minimum
    const slow = makeCapture({ seqs: Array.from({ length: 600 }, (_, i) => i), name: 'slow' });
    const slowCall = new Promise<unknown>((resolve) => {
      const call = client.Upload(auth(key), (err, res) => resolve(err ? { code: err.code } : res));
      call.write({ metadata: captureMeta(slow, '') });
      let off = 0;
      const t = setInterval(() => {
        call.write({ chunk: slow.bytes.subarray(off, off + 1024) });
        off += 1024;
        if (off >= slow.bytes.length) {
          clearInterval(t);
          call.end();
        }
      }, 125);
    });
    await sleep(2500);
    expect(silent.result()).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect((silent.result() as { details: string }).details).toContain('no upload metadata');
    expect(stalled.result()).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect((stalled.result() as { details: string }).details).toContain('stalled');
    expect(slow.bytes.length / 8000).toBeGreaterThan(1.5); // the slow one really spans several windows
    expect(await slowCall).toMatchObject({ status: 'UPLOAD_STATUS_COMMITTED' });
    expect(stagingFiles(dataDir)).toEqual([]);
    expect((await listReceived(dataDir)).map((e) => e.file_id)).toEqual([slow.id]);
  });

  it('commits nothing from an upload cancelled mid-stream or past its deadline, and leaves no staging', async () => {
    const { client, dataDir, keys } = await start({}, 'cancel');
    const c = makeCapture({ seqs: Array.from({ length: 3000 }, (_, i) => i), name: 'cut' });
    const cancelled = await upload(client, captureMeta(c, ''), c.bytes, {
      key: keys[0]!.secret,
      chunk: 4096,
      halfThen: (call) => setTimeout(() => (call as unknown as { cancel(): void }).cancel(), 100),
    });
    expect(cancelled).toMatchObject({ ok: false, code: grpc.status.CANCELLED });
    // deadline: half the file, then wait past the deadline, then the rest and a clean end
    const r = await new Promise<{ code?: number }>((resolve) => {
      const call = client.Upload(auth(keys[0]!.secret), { deadline: Date.now() + 400 }, (err) => resolve(err ? { code: err.code } : {}));
      call.write({ metadata: captureMeta(c, '') });
      call.write({ chunk: c.bytes.subarray(0, c.bytes.length >> 1) });
      setTimeout(() => {
        call.write({ chunk: c.bytes.subarray(c.bytes.length >> 1) });
        call.end();
      }, 800);
    });
    expect(r.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await sleep(1000);
    expect(await listReceived(dataDir)).toEqual([]);
    expect(stagingFiles(dataDir)).toEqual([]);
  });

  it('closes idle connections, and at the connection cap closes the oldest idle one so an honest edge gets in', async () => {
    const { server, client } = await start({ maxConnections: 20, idleConnectionMs: 1500 }, 'conns');
    const ca = fs.readFileSync(cert.caFile);
    const sessions: http2.ClientHttp2Session[] = [];
    let closed = 0;
    for (let i = 0; i < 60; i++) {
      const s = http2.connect(`https://localhost:${server.port}`, { ca });
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      await new Promise<void>((resolve) => {
        s.once('connect', () => resolve());
        s.once('close', () => resolve());
      });
      sessions.push(s);
    }
    await sleep(200);
    expect(closed).toBeGreaterThanOrEqual(40);
    expect(await health(client)).toMatchObject({ ok: true });
    // the survivors hold no call: they are closed once idle
    await sleep(3000);
    expect(closed).toBe(60);
    for (const s of sessions) s.destroy();
  });

  it('a stampede against a tiny fd limit ends with every file stored exactly once; every refusal is retryable', async () => {
    const dataDir = path.join(dir, 'stampede');
    // the server's default limits are sized from its own fd limit
    const server = await spawnIngest(dataDir, [], 'ulimit -n 160 &&');
    try {
      const port = server.port;
      // 50 edges (a channel each), 10 files each, all at once
      const edges = Array.from({ length: 50 }, () => makeClient(`localhost:${port}`, cert.caFile));
      const statuses = new Map<number, number>();
      const files = edges.flatMap((cl, e) => Array.from({ length: 10 }, (_, i) => ({ cl, c: makeCapture({ seqs: [e * 10 + i], name: `edge${e}` }), part: `edge-${e}` })));
      await Promise.all(
        files.map(async ({ cl, c, part }) => {
          for (let attempt = 0; ; attempt++) {
            const r = await upload(cl, captureMeta(c, part), c.bytes);
            if (r.ok) return;
            statuses.set(r.code, (statuses.get(r.code) ?? 0) + 1);
            if (!RETRYABLE.has(r.code)) throw new Error(`non-retryable ${r.code}: ${r.details}`);
            await sleep(50 + Math.random() * 200 * Math.min(attempt + 1, 10));
          }
        }),
      );
      for (const e of edges) e.close();
      await server.stop();
      const rows = await collect(exportReadings(dataDir));
      expect(rows).toHaveLength(500);
      expect(new Set(rows.map((r) => `${r.part_id}/${r.seq}`)).size).toBe(500);
      for (const code of statuses.keys()) expect(RETRYABLE.has(code), `status ${code}`).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('60 open uploads of 30 MiB each do not hold their bytes in memory (RSS stays low)', async () => {
    const dataDir = path.join(dir, 'open-uploads');
    const server = await spawnIngest(dataDir, ['--limit', 'progressWindowMs=600000', '--limit', 'maxUploadsPerKey=100']);
    try {
      const cl = makeClient(`localhost:${server.port}`, cert.caFile);
      clients.push(cl);
      const piece = Buffer.alloc(1024 * 1024, 3);
      const calls = Array.from({ length: 60 }, (_, i) => {
        const call = cl.Upload(auth(), () => undefined);
        call.write({ metadata: { file_id: `open-${i}`, part_id: 'robot-1', data_type: 'DATA_TYPE_FILE', file_name: `open-${i}.bin`, size: 31 * 1024 * 1024, sha256: Buffer.alloc(32), source: 'x', tags: [] } });
        return call;
      });
      // 30 MiB into each, in 1 MiB chunks, then nothing (never finished)
      for (let mb = 0; mb < 30; mb++) for (const c of calls) c.write({ chunk: piece });
      await waitFor(async () => {
        const staged = stagingFiles(dataDir).map((f) => fs.statSync(path.join(dataDir, 'staging', f)).size);
        return staged.length === 60 && staged.every((n) => n === 30 * 1024 * 1024);
      }, 120_000);
      const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))![1]);
      // 1.8 GiB received and open; what the server holds is bounded by its windows, not the uploads
      expect(hwmKb * 1024).toBeLessThan(400 * 1024 * 1024);
      for (const c of calls) c.cancel();
    } finally {
      await server.stop();
    }
  }, 180_000);

  it('answers an honest Health all along while a 512 MiB capture file is received and checked', async () => {
    // server, uploader and prober in three processes: only the server's own stalls are measured
    const dataDir = path.join(dir, 'big');
    const server = await spawnIngest(dataDir, []);
    try {
      const honest = makeClient(`localhost:${server.port}`, cert.caFile);
      clients.push(honest);
      const up = spawn(process.execPath, [path.join(import.meta.dirname, 'fixtures/big-upload.mjs'), `localhost:${server.port}`, cert.caFile, API_KEY, '65'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines: string[] = [];
      let sending = false;
      up.stdout!.on('data', (d: Buffer) => {
        for (const l of d.toString().split('\n').filter(Boolean)) {
          if (l.startsWith('sending ')) sending = true;
          else lines.push(l);
        }
      });
      const exited = new Promise((r) => up.once('exit', r));
      while (!sending) await sleep(50);
      const latencies: number[] = [];
      while (lines.length === 0) {
        const t = performance.now();
        expect(await health(honest)).toMatchObject({ ok: true });
        latencies.push(performance.now() - t);
        await sleep(20);
      }
      await exited;
      expect(JSON.parse(lines[0]!)).toMatchObject({ status: 'UPLOAD_STATUS_COMMITTED' });
      // Answered all along (the whole-file check blocked the loop for the whole upload: 22 s).
      // The 200 ms bar itself is a latency figure for `pnpm bench` on a quiet machine; here a
      // loaded CI host must not make the test lie either way: the median meets the bar, no
      // answer waits anywhere near the old stall.
      expect(latencies.length).toBeGreaterThan(5);
      const sorted = [...latencies].sort((x, y) => x - y);
      expect(sorted[sorted.length >> 1]).toBeLessThan(200);
      expect(sorted.at(-1)).toBeLessThan(2000);
    } finally {
      await server.stop();
    }
    const listed = await listReceived(dataDir);
    expect(listed).toEqual([expect.objectContaining({ readings: 65 })]);
    expect((listed[0] as { bytes: number }).bytes).toBeGreaterThan(512 * 1024 * 1024);
  }, 180_000);
});
