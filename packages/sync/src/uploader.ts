/**
 * The upload protocols behind one interface: the engine and the worker hand a task to
 * `uploaderFor(task)` and get an outcome back, whatever the wire.
 *
 *   edgecapUploader ─ edgecap.sync.v1 Upload (upload.ts uploadFile); a viam-server `.capture`
 *                     file found in the capture dir is converted to an edgecap capture file first
 *   viamUploader    ─ viam.app.datasync.v1 (`ingest.protocol: viam`; @edgecap/viam uploadViam),
 *                     with viam's API-key → access-token handshake; the bandwidth cap paces its
 *                     messages, but its calls keep viam's fixed deadline (its service has no
 *                     Health to measure acknowledged progress with, link.ts)
 *
 * Contract (both): one attempt, never retries or sleeps; failures are returned as data
 * (UploadOutcome) for the engine to decide on; a success carries the identity of what was read.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { AccessTokens, AuthServiceClient, DataSyncServiceClient as ViamClient } from '@edgecap/viam';
import { classifyStatus } from './errors.js';
import { takeBytes } from './link.js';
import { addressAt, channelOptions, credentialsFor, type IngestTarget } from './target.js';
import { identityOf, onCloseClients, uploadFile, type ReadIdentity, type UploadOutcome, type UploadTask } from './upload.js';

export interface Uploader {
  /** The wire protocol (ingest.protocol). */
  readonly protocol: 'edgecap' | 'viam';
  /**
   * How the engine learns the ingest is reachable: the Health RPC, or (a protocol without one,
   * viam's) a channel connect; and whether capture gaps are reported (ReportGaps).
   */
  readonly probe: 'health' | 'connect';
  readonly reportsGaps: boolean;
  /** One attempt at one file. */
  upload(task: UploadTask): Promise<UploadOutcome>;
}

/** @edgecap/viam loads on first use: a sync thread of an edgecap-only edge never loads it. */
type ViamModule = typeof import('@edgecap/viam');
let viamModule: Promise<ViamModule> | undefined;
const viam = (): Promise<ViamModule> => (viamModule ??= import('@edgecap/viam'));

/** Stat before reading: a change after this shows in the identity the engine re-checks. */
async function statIdentity(file: string): Promise<ReadIdentity | UploadOutcome> {
  try {
    return identityOf(await fs.stat(file));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'local', errno: err.code, message: `cannot open ${file}: ${err.message}` };
  }
}

/** A viam-server `.capture` file over edgecap's protocol: converted, its id the viam dedup key. */
async function uploadViamCaptureFile(task: UploadTask): Promise<UploadOutcome> {
  const read = await statIdentity(task.path);
  if ('ok' in read) return read;
  const { ViamDataError, viamCaptureToEdgecap } = await viam();
  let conv: ReturnType<typeof viamCaptureToEdgecap>;
  try {
    conv = viamCaptureToEdgecap(await fs.readFile(task.path), String(task.meta.part_id ?? ''), [...(task.meta.tags ?? [])]);
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

export const edgecapUploader: Uploader = {
  protocol: 'edgecap',
  probe: 'health',
  reportsGaps: true,
  upload: (task) => (task.format === 'viam' ? uploadViamCaptureFile(task) : uploadFile(task)),
};

const viamClients = new Map<string, ViamClient | AuthServiceClient>();
let accessTokens: AccessTokens | undefined;
const AUTHENTICATE_DEADLINE_MS = 10_000;
onCloseClients(() => {
  for (const c of viamClients.values()) c.close();
  viamClients.clear();
});

/** One viam channel (data sync or auth) per (target, address) per thread, reused across tasks. */
function viamClientFor<C extends ViamClient | AuthServiceClient>(v: ViamModule, t: IngestTarget, address: string, kind: 'sync' | 'auth'): C {
  const key = `${JSON.stringify(t)}#${address}#${kind}`;
  let c = viamClients.get(key);
  if (!c) {
    const { createViamClient, createAuthClient } = v;
    c = kind === 'sync' ? createViamClient(address, credentialsFor(t), channelOptions(t)) : createAuthClient(address, credentialsFor(t), channelOptions(t));
    viamClients.set(key, c);
  }
  return c as C;
}

async function uploadOverViam(task: UploadTask): Promise<UploadOutcome> {
  const read = await statIdentity(task.path);
  if ('ok' in read) return read;
  const v = await viam();
  const { uploadViam } = v;
  const tokens = (accessTokens ??= new v.AccessTokens());
  const kind = task.format === 'viam' ? 'viam-capture' : task.meta.data_type === 'DATA_TYPE_FILE' ? 'file' : 'capture';
  const vt: Parameters<typeof uploadViam>[0] = { path: task.path, kind, partId: String(task.meta.part_id ?? ''), tags: [...(task.meta.tags ?? [])] };
  if (task.meta.file_name) vt.fileName = task.meta.file_name;
  const address = addressAt(task.target, task.addressIndex);
  const { apiKey, apiKeyId } = task.target;
  if (apiKey && apiKeyId) {
    // viam's handshake: the key (id + secret) buys an access token; the token rides on the calls.
    try {
      vt.apiKey = await tokens.get(viamClientFor<AuthServiceClient>(v, task.target, address, 'auth'), address, apiKeyId, apiKey, AUTHENTICATE_DEADLINE_MS);
    } catch (e) {
      const err = e as grpc.ServiceError;
      return { ok: false, kind: classifyStatus(err.code), grpcCode: err.code, message: `Authenticate as ${apiKeyId} failed: ${err.details || err.message}` };
    }
  } else if (apiKey) vt.apiKey = apiKey;
  if (task.deadlineMs !== undefined) vt.deadlineMs = task.deadlineMs;
  const cap = task.rateLimit;
  if (cap) vt.pace = (n) => takeBytes(cap, n);
  const out = await uploadViam(vt, viamClientFor<ViamClient>(v, task.target, address, 'sync'));
  if (!out.ok && out.kind === 'status' && out.grpcCode === grpc.status.UNAUTHENTICATED && apiKeyId) tokens.invalidate(address, apiKeyId);
  if (out.ok) return { ok: true, status: out.status, bytes: out.bytes, sha256: out.sha256, read };
  if (out.kind === 'status') return { ok: false, kind: classifyStatus(out.grpcCode), grpcCode: out.grpcCode, message: out.message };
  if (out.kind === 'invalid') return { ok: false, kind: 'rejected', message: out.message };
  const local: UploadOutcome = { ok: false, kind: 'local', message: out.message };
  if (out.errno) local.errno = out.errno;
  return local;
}

/** viam.app.datasync.v1 has no Health or ReportGaps: there the uploads themselves probe the link. */
export const viamUploader: Uploader = { protocol: 'viam', probe: 'connect', reportsGaps: false, upload: uploadOverViam };

/** The uploader for a task's target (`ingest.protocol`). */
export function uploaderFor(task: Pick<UploadTask, 'target'>): Uploader {
  return task.target.protocol === 'viam' ? viamUploader : edgecapUploader;
}
