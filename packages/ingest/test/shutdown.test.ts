/**
 * close(): running calls get shutdownGraceMs to finish, then are cancelled and every connection
 * dropped, so an operator's SIGTERM always ends the server. Nothing is lost either way: a file cut
 * by the shutdown is not stored, and its re-upload to the next server commits once.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDevCert, startIngestServer, type IngestServer } from '@edgecap/ingest';
import { API_KEY, captureMeta, makeCapture, makeClient, stagingBytes, storedBytes, tmpDir, until, upload, type UploadResult } from './helpers.js';

let dir: string;
let cert: ReturnType<typeof makeDevCert>;

beforeAll(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
  dir = tmpDir('shutdown');
  cert = makeDevCert(path.join(dir, 'tls'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function start(dataDir: string, shutdownGraceMs: number): Promise<IngestServer> {
  return startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: [API_KEY], shutdownGraceMs });
}

const CHUNK = 16 * 1024;

/** An upload that sends its metadata and the first half of its chunks, then waits for `rest`. */
function halfUpload(server: IngestServer, c: ReturnType<typeof makeCapture>): { result: Promise<UploadResult>; rest: () => void; close: () => void } {
  const client = makeClient(`localhost:${server.port}`, cert.caFile);
  let call!: grpc.ClientWritableStream<unknown>;
  const result = upload(client, captureMeta(c, 'robot-1', true), c.bytes, { chunk: CHUNK, halfThen: (x) => (call = x) });
  // where upload() stopped: the first of the second half of its chunks
  const from = Math.floor(Math.ceil(c.bytes.length / CHUNK) / 2) * CHUNK;
  const rest = (): void => {
    for (let o = from; o < c.bytes.length; o += CHUNK) call.write({ chunk: c.bytes.subarray(o, o + CHUNK) });
    call.end();
  };
  return { result, rest, close: () => client.close() };
}

/** A server (data dir `name`) with one upload of a 400 KB capture file half received. */
async function underway(name: string, shutdownGraceMs: number) {
  const dataDir = path.join(dir, name);
  const server = await start(dataDir, shutdownGraceMs);
  const c = makeCapture({ seqs: Array.from({ length: 400 }, (_, i) => i), binary: true });
  const held = halfUpload(server, c);
  await until(() => stagingBytes(dataDir) >= c.bytes.length / 4, 'the half upload in staging');
  return { dataDir, server, c, held };
}

describe('ingest close', () => {
  it('a call that never finishes is cancelled after the grace; close ends; the file re-uploads to the next server once', async () => {
    const { dataDir, server, c, held } = await underway('stuck', 300);
    // Without the grace this waits for the ingest's progress window (60 s): past the test's timeout.
    await server.close();
    const out = await held.result;
    held.close();
    expect(out.ok).toBe(false);
    if (!out.ok) expect([grpc.status.CANCELLED, grpc.status.UNAVAILABLE, grpc.status.INTERNAL]).toContain(out.code);

    // Storage was released (the next server opens the same data dir), nothing of the cut file is stored.
    const next = await start(dataDir, 300);
    try {
      await expect(storedBytes(dataDir, 'robot-1', c.id)).rejects.toThrow(/holds no file/);
      const client = makeClient(`localhost:${next.port}`, cert.caFile);
      const again = await upload(client, captureMeta(c, 'robot-1', true), c.bytes);
      client.close();
      expect(again.ok && again.res.status).toBe('UPLOAD_STATUS_COMMITTED');
      expect(Buffer.from(await storedBytes(dataDir, 'robot-1', c.id)).equals(c.bytes)).toBe(true);
    } finally {
      await next.close();
    }
  }, 30_000);

  it('a call that finishes within the grace commits; close waits for it', async () => {
    const { dataDir, server, c, held } = await underway('graceful', 20_000);
    const closed = server.close();
    held.rest();
    const out = await held.result;
    held.close();
    await closed;
    expect(out.ok && out.res.status).toBe('UPLOAD_STATUS_COMMITTED');
    expect(Buffer.from(await storedBytes(dataDir, 'robot-1', c.id)).equals(c.bytes)).toBe(true);
  }, 30_000);
});
