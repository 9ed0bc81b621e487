/**
 * One attempt at a batch of small files over edgecap.sync.v1 UploadBatch (one piscina task, one
 * gRPC call: issue #16's per-file cost shared by the batch).
 *
 *   each file: blocking open/fstat/read/close + sha256 (upload.ts readSmall); unreadable → its own
 *              'local' outcome, not sent
 *   ─► UploadBatch stream: [metadata][chunk…] [metadata][chunk…] … end (pace, link window and stall
 *      watchdog as an Upload; chunks pre-framed)
 *   ◄── one result per file sent: COMMITTED | ALREADY_HAVE | REJECTED(code, message)
 *
 * The whole call failing (link, auth, server fault) is one outcome for every file; an ingest
 * without UploadBatch answers UNIMPLEMENTED (`unimplemented: true`: the engine falls back to
 * Upload for that target). Like uploadFile: never retries, never sleeps, failures are data.
 */
import crypto from 'node:crypto';
import type fsSync from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { DataSyncClient, UploadBatchResponse__Output } from '@edgecap/proto';
import { classifyStatus, type FailureKind } from './errors.js';
import { DEFAULT_STALL_TIMEOUT_MS } from './link.js';
import { DEFAULT_CHUNK_BYTES, callMetadata } from './target.js';
import { LinkedCall, clientFor, dropClient, identityOf, linkFor, readSmall, type Layout, type UploadOutcome, type UploadTask } from './upload.js';

/** Edge-side batch bounds (the ingest's defaults, limits.ts maxBatchFiles / maxBatchBytes, are above them). */
export const BATCH_MAX_FILES = 256;
export const BATCH_MAX_BYTES = 1024 * 1024;

/** What a task says about the call itself, the same for one file (UploadTask) and a batch. */
export type CallTask = Pick<UploadTask, 'target' | 'addressIndex' | 'channelEpoch' | 'stallTimeoutMs' | 'deadlineMs' | 'niceIncrement' | 'rateLimit'>;

export interface BatchTask extends CallTask {
  kind: 'batch';
  files: { path: string; meta: UploadTask['meta'] }[];
}

export type BatchOutcome =
  | { ok: true; files: UploadOutcome[] }
  | { ok: false; kind: FailureKind; grpcCode?: number; message: string; unimplemented?: boolean };

export function isBatchTask(t: unknown): t is BatchTask {
  return (t as { kind?: unknown }).kind === 'batch';
}

interface Ready {
  i: number;
  st: fsSync.Stats;
  whole: Layout;
  sha: Buffer;
}

export async function uploadBatch(task: BatchTask, client?: DataSyncClient): Promise<BatchOutcome> {
  const outcomes: (UploadOutcome | undefined)[] = new Array(task.files.length);
  const ready: Ready[] = [];
  // The batch was claimed at ≤ BATCH_MAX_BYTES; files that grew since get no more than that in all.
  let budget = BATCH_MAX_BYTES;
  task.files.forEach((f, i) => {
    const h = crypto.createHash('sha256');
    try {
      const r = readSmall(f.path, Math.max(DEFAULT_CHUNK_BYTES, BATCH_MAX_BYTES), h, budget);
      // Grew past what a batch carries since it was claimed: retried on its own next round.
      if (!r || r.whole.offs.length !== 1) outcomes[i] = { ok: false, kind: 'local', errno: 'ESHRANK', message: `${f.path} grew while queued for a batch: retried` };
      else {
        budget -= r.st.size;
        ready.push({ i, st: r.st, whole: r.whole, sha: h.digest() });
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      outcomes[i] = { ok: false, kind: 'local', errno: err.code, message: `cannot ${err.syscall === 'open' ? 'open' : 'read'} ${f.path}: ${err.message}` };
    }
  });
  if (ready.length === 0) return { ok: true, files: outcomes as UploadOutcome[] };

  const c = client ?? clientFor(task.target, task.addressIndex);
  const stallMs = task.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const link = linkFor(c, task.target, stallMs);
  const opts: grpc.CallOptions = task.deadlineMs !== undefined ? { deadline: Date.now() + task.deadlineMs } : {};
  const answer = await new Promise<{ err?: grpc.ServiceError | { code?: number; message: string; local?: string }; res?: UploadBatchResponse__Output }>((resolve) => {
    const lc = new LinkedCall(link, stallMs, () => {
      done({ err: { code: grpc.status.DEADLINE_EXCEEDED, message: `upload batch stalled: no progress for ${stallMs} ms (sync_stall_timeout_ms); the connection is dropped and the files retried` } });
      call.cancel();
      if (!client) dropClient(task.target, task.addressIndex, c);
    });
    const done = (a: Parameters<typeof resolve>[0]): void => {
      if (lc.settle()) resolve(a);
    };
    const call = c.UploadBatch(callMetadata(task.target), opts, (err: grpc.ServiceError | null, res?: UploadBatchResponse__Output) => done(err ? { err } : { res: res! }));
    call.on('error', () => undefined); // reported through the callback
    lc.call = call;
    const { cancelled } = lc;
    // The pace (bandwidth cap, capture first) and the link's window apply to a batch as to one
    // file: a file goes pre-framed when it fits one piece, otherwise as views (uploadFile too).
    const span = { chunk: Infinity, cap: task.rateLimit, preframed: true };
    void (async () => {
      for (const r of ready) {
        if (lc.settled) return;
        const f = task.files[r.i]!;
        await lc.write({ metadata: { ...f.meta, size: r.st.size, sha256: r.sha, mtime_ms: Math.floor(r.st.mtimeMs) } }, 0);
        await lc.sendSpan(r.whole.buf, r.whole.offs[0]!, r.whole.lens[0] ?? 0, span);
      }
      if (lc.settled) return;
      call.end();
      await link.drained(cancelled);
    })().catch((e: unknown) => {
      call.cancel();
      done({ err: { message: `upload batch failed locally: ${(e as Error).message}`, local: (e as NodeJS.ErrnoException).code ?? 'EIO' } });
    });
  });

  if (answer.err) {
    const e = answer.err as { code?: number; details?: string; message: string; local?: string };
    if (e.local !== undefined) return { ok: false, kind: 'server', message: e.message };
    const out: BatchOutcome = { ok: false, kind: classifyStatus(e.code), grpcCode: e.code, message: e.details || e.message };
    if (e.code === grpc.status.UNIMPLEMENTED) out.unimplemented = true;
    return out;
  }
  const results = answer.res?.results ?? [];
  if (results.length !== ready.length) {
    // The server answered, not with a verdict per file: nothing is known about the bytes.
    return { ok: false, kind: 'server', message: `upload batch answered ${results.length} results for ${ready.length} files` };
  }
  ready.forEach((r, k) => {
    const res = results[k]!;
    const sent = String(task.files[r.i]!.meta.file_id ?? '');
    // A verdict about another file is no verdict about this one: never delete on it.
    if (res.file_id !== sent) outcomes[r.i] = { ok: false, kind: 'server', message: `upload batch result ${k} names file ${JSON.stringify(res.file_id)}, not ${JSON.stringify(sent)}` };
    else if (res.status === 'UPLOAD_STATUS_COMMITTED' || res.status === 'UPLOAD_STATUS_ALREADY_HAVE') {
      outcomes[r.i] = { ok: true, status: res.status === 'UPLOAD_STATUS_COMMITTED' ? 'committed' : 'already_have', bytes: r.st.size, sha256: r.sha.toString('hex'), read: identityOf(r.st) };
    } else if (res.status === 'UPLOAD_STATUS_REJECTED') {
      outcomes[r.i] = { ok: false, kind: classifyStatus(res.code), grpcCode: res.code, message: res.message };
    } else {
      outcomes[r.i] = { ok: false, kind: 'server', message: `unexpected upload batch result status ${String(res.status)}` };
    }
  });
  return { ok: true, files: outcomes as UploadOutcome[] };
}
