import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodeFileStart, FrameEncoder, type GapReason, type ReadingAnnotations } from '@edgecap/format';
import { readReceived } from '@edgecap/ingest';
import { dataSyncService, loadSyncProto, type DataSyncClient, type FileMetadata, type UploadResponse__Output } from '@edgecap/proto';

export const API_KEY = 'test-key-1';

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-ingest-${prefix}-`));
}

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** The stored bytes of a committed file (a small capture file sits in a pack with others). */
export async function storedBytes(dataDir: string, partId: string, fileId: string): Promise<Uint8Array> {
  const b = await readReceived(dataDir, partId, fileId);
  if (!b) throw new Error(`${dataDir} holds no file ${partId}/${fileId}`);
  return b;
}

export interface CaptureSpec {
  id?: string;
  kind?: string;
  name?: string;
  method?: string;
  part_id?: string;
  seqs: number[];
  gaps?: [number, number, GapReason][];
  binary?: boolean;
  /** Binary only: a viam image's annotations on every reading. */
  annotations?: ReadingAnnotations;
}

/** A real capture file made with @edgecap/format. */
export function makeCapture(spec: CaptureSpec): { id: string; bytes: Buffer; kind: string; name: string; method: string } {
  const kind = spec.kind ?? 'sensor';
  const name = spec.name ?? 'temp';
  const method = spec.method ?? 'Readings';
  const { bytes: start, header } = encodeFileStart({
    ...(spec.id ? { id: spec.id } : {}),
    kind,
    name,
    method,
    type: spec.binary ? 'binary' : 'tabular',
    tags: [],
    start_us: 1_700_000_000_000_000,
    ...(spec.part_id ? { part_id: spec.part_id } : {}),
    ...(spec.binary ? { mime_type: 'image/jpeg' } : {}),
  });
  const enc = new FrameEncoder();
  const parts: Buffer[] = [Buffer.from(start)];
  const buf = new Uint8Array(1 << 20);
  for (const seq of spec.seqs) {
    const data = spec.binary ? new Uint8Array(1000).fill(seq & 0xff) : { v: seq * 1.5, label: `r${seq}` };
    const n = enc.reading(buf, 0, seq, 1000 + seq, 2000 + seq, data, spec.binary ? 'image/jpeg' : undefined, spec.annotations);
    parts.push(Buffer.from(buf.subarray(0, n)));
  }
  for (const [a, b, r] of spec.gaps ?? []) parts.push(Buffer.from(enc.gap(a, b, r, 5)));
  return { id: header.id, bytes: Buffer.concat(parts), kind, name, method };
}

export function captureMeta(c: { id: string; bytes: Buffer; kind: string; name: string; method: string }, part = 'robot-1', binary = false): FileMetadata {
  return {
    file_id: c.id,
    part_id: part,
    resource_kind: c.kind,
    resource_name: c.name,
    method: c.method,
    data_type: binary ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR',
    tags: ['t1'],
    size: c.bytes.length,
    sha256: sha256(c.bytes),
    mtime_ms: 1,
    source: 'capture',
  };
}

export function fileMeta(id: string, fileName: string, bytes: Buffer, part = 'robot-1', source = 'logs'): FileMetadata {
  return { file_id: id, part_id: part, data_type: 'DATA_TYPE_FILE', file_name: fileName, size: bytes.length, sha256: sha256(bytes), mtime_ms: 1, source, tags: [] };
}

export function makeClient(address: string, caFile?: string): DataSyncClient {
  const Ctor = loadSyncProto().edgecap.sync.v1.DataSync;
  const creds = caFile ? grpc.credentials.createSsl(fs.readFileSync(caFile)) : grpc.credentials.createInsecure();
  return new Ctor(address, creds, { 'grpc.max_send_message_length': 32 * 1024 * 1024 }) as unknown as DataSyncClient;
}

export function auth(key = API_KEY): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}

export type UploadResult = { ok: true; res: UploadResponse__Output } | { ok: false; code: number; details: string };

/** Upload: metadata then chunks (or any message list via `messages`). */
export function upload(
  client: DataSyncClient,
  meta: FileMetadata | undefined,
  bytes: Buffer,
  opts: { chunk?: number; key?: string | null; chunksFirst?: boolean; halfThen?: (call: grpc.ClientWritableStream<unknown>) => void } = {},
): Promise<UploadResult> {
  return new Promise((resolve) => {
    const md = opts.key === null ? new grpc.Metadata() : auth(opts.key ?? API_KEY);
    const call = client.Upload(md, (err, res) => {
      if (err) resolve({ ok: false, code: err.code, details: err.details });
      else resolve({ ok: true, res: res! });
    });
    const size = opts.chunk ?? 64 * 1024;
    const chunks: Buffer[] = [];
    for (let o = 0; o < bytes.length; o += size) chunks.push(bytes.subarray(o, o + size));
    if (!opts.chunksFirst && meta) call.write({ metadata: meta });
    const half = Math.floor(chunks.length / 2);
    for (let i = 0; i < chunks.length; i++) {
      if (opts.halfThen && i === half) {
        opts.halfThen(call as unknown as grpc.ClientWritableStream<unknown>);
        return;
      }
      call.write({ chunk: chunks[i] });
    }
    if (opts.chunksFirst && meta) call.write({ metadata: meta });
    call.end();
  });
}

/** Upload hand-made protobuf bytes (to send what the typed client cannot: unknown fields). */
export function rawUpload(address: string, caFile: string, messages: Buffer[], key = API_KEY): Promise<UploadResult> {
  const client = new grpc.Client(address, grpc.credentials.createSsl(fs.readFileSync(caFile)));
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      '/edgecap.sync.v1.DataSync/Upload',
      (b: Buffer) => b,
      (b: Buffer) => b,
      auth(key),
      (err, res) => {
        client.close();
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else resolve({ ok: true, res: res as unknown as UploadResponse__Output });
      },
    );
    for (const m of messages) call.write(m);
    call.end();
  });
}

/** Serialize an UploadRequest with the contract's own serializer. */
export function encodeUploadRequest(msg: unknown): Buffer {
  return dataSyncService().Upload!.requestSerialize(msg);
}

export function health(client: DataSyncClient, key = API_KEY): Promise<{ ok: boolean; code?: number; details?: string; version?: string; storage?: string }> {
  return new Promise((resolve) =>
    client.Health({}, auth(key), (err, res) => (err ? resolve({ ok: false, code: err.code, details: err.details }) : resolve({ ok: true, version: res!.version, storage: res!.storage }))),
  );
}

/** Bytes the server holds in staging/ (uploads in progress). */
export const stagingBytes = (dataDir: string): number =>
  fs.readdirSync(path.join(dataDir, 'staging')).reduce((n, f) => n + fs.statSync(path.join(dataDir, 'staging', f)).size, 0);

/** Resolves once `cond` holds (re-checked every 10 ms); throws naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (const giveUp = Date.now() + timeoutMs; !cond(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > giveUp) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
  }
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
