import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, listReceived, makeDevCert, startIngestServer, type IngestServer } from '@edgecap/ingest';
import type { DataSyncClient } from '@edgecap/proto';
import { API_KEY, captureMeta, collect, fileMeta, health, makeCapture, makeClient, sha256, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

describe('ingest over TLS', () => {
  let dir: string;
  let dataDir: string;
  let server: IngestServer;
  let client: DataSyncClient;
  let caFile: string;

  beforeAll(async () => {
    dir = tmpDir('upload');
    dataDir = path.join(dir, 'data');
    const cert = makeDevCert(path.join(dir, 'tls'));
    caFile = cert.caFile;
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: ['other-key', API_KEY] });
    client = makeClient(`localhost:${server.port}`, caFile);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers Health with version and storage', async () => {
    expect(await health(client)).toMatchObject({ ok: true, version: '0.1.0', storage: 'files' });
  });

  it('commits a capture file once, answers ALREADY_HAVE after, exports each reading once with seq', async () => {
    const c = makeCapture({ seqs: Array.from({ length: 50 }, (_, i) => i) });
    const first = await upload(client, captureMeta(c), c.bytes, { chunk: 1000 });
    expect(first).toEqual({ ok: true, res: { file_id: c.id, status: 'UPLOAD_STATUS_COMMITTED', stored_bytes: c.bytes.length } });
    const again = await upload(client, captureMeta(c), c.bytes, { chunk: 1000 });
    expect(again).toEqual({ ok: true, res: { file_id: c.id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: c.bytes.length } });

    const rows = (await collect(exportReadings(dataDir))).filter((r) => r.file_id === c.id);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(rows[7]).toEqual({
      part_id: 'robot-1',
      resource_kind: 'sensor',
      resource: 'temp',
      method: 'Readings',
      seq: 7,
      time_requested_us: 1007,
      time_received_us: 2007,
      data: { v: 10.5, label: 'r7' },
      file_id: c.id,
    });
    const listed = (await listReceived(dataDir)).filter((e) => e.file_id === c.id);
    expect(listed).toEqual([expect.objectContaining({ type: 'capture', readings: 50, first_seq: 0, last_seq: 49, bytes: c.bytes.length })]);
  });

  it('stores one copy when two uploads of the same file id race', async () => {
    const c = makeCapture({ name: 'race', seqs: Array.from({ length: 2000 }, (_, i) => i) });
    const results = await Promise.all([upload(client, captureMeta(c), c.bytes, { chunk: 4096 }), upload(client, captureMeta(c), c.bytes, { chunk: 4096 })]);
    const statuses = results.map((r) => (r.ok ? r.res.status : `error ${r.code}`)).sort();
    expect(statuses).toEqual(['UPLOAD_STATUS_ALREADY_HAVE', 'UPLOAD_STATUS_COMMITTED']);
    expect((await listReceived(dataDir)).filter((e) => e.file_id === c.id)).toHaveLength(1);
    const rows = (await collect(exportReadings(dataDir))).filter((r) => r.resource === 'race');
    expect(rows).toHaveLength(2000);
    expect(new Set(rows.map((r) => r.seq)).size).toBe(2000);
    expect(fs.readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
  });

  it('exports binary readings as metadata + size + sha256, not bytes', async () => {
    const c = makeCapture({ kind: 'camera', name: 'cam', method: 'ReadImage', seqs: [0, 1], binary: true });
    expect(await upload(client, captureMeta(c, 'robot-1', true), c.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const rows = (await collect(exportReadings(dataDir))).filter((r) => r.file_id === c.id);
    expect(rows[1]).toMatchObject({
      resource: 'cam',
      seq: 1,
      mime_type: 'image/jpeg',
      data: { binary: { size: 1000, sha256: sha256(new Uint8Array(1000).fill(1)).toString('hex'), mime_type: 'image/jpeg' } },
    });
  });

  it('stores an arbitrary file byte for byte under files/<part>/<source>/<name>, 1 MiB chunks', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const r = await upload(client, fileMeta('file-1', 'nested/dir/log.bin', bytes), bytes, { chunk: 1024 * 1024 });
    expect(r).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED', stored_bytes: bytes.length } });
    const stored = path.join(dataDir, 'files', 'robot-1', 'logs', 'nested', 'dir', 'log.bin');
    expect(fs.readFileSync(stored).equals(bytes)).toBe(true);
    expect((await listReceived(dataDir)).find((e) => e.file_id === 'file-1')).toMatchObject({ type: 'file', file_name: 'nested/dir/log.bin', bytes: bytes.length });
    // A newer version of the same name (new id) is kept beside it, the first is untouched.
    const v2 = Buffer.from('version 2');
    expect(await upload(client, fileMeta('file-2', 'nested/dir/log.bin', v2), v2)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    expect(fs.readFileSync(stored).equals(bytes)).toBe(true);
    expect(fs.readFileSync(`${stored}~file-2`).toString()).toBe('version 2');
  });
  it('a client that cancels mid-upload leaves nothing behind', async () => {
    const c = makeCapture({ name: 'cancelled', seqs: Array.from({ length: 5000 }, (_, i) => i) });
    const r = await upload(client, captureMeta(c), c.bytes, { chunk: 4096, halfThen: (call) => setTimeout(() => call.cancel(), 50) });
    expect(r).toMatchObject({ ok: false, code: 1 /* CANCELLED */ });
    while (fs.readdirSync(path.join(dataDir, 'staging')).length > 0) await new Promise((res) => setTimeout(res, 10));
    expect((await listReceived(dataDir)).some((e) => e.file_id === c.id)).toBe(false);
    expect(await upload(client, captureMeta(c), c.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
  });
});
