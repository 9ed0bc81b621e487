import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, listReceived, makeDevCert, startIngestServer, type IngestServer } from '@edgecap/ingest';
import type { DataSyncClient } from '@edgecap/proto';
import { captureMeta, collect, encodeUploadRequest, fileMeta, health, makeCapture, makeClient, rawUpload, sha256, storedBytes, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

describe('bad requests are refused with a status that says why', () => {
  let dir: string;
  let dataDir: string;
  let server: IngestServer;
  let client: DataSyncClient;
  let caFile: string;
  const good = makeCapture({ seqs: [0, 1, 2, 3, 4] });
  let snapshot: string;

  /** Everything stored (index listing, readings, stored bytes) as one comparable string. */
  async function stored(): Promise<string> {
    const list = await listReceived(dataDir);
    const rows = await collect(exportReadings(dataDir));
    const blobs: string[] = [];
    for (const e of list) blobs.push(sha256(await storedBytes(dataDir, e.part_id, e.file_id)).toString('hex'));
    return JSON.stringify({ list: list.map(({ received_at_ms: _, ...e }) => e), rows, blobs });
  }

  beforeAll(async () => {
    dir = tmpDir('reject');
    dataDir = path.join(dir, 'data');
    const cert = makeDevCert(path.join(dir, 'tls'));
    caFile = cert.caFile;
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: ['k1'], maxFileBytes: 1024 * 1024 });
    client = makeClient(`localhost:${server.port}`, caFile);
    const r = await upload(client, captureMeta(good), good.bytes, { key: 'k1' });
    expect(r).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const f = Buffer.from('keep me');
    expect(await upload(client, fileMeta('keep', 'a/keep.txt', f), f, { key: 'k1' })).toMatchObject({ ok: true });
    snapshot = await stored();
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectIntact = async (): Promise<void> => {
    expect(await stored()).toBe(snapshot);
    expect(fs.readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
  };

  it('wrong API key → UNAUTHENTICATED', async () => {
    const c = makeCapture({ seqs: [0] });
    expect(await upload(client, captureMeta(c), c.bytes, { key: 'wrong' })).toEqual({
      ok: false,
      code: grpc.status.UNAUTHENTICATED,
      details: 'missing, invalid, expired or revoked credential (send authorization: Bearer <key or access token>)',
    });
    expect(await upload(client, captureMeta(c), c.bytes, { key: null })).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED });
    expect(await health(client, 'k1-but-longer')).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED });
    await expectIntact();
  });

  it('first message not metadata → INVALID_ARGUMENT', async () => {
    const c = makeCapture({ seqs: [0, 1] });
    expect(await upload(client, captureMeta(c), c.bytes, { key: 'k1', chunksFirst: true })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'first message must be metadata, got a chunk',
    });
    expect(await upload(client, undefined, Buffer.alloc(0), { key: 'k1' })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'upload ended without metadata',
    });
    await expectIntact();
  });

  it('checksum mismatch → INVALID_ARGUMENT naming both digests', async () => {
    const c = makeCapture({ seqs: [0, 1] });
    const meta = captureMeta(c);
    const wrong = Buffer.alloc(32, 7);
    const r = await upload(client, { ...meta, sha256: wrong }, c.bytes, { key: 'k1', chunk: 10 });
    expect(r).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: `checksum mismatch: sha256 of the received bytes is ${sha256(c.bytes).toString('hex')}, metadata.sha256 is ${wrong.toString('hex')}`,
    });
    expect((await listReceived(dataDir)).some((e) => e.file_id === c.id)).toBe(false);
    await expectIntact();
  });

  it('size mismatch → INVALID_ARGUMENT (too few and too many bytes)', async () => {
    const c = makeCapture({ seqs: [0, 1] });
    const meta = captureMeta(c);
    expect(await upload(client, { ...meta, size: c.bytes.length + 5 }, c.bytes, { key: 'k1' })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: `size mismatch: metadata.size is ${c.bytes.length + 5} bytes, received ${c.bytes.length}`,
    });
    expect(await upload(client, { ...meta, size: 10 }, c.bytes, { key: 'k1', chunk: 7 })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'size mismatch: received more than the declared 10 bytes',
    });
    await expectIntact();
  });

  it('oversize → INVALID_ARGUMENT before any byte is stored', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1);
    expect(await upload(client, fileMeta('big', 'big.bin', big), big, { key: 'k1', chunk: 256 * 1024 })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'file size 1048577 exceeds the server limit of 1048576 bytes',
    });
    await expectIntact();
  });

  it('file names that escape the root → INVALID_ARGUMENT', async () => {
    const b = Buffer.from('evil');
    const cases: [string, string][] = [
      ['../escape.txt', 'file_name "../escape.txt" refused: contains a ".." segment'],
      ['a/../../x', 'file_name "a/../../x" refused: contains a ".." segment'],
      ['/etc/passwd', 'file_name "/etc/passwd" refused: absolute paths are not allowed'],
      ['a//b', 'file_name "a//b" refused: contains an empty or "." segment'],
      ['a\\..\\b', 'file_name "a\\\\..\\\\b" refused: contains a backslash (use / as separator)'],
    ];
    for (const [name, details] of cases) {
      expect(await upload(client, fileMeta(`evil-${cases.findIndex((c) => c[0] === name)}`, name, b), b, { key: 'k1' })).toEqual({
        ok: false,
        code: grpc.status.INVALID_ARGUMENT,
        details,
      });
    }
    expect(fs.existsSync(path.join(dataDir, 'files', 'robot-1', 'escape.txt'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'escape.txt'))).toBe(false);
    await expectIntact();
  });

  it('unknown fields → INVALID_ARGUMENT (top level and inside metadata)', async () => {
    const c = makeCapture({ seqs: [0] });
    const meta = encodeUploadRequest({ metadata: captureMeta(c) });
    const chunk = encodeUploadRequest({ chunk: c.bytes });
    // field 99, varint 1, appended to an otherwise valid UploadRequest
    const top = await rawUpload(`localhost:${server.port}`, caFile, [Buffer.concat([meta, Buffer.from([0x98, 0x06, 0x01])]), chunk], 'k1');
    expect(top).toEqual({ ok: false, code: grpc.status.INVALID_ARGUMENT, details: 'unknown field number 99 (wire type 0) in edgecap.sync.v1.UploadRequest' });
    // field 13 (string) inside FileMetadata: re-wrap the metadata bytes with one extra field
    const inner = Buffer.concat([meta.subarray(2 + (meta[1]! >= 0x80 ? 1 : 0)), Buffer.from([0x6a, 0x01, 0x41])]);
    const len = inner.length;
    const wrapped = Buffer.concat([Buffer.from([0x0a]), len < 128 ? Buffer.from([len]) : Buffer.from([(len & 0x7f) | 0x80, len >> 7]), inner]);
    const nested = await rawUpload(`localhost:${server.port}`, caFile, [wrapped, chunk], 'k1');
    expect(nested).toEqual({ ok: false, code: grpc.status.INVALID_ARGUMENT, details: 'unknown field number 13 (wire type 2) in edgecap.sync.v1.FileMetadata' });
    // sanity: the same bytes without the extra field are accepted
    expect(await rawUpload(`localhost:${server.port}`, caFile, [meta, chunk], 'k1')).toMatchObject({ ok: true });
    snapshot = await stored();
  });

  it('capture bytes whose header id differs from file_id → INVALID_ARGUMENT', async () => {
    const c = makeCapture({ seqs: [0, 1] });
    const meta = { ...captureMeta(c), file_id: 'some-other-id' };
    expect(await upload(client, meta, c.bytes, { key: 'k1' })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: `capture file header id "${c.id}" does not match metadata.file_id "some-other-id"`,
    });
    const junk = Buffer.from('definitely not a capture file');
    expect(await upload(client, { ...meta, size: junk.length, sha256: sha256(junk) }, junk, { key: 'k1' })).toEqual({
      ok: false,
      code: grpc.status.INVALID_ARGUMENT,
      details: 'not a valid edgecap capture file: not an edgecap capture file',
    });
    await expectIntact();
  });

  it('insecure on a non-loopback address is refused; insecure loopback works', async () => {
    await expect(startIngestServer({ listen: '0.0.0.0:0', dataDir: path.join(dir, 'd2'), insecure: true, apiKeys: ['k'] })).rejects.toThrow(
      'refusing plain-text (insecure) ingest on non-loopback address 0.0.0.0: use TLS (--tls-cert/--tls-key) or listen on 127.0.0.1',
    );
    await expect(startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'd2'), apiKeys: ['k'] })).rejects.toThrow('ingest server needs TLS');
    const plain = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'd3'), insecure: true, apiKeys: ['k'] });
    const c = makeClient(plain.address);
    expect(await health(c, 'k')).toMatchObject({ ok: true, storage: 'files' });
    c.close();
    await plain.close();
  });
});
