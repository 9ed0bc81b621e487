import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, listReceived, makeDevCert, type DevCert } from '@edgecap/ingest';
import { captureMeta, collect, health, makeCapture, makeClient, sha256, stagingBytes, storedBytes, tmpDir, until, upload, type UploadResult } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const SERVE = fileURLToPath(new URL('../dist/serve.js', import.meta.url));

interface Child {
  proc: ChildProcess;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startChild(dataDir: string, cert: DevCert): Promise<Child> {
  const proc = spawn(process.execPath, [SERVE, '--listen', '127.0.0.1:0', '--data', dataDir, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile], {
    env: { ...process.env, EDGECAP_API_KEY: 'test-key-1', EDGECAP_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`serve.js exited with ${code} before listening`)));
  });
  const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
  if (!m) throw new Error(`unexpected first line: ${line}`);
  return { proc, port: Number(m[1]), exited };
}

describe('ingest server killed with SIGKILL', () => {
  let dir: string;
  let cert: DevCert;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = tmpDir('crash');
    cert = makeDevCert(path.join(dir, 'tls'));
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('mid-upload: no half file visible, committed files intact, the re-upload commits once', async () => {
    const dataDir = path.join(dir, 'one');
    let child = await startChild(dataDir, cert);
    children.push(child.proc);
    let client = makeClient(`localhost:${child.port}`, cert.caFile);
    const a = makeCapture({ name: 'a', seqs: Array.from({ length: 100 }, (_, i) => i) });
    expect(await upload(client, captureMeta(a), a.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });

    // B: send metadata + half of the chunks, wait until the server has staged bytes, SIGKILL.
    const b = makeCapture({ name: 'b', seqs: Array.from({ length: 20000 }, (_, i) => i) });
    expect(b.bytes.length).toBeGreaterThan(500_000);
    const interrupted = upload(client, captureMeta(b), b.bytes, {
      chunk: 16 * 1024,
      halfThen: () => {
        void until(() => stagingBytes(dataDir) > 0, 'the half upload in staging').then(() => child.proc.kill('SIGKILL'));
      },
    });
    expect((await child.exited).signal).toBe('SIGKILL');
    expect(await interrupted).toMatchObject({ ok: false });
    client.close();

    // Server down: the export sees only A, and A byte for byte.
    const listed = await listReceived(dataDir);
    expect(listed.map((e) => e.file_id)).toEqual([a.id]);
    expect(stagingBytes(dataDir)).toBeGreaterThan(0); // the half upload sits in staging only
    expect(sha256(await storedBytes(dataDir, 'robot-1', a.id)).equals(sha256(a.bytes))).toBe(true);

    child = await startChild(dataDir, cert);
    children.push(child.proc);
    client = makeClient(`localhost:${child.port}`, cert.caFile);
    expect(fs.readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
    expect(await upload(client, captureMeta(b), b.bytes, { chunk: 16 * 1024 })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    expect(await upload(client, captureMeta(b), b.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_ALREADY_HAVE' } });
    expect(await upload(client, captureMeta(a), a.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_ALREADY_HAVE' } });
    const rows = await collect(exportReadings(dataDir));
    expect(rows.filter((r) => r.resource === 'a').map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(rows.filter((r) => r.resource === 'b').map((r) => r.seq)).toEqual(Array.from({ length: 20000 }, (_, i) => i));
    client.close();

    // SIGTERM stops it gracefully.
    child.proc.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 0, signal: null });
  });

  it('many uploads in flight: after restart every file is stored exactly once', async () => {
    const dataDir = path.join(dir, 'many');
    let child = await startChild(dataDir, cert);
    children.push(child.proc);
    let client = makeClient(`localhost:${child.port}`, cert.caFile);
    const files = Array.from({ length: 30 }, (_, i) => makeCapture({ name: `s${i}`, seqs: Array.from({ length: 3000 }, (_, k) => k) }));
    const acked = new Set<string>();
    let killed = false;
    const results = await Promise.all(
      files.map((c) =>
        upload(client, captureMeta(c), c.bytes, { chunk: 2048 }).then((r: UploadResult) => {
          if (r.ok) acked.add(c.id);
          if (r.ok && !killed) {
            killed = true; // kill right after the first commit is acknowledged
            child.proc.kill('SIGKILL');
          }
          return r;
        }),
      ),
    );
    expect((await child.exited).signal).toBe('SIGKILL');
    expect(acked.size).toBeGreaterThan(0);
    expect(results.some((r) => !r.ok)).toBe(true);
    client.close();

    child = await startChild(dataDir, cert);
    children.push(child.proc);
    client = makeClient(`localhost:${child.port}`, cert.caFile);
    expect(await health(client)).toMatchObject({ ok: true });
    for (const c of files) {
      const r = await upload(client, captureMeta(c), c.bytes);
      expect(r.ok).toBe(true);
      // Whatever was acknowledged before the kill must be known after it.
      if (acked.has(c.id) && r.ok) expect(r.res.status).toBe('UPLOAD_STATUS_ALREADY_HAVE');
    }
    const rows = await collect(exportReadings(dataDir));
    expect(rows).toHaveLength(30 * 3000);
    expect(new Set(rows.map((r) => `${r.resource}/${r.seq}`)).size).toBe(30 * 3000);
    expect((await listReceived(dataDir)).length).toBe(30);
    client.close();
    child.proc.kill('SIGTERM');
    expect((await child.exited).code).toBe(0);
  });

  it('files left by a crash between rename and index put are removed at start', async () => {
    const dataDir = path.join(dir, 'orphans');
    let child = await startChild(dataDir, cert);
    children.push(child.proc);
    const client = makeClient(`localhost:${child.port}`, cert.caFile);
    const a = makeCapture({ name: 'kept', seqs: [0, 1, 2] });
    expect(await upload(client, captureMeta(a), a.bytes)).toMatchObject({ ok: true });
    client.close();
    child.proc.kill('SIGKILL');
    await child.exited;
    // Simulate the crash window: a renamed blob, an arbitrary file, a pack and a staged part without index entries.
    const orphanBlob = path.join(dataDir, 'blobs', 'zz', 'zz-orphan.capture');
    const orphanFile = path.join(dataDir, 'files', 'robot-1', 'logs', 'half.txt');
    const orphanPack = path.join(dataDir, 'packs', 'robot-1', '2026-01-01T00', 'half.pack');
    for (const f of [orphanBlob, orphanFile, orphanPack]) {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, 'x');
    }
    fs.writeFileSync(path.join(dataDir, 'staging', 'abc.part'), 'partial');
    child = await startChild(dataDir, cert);
    children.push(child.proc);
    expect(fs.existsSync(orphanBlob)).toBe(false);
    expect(fs.existsSync(orphanFile)).toBe(false);
    expect(fs.existsSync(orphanPack)).toBe(false);
    expect(fs.readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
    expect((await listReceived(dataDir)).map((e) => e.file_id)).toEqual([a.id]);
    child.proc.kill('SIGTERM');
    await child.exited;
  });
});
