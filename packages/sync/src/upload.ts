/**
 * One upload attempt of one file (the body of a sync worker thread; also callable in-process).
 *
 *   open fd ─► read (≤ 16 MiB: whole file into memory, once) + sha256 ─► Upload stream: [metadata] [chunk] ... end
 *                                                      ◄── UploadResponse (after durable commit)
 *
 * Never retries and never sleeps: a failure is returned as data ({kind, grpcCode, message}) and
 * the engine decides (connectivity gate, per-file backoff, failed/). So a retrying file can
 * never hold a pool thread hostage.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { DataSyncClient, FileMetadata, UploadResponse__Output } from '@edgecap/proto';
import { AccessTokens, ViamDataError, createAuthClient, createViamClient, uploadViam, viamCaptureToEdgecap, type AuthServiceClient, type DataSyncServiceClient as ViamClient } from '@edgecap/viam';
import { classifyStatus, type FailureKind } from './errors.js';
import { DEFAULT_CHUNK_BYTES, addressAt, callMetadata, channelOptions, credentialsFor, makeClient, type IngestTarget } from './target.js';

export interface UploadTask {
  path: string;
  target: IngestTarget;
  addressIndex: number;
  /** Metadata minus what the worker computes (size, sha256, mtime_ms). */
  meta: Omit<FileMetadata, 'size' | 'sha256' | 'mtime_ms'>;
  chunkBytes?: number;
  /** Overall deadline for the call, ms; default 120 s + 1 s per 256 KiB. */
  deadlineMs?: number;
  /** 'viam': a viam-server `.capture` file found in the capture dir (default: edgecap's own format). */
  format?: 'edgecap' | 'viam';
}

/**
 * Which file an attempt read: stat of the open file, taken BEFORE its bytes were read. The
 * engine deletes a synced file only while it still matches (any later change, append or
 * replacement, shows in size, mtime or inode), so nothing written after the read is lost.
 */
export interface ReadIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
}

export function identityOf(st: { size: number; mtimeMs: number; ino: number; dev: number }): ReadIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev };
}

export type UploadOutcome =
  | { ok: true; status: 'committed' | 'already_have'; bytes: number; sha256: string; read?: ReadIdentity }
  | { ok: false; kind: FailureKind | 'local'; grpcCode?: number; errno?: string; message: string };

const clients = new Map<string, DataSyncClient>();

/** One channel per (target, address) per thread, reused across tasks. */
function clientFor(t: IngestTarget, idx: number): DataSyncClient {
  const key = `${JSON.stringify(t)}#${idx}`;
  let c = clients.get(key);
  if (!c) {
    c = makeClient(t, idx);
    clients.set(key, c);
  }
  return c;
}

export function closeClients(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
  for (const c of viamClients.values()) c.close();
  viamClients.clear();
}

async function hashFile(fh: fs.FileHandle, size: number, chunk: number): Promise<Buffer> {
  const h = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(size, 1)));
  let pos = 0;
  while (pos < size) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  if (pos !== size) throw Object.assign(new Error(`file shrank while hashing (${pos} of ${size} bytes)`), { code: 'ESHRANK' });
  return h.digest();
}

/** Files up to this size are read once, into memory (a few in flight per thread). */
export const WHOLE_READ_BYTES = 16 * 1024 * 1024;

async function readWhole(fh: fs.FileHandle, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  while (pos < size) {
    const { bytesRead } = await fh.read(buf, pos, size - pos, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
  }
  if (pos !== size) throw Object.assign(new Error(`file shrank while reading (${pos} of ${size} bytes)`), { code: 'ESHRANK' });
  return buf;
}

export async function uploadFile(task: UploadTask, client?: DataSyncClient): Promise<UploadOutcome> {
  const chunk = task.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(task.path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'local', errno: err.code, message: `cannot open ${task.path}: ${err.message}` };
  }
  try {
    const st = await fh.stat();
    const size = st.size;
    let sha: Buffer;
    // Files up to WHOLE_READ_BYTES are read once into memory, hashed and sent from there (one
    // read pass); bigger ones are hashed in a first pass and streamed in a second.
    let whole: Buffer | undefined;
    try {
      if (size <= WHOLE_READ_BYTES) {
        whole = await readWhole(fh, size);
        sha = crypto.createHash('sha256').update(whole).digest();
      } else sha = await hashFile(fh, size, chunk);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` };
    }
    const c = client ?? clientFor(task.target, task.addressIndex);
    const deadline = Date.now() + (task.deadlineMs ?? 120_000 + Math.ceil(size / (256 * 1024)) * 1000);
    return await new Promise<UploadOutcome>((resolve) => {
      let settled = false;
      const done = (o: UploadOutcome): void => {
        if (!settled) {
          settled = true;
          resolve(o);
        }
      };
      const call = c.Upload(callMetadata(task.target), { deadline }, (err: grpc.ServiceError | null, res?: UploadResponse__Output) => {
        if (err) {
          done({ ok: false, kind: classifyStatus(err.code), grpcCode: err.code, message: err.details || err.message });
          return;
        }
        if (!res || (res.status !== 'UPLOAD_STATUS_COMMITTED' && res.status !== 'UPLOAD_STATUS_ALREADY_HAVE')) {
          // The server answered, not with a verdict: nothing is known about the bytes.
          done({ ok: false, kind: 'server', message: `unexpected upload response status ${String(res?.status)}` });
          return;
        }
        done({ ok: true, status: res.status === 'UPLOAD_STATUS_COMMITTED' ? 'committed' : 'already_have', bytes: size, sha256: sha.toString('hex'), read: identityOf(st) });
      });
      // Respect HTTP/2 back-pressure; a call that ended (status/error) also releases the writer.
      const write = (msg: object): Promise<void> =>
        new Promise<void>((res) => {
          if (settled || call.write(msg)) return res();
          const go = (): void => {
            call.off('drain', go).off('status', go).off('error', go);
            res();
          };
          call.on('drain', go).on('status', go).on('error', go);
        });
      call.on('error', () => undefined); // reported through the callback
      void (async () => {
        try {
          await write({ metadata: { ...task.meta, size, sha256: sha, mtime_ms: Math.floor(st.mtimeMs) } });
          let pos = 0;
          if (whole) {
            // Views of one buffer nobody writes to again: grpc-js may serialise them later.
            while (pos < size && !settled) {
              const n = Math.min(chunk, size - pos);
              await write({ chunk: whole.subarray(pos, pos + n) });
              pos += n;
            }
          }
          while (pos < size && !settled) {
            // A fresh buffer per chunk: grpc-js may still hold the previous one while serialising.
            const buf = Buffer.allocUnsafe(Math.min(chunk, size - pos));
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead === 0) throw Object.assign(new Error(`file shrank during upload at byte ${pos} of ${size}`), { code: 'ESHRANK' });
            await write({ chunk: bytesRead === buf.length ? buf : buf.subarray(0, bytesRead) });
            pos += bytesRead;
          }
          call.end();
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          call.cancel();
          done({ ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` });
        }
      })();
    });
  } finally {
    await fh.close().catch(() => undefined);
  }
}

const viamClients = new Map<string, ViamClient | AuthServiceClient>();
const accessTokens = new AccessTokens();
const AUTHENTICATE_DEADLINE_MS = 10_000;

/** One viam channel (data sync or auth) per (target, address) per thread, reused across tasks. */
function viamClientFor<C extends ViamClient | AuthServiceClient>(t: IngestTarget, address: string, kind: 'sync' | 'auth'): C {
  const key = `${JSON.stringify(t)}#${address}#${kind}`;
  let c = viamClients.get(key);
  if (!c) {
    c = kind === 'sync' ? createViamClient(address, credentialsFor(t), channelOptions(t)) : createAuthClient(address, credentialsFor(t), channelOptions(t));
    viamClients.set(key, c);
  }
  return c as C;
}

/**
 * One upload attempt over viam.app.datasync.v1 (`target.protocol: 'viam'`), or of a viam-server
 * `.capture` file over edgecap's protocol (converted to an edgecap capture file whose id is the
 * viam dedup key). Same outcome contract as uploadFile.
 */
export async function uploadViamTask(task: UploadTask): Promise<UploadOutcome> {
  const partId = String(task.meta.part_id ?? '');
  const tags = [...(task.meta.tags ?? [])];
  // Stat before reading: a change after this shows in the identity the engine re-checks.
  let read: ReadIdentity;
  try {
    read = identityOf(await fs.stat(task.path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'local', errno: err.code, message: `cannot open ${task.path}: ${err.message}` };
  }
  if (task.target.protocol !== 'viam') {
    let conv: ReturnType<typeof viamCaptureToEdgecap>;
    try {
      conv = viamCaptureToEdgecap(await fs.readFile(task.path), partId, tags);
    } catch (e) {
      if (e instanceof ViamDataError) return { ok: false, kind: 'rejected', message: `${task.path}: ${e.message}` };
      const err = e as NodeJS.ErrnoException;
      return { ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` };
    }
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edgecap-viam-'));
    try {
      const tmp = path.join(dir, 'converted.capture');
      await fs.writeFile(tmp, conv.bytes, { mode: 0o600 });
      const data_type = conv.type === 'binary' ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR';
      const out = await uploadFile({ ...task, path: tmp, format: 'edgecap', meta: { ...task.meta, file_id: conv.fileId, data_type } });
      return out.ok ? { ...out, read } : out;
    } finally {
      await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
  const kind = task.format === 'viam' ? 'viam-capture' : task.meta.data_type === 'DATA_TYPE_FILE' ? 'file' : 'capture';
  const vt: Parameters<typeof uploadViam>[0] = { path: task.path, kind, partId, tags };
  if (task.meta.file_name) vt.fileName = task.meta.file_name;
  const address = addressAt(task.target, task.addressIndex);
  const { apiKey, apiKeyId } = task.target;
  if (apiKey && apiKeyId) {
    // viam's handshake: the key (id + secret) buys an access token; the token rides on the calls.
    try {
      vt.apiKey = await accessTokens.get(viamClientFor<AuthServiceClient>(task.target, address, 'auth'), address, apiKeyId, apiKey, AUTHENTICATE_DEADLINE_MS);
    } catch (e) {
      const err = e as grpc.ServiceError;
      return { ok: false, kind: classifyStatus(err.code), grpcCode: err.code, message: `Authenticate as ${apiKeyId} failed: ${err.details || err.message}` };
    }
  } else if (apiKey) vt.apiKey = apiKey;
  if (task.deadlineMs !== undefined) vt.deadlineMs = task.deadlineMs;
  const out = await uploadViam(vt, viamClientFor<ViamClient>(task.target, address, 'sync'));
  if (!out.ok && out.kind === 'status' && out.grpcCode === grpc.status.UNAUTHENTICATED && apiKeyId) accessTokens.invalidate(address, apiKeyId);
  if (out.ok) return { ok: true, status: out.status, bytes: out.bytes, sha256: out.sha256, read };
  if (out.kind === 'status') return { ok: false, kind: classifyStatus(out.grpcCode), grpcCode: out.grpcCode, message: out.message };
  if (out.kind === 'invalid') return { ok: false, kind: 'rejected', message: out.message };
  const local: UploadOutcome = { ok: false, kind: 'local', message: out.message };
  if (out.errno) local.errno = out.errno;
  return local;
}
