/**
 * UploadBatch (issue #16): several small files per call, each checked as an Upload is, committed
 * together, one result per file. Real server, TLS, files + LMDB storage.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listReceived, makeDevCert, openKeyAdmin, startIngestServer, type IngestServer, type NewDeviceKey } from '@edgecap/ingest';
import type { BatchFileResult__Output, DataSyncClient, FileMetadata } from '@edgecap/proto';
import { API_KEY, auth, captureMeta, fileMeta, makeCapture, makeClient, sha256, tmpDir } from './helpers.js';

type BatchResult = { ok: true; results: BatchFileResult__Output[] } | { ok: false; code: number; details: string };
type Item = { meta: FileMetadata; bytes: Buffer };

/** One UploadBatch call: metadata + one chunk per file; `cutAfter` cancels the call after that many files plus half the next. */
function uploadBatch(client: DataSyncClient, items: Item[], opts: { key?: string; cutAfter?: number } = {}): Promise<BatchResult> {
  return new Promise((resolve) => {
    const call = client.UploadBatch(auth(opts.key ?? API_KEY), (err, res) => (err ? resolve({ ok: false, code: err.code, details: err.details }) : resolve({ ok: true, results: res!.results })));
    items.forEach((it, i) => {
      if (opts.cutAfter !== undefined && i > opts.cutAfter) return;
      call.write({ metadata: it.meta });
      if (opts.cutAfter === i) {
        call.write({ chunk: it.bytes.subarray(0, it.bytes.length >> 1) });
        // Let the server take what was sent, then cut the call (the edge stopped or the link broke).
        setTimeout(() => call.cancel(), 300);
        return;
      }
      if (it.bytes.length > 0) call.write({ chunk: it.bytes });
    });
    if (opts.cutAfter === undefined) call.end();
  });
}

const capture = (name: string, part = 'robot-1', n = 20): Item => {
  const c = makeCapture({ seqs: Array.from({ length: n }, (_, i) => i), name });
  return { meta: captureMeta(c, part), bytes: c.bytes };
};

describe('UploadBatch', () => {
  let dir: string;
  let dataDir: string;
  let server: IngestServer;
  let client: DataSyncClient;
  let keyA: NewDeviceKey;
  let keyB: NewDeviceKey;

  beforeAll(async () => {
    dir = tmpDir('batch');
    dataDir = path.join(dir, 'data');
    const cert = makeDevCert(path.join(dir, 'tls'));
    const admin = await openKeyAdmin({ dataDir });
    keyA = await admin.create('robot-a');
    keyB = await admin.create('robot-b');
    await admin.close();
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: [API_KEY], limits: { maxBatchFiles: 8, maxBatchBytes: 256 * 1024 } });
    client = makeClient(`localhost:${server.port}`, cert.caFile);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const stored = async (ids: string[]): Promise<Map<string, number>> => {
    const count = new Map<string, number>();
    for (const e of await listReceived(dataDir)) if (ids.includes(e.file_id)) count.set(e.file_id, (count.get(e.file_id) ?? 0) + 1);
    return count;
  };

  it('commits each file of a mixed batch exactly once; the same batch again is ALREADY_HAVE per file', async () => {
    const log = Buffer.from('line 1\nline 2\n');
    const bin = makeCapture({ seqs: [0, 1, 2], name: 'cam', binary: true });
    const items: Item[] = [capture('m1'), { meta: captureMeta(bin, 'robot-1', true), bytes: bin.bytes }, { meta: fileMeta('f-mixed-1', 'a/b.log', log), bytes: log }, capture('m2'), { meta: fileMeta('f-empty-1', 'empty.log', Buffer.alloc(0)), bytes: Buffer.alloc(0) }];
    const ids = items.map((i) => i.meta.file_id!);
    const r1 = await uploadBatch(client, items);
    expect(r1).toMatchObject({ ok: true });
    expect((r1 as { results: BatchFileResult__Output[] }).results.map((r) => [r.file_id, r.status, r.stored_bytes])).toEqual(items.map((i) => [i.meta.file_id, 'UPLOAD_STATUS_COMMITTED', i.bytes.length]));
    const r2 = await uploadBatch(client, items);
    expect((r2 as { results: BatchFileResult__Output[] }).results.map((r) => r.status)).toEqual(items.map(() => 'UPLOAD_STATUS_ALREADY_HAVE'));
    expect([...(await stored(ids)).values()]).toEqual(ids.map(() => 1));
    expect(fs.readFileSync(path.join(dataDir, 'files', 'robot-1', 'logs', 'a', 'b.log'))).toEqual(log);
  });

  it('rejects only the bad files (corrupt capture, wrong sha256) and commits the rest', async () => {
    const good1 = capture('g1');
    const corrupt = capture('bad-frames');
    corrupt.bytes = Buffer.from(corrupt.bytes);
    corrupt.bytes.fill(0, 0, 8); // magic gone: not a capture file
    corrupt.meta.sha256 = sha256(corrupt.bytes); // honest digest of the damaged bytes
    const wrongSha = capture('bad-sha');
    wrongSha.meta.sha256 = sha256(Buffer.from('something else'));
    const good2 = capture('g2');
    const items = [good1, corrupt, wrongSha, good2];
    const r = await uploadBatch(client, items);
    expect(r.ok).toBe(true);
    const res = (r as { results: BatchFileResult__Output[] }).results;
    expect(res.map((x) => x.status)).toEqual(['UPLOAD_STATUS_COMMITTED', 'UPLOAD_STATUS_REJECTED', 'UPLOAD_STATUS_REJECTED', 'UPLOAD_STATUS_COMMITTED']);
    expect(res[1]).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, file_id: corrupt.meta.file_id });
    expect(res[1]!.message).toContain(corrupt.meta.file_id!);
    expect(res[1]!.message).toMatch(/not a valid edgecap capture file/);
    expect(res[2]).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(res[2]!.message).toMatch(/checksum mismatch/);
    const s = await stored(items.map((i) => i.meta.file_id!));
    expect([s.get(good1.meta.file_id!), s.get(corrupt.meta.file_id!), s.get(wrongSha.meta.file_id!), s.get(good2.meta.file_id!)]).toEqual([1, undefined, undefined, 1]);
  });

  it("refuses a device key's file of another part (PERMISSION_DENIED for that file) and stores nothing of that part", async () => {
    const own = capture('own-b', 'robot-b');
    const spoofMeta = capture('spoof-a', 'robot-a');
    // Its own part in the metadata, another's in the capture header: refused as well.
    const c = makeCapture({ seqs: [0, 1], name: 'spoof-hdr', part_id: 'robot-a' });
    const spoofHeader: Item = { meta: captureMeta(c, 'robot-b'), bytes: c.bytes };
    const r = await uploadBatch(client, [spoofMeta, own, spoofHeader], { key: keyB.secret });
    const res = (r as { results: BatchFileResult__Output[] }).results;
    expect(res.map((x) => [x.status, x.code])).toEqual([
      ['UPLOAD_STATUS_REJECTED', grpc.status.PERMISSION_DENIED],
      ['UPLOAD_STATUS_COMMITTED', 0],
      ['UPLOAD_STATUS_REJECTED', grpc.status.PERMISSION_DENIED],
    ]);
    expect(res[0]!.message).toContain(keyB.key_id);
    const all = await listReceived(dataDir);
    expect(all.filter((e) => e.part_id === 'robot-a')).toEqual([]);
    expect(all.filter((e) => e.file_id === own.meta.file_id).map((e) => e.part_id)).toEqual(['robot-b']);
    expect(keyA.part_id).toBe('robot-a');
  });

  it('refuses a batch over its file or byte limit as a whole (INVALID_ARGUMENT naming the limit), storing nothing', async () => {
    const many = Array.from({ length: 9 }, (_, i) => capture(`many-${i}`, 'robot-1', 2));
    const r1 = await uploadBatch(client, many);
    expect(r1).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((r1 as { details: string }).details).toMatch(/more than 8 files \(limit maxBatchFiles\)/);
    const big = Array.from({ length: 3 }, (_, i) => capture(`big-${i}`, 'robot-1', 2400)); // ~100 KiB each
    expect(big.reduce((a, b) => a + b.bytes.length, 0)).toBeGreaterThan(256 * 1024);
    const r2 = await uploadBatch(client, big);
    expect(r2).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((r2 as { details: string }).details).toMatch(/limit maxBatchBytes/);
    expect((await stored([...many, ...big].map((i) => i.meta.file_id!))).size).toBe(0);
  });

  it('a batch cut mid-way stores nothing half-written; the retry ends with every file exactly once', async () => {
    const items = [capture('cut-1'), capture('cut-2'), capture('cut-3', 'robot-1', 400)];
    const ids = items.map((i) => i.meta.file_id!);
    const r1 = await uploadBatch(client, items, { cutAfter: 2 });
    expect(r1).toMatchObject({ ok: false, code: grpc.status.CANCELLED });
    // grpc-js's cancel half-closes before its RST_STREAM, so the server may see the files sent
    // whole (and commit them, verified); the cut file is never stored, and no staging is left.
    await new Promise((r) => setTimeout(r, 500));
    const after = await stored(ids);
    expect(after.get(ids[2]!)).toBeUndefined();
    for (const e of await listReceived(dataDir)) if (ids.includes(e.file_id)) expect(e.bytes).toBe(items[ids.indexOf(e.file_id)]!.bytes.length);
    expect(fs.readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
    const r2 = await uploadBatch(client, items);
    expect((r2 as { results: BatchFileResult__Output[] }).results.map((x) => x.status)).toEqual(ids.map((id) => (after.has(id) ? 'UPLOAD_STATUS_ALREADY_HAVE' : 'UPLOAD_STATUS_COMMITTED')));
    const r3 = await uploadBatch(client, items);
    expect((r3 as { results: BatchFileResult__Output[] }).results.map((x) => x.status)).toEqual(ids.map(() => 'UPLOAD_STATUS_ALREADY_HAVE'));
    expect([...(await stored(ids)).values()]).toEqual([1, 1, 1]);
  });
});
