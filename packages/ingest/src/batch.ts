/**
 * UploadBatch: several small files in one call (issue #16: the per-call cost of gRPC, a stream,
 * a slot and a commit shared by many files).
 *
 *   [metadata, chunk…] [metadata, chunk…] … half-close
 *      each file ─► FileReceiver (receive.ts: the same bounds, identity, dedup, staging and checks
 *                   as Upload) ─► ready | ALREADY_HAVE | refused (REJECTED result, its chunks skipped)
 *      call bounds: ≤ maxBatchFiles files, ≤ maxBatchBytes declared and received (INVALID_ARGUMENT)
 *   ─► clean half-close, not cancelled ─► every ready file handed to storage.commit in the same
 *      turn: FileStorage's group commit takes them as ONE group (one fsync round, one LMDB txn)
 *   ─► one result per file, in the order sent
 *
 * A server fault (storage, fds) anywhere fails the whole call with the status an Upload would get
 * (retryable): the edge re-sends every file and dedup answers those already committed ALREADY_HAVE.
 * A call cut before its half-close commits nothing: every staging is discarded.
 */
import * as grpc from '@grpc/grpc-js';
import type { BatchFileResult, UploadRequest__Output } from '@edgecap/proto';
import { RequestRejected, invalid } from './errors.js';
import type { Principal } from './keys.js';
import { ProgressWatch } from './limits.js';
import { FileReceiver, consume, type UploadContext } from './receive.js';
import type { NewFileRecord, StagedUpload } from './storage.js';
import { BadMessage } from './wire.js';
import { logger } from '@edgecap/core';

const log = logger('ingest');

type BatchCall = grpc.ServerReadableStream<UploadRequest__Output | BadMessage, unknown>;

/** Statuses that say the server (not the file) is at fault: they fail the whole call. */
const SERVER_FAULT = new Set<number>([grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL]);

export async function handleUploadBatch(call: BatchCall, who: Principal, ctx: UploadContext): Promise<{ results: BatchFileResult[] }> {
  const { limits } = ctx;
  const results: BatchFileResult[] = [];
  const ready: { i: number; staged: StagedUpload; rec: NewFileRecord }[] = [];
  let file: FileReceiver | undefined;
  /** The current file was answered already (held, or refused): its chunks are read and dropped. */
  let skip = false;
  let declared = 0;
  let received = 0;
  const watch = new ProgressWatch(limits, (e) => abortCall(e));
  let abortCall: (e: unknown) => void = () => undefined;

  /** A refusal about file i becomes its result; anything else fails the call. */
  const refuse = (i: number, fileId: string, e: unknown): void => {
    if (!(e instanceof RequestRejected) || SERVER_FAULT.has(e.status)) throw e;
    results[i] = { file_id: fileId, status: 'UPLOAD_STATUS_REJECTED', stored_bytes: 0, code: e.status, message: `file ${i} (${JSON.stringify(fileId)}): ${e.message}` };
  };
  const close = async (): Promise<void> => {
    if (!file || skip) return;
    const i = results.length - 1;
    const id = results[i]!.file_id!;
    try {
      const got = await file.finish();
      if (got.kind === 'already_have') results[i] = { file_id: got.file_id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: got.stored_bytes, code: 0, message: '' };
      else ready.push({ i, staged: got.staged, rec: got.rec });
    } catch (e) {
      refuse(i, id, e);
    } finally {
      await file.discard();
    }
  };
  try {
    await consume(
      call,
      async (msg) => {
        // The stream's framing cannot be trusted past a malformed message: the whole call fails.
        if (msg instanceof BadMessage) throw invalid(msg.reason);
        if (msg.packet === 'metadata' && msg.metadata) {
          await close();
          if (results.length >= limits.maxBatchFiles) {
            throw invalid(`upload batch has more than ${limits.maxBatchFiles} files (limit maxBatchFiles): send fewer per call`, { limit: limits.maxBatchFiles });
          }
          watch.metadataAt();
          const i = results.length;
          const id = String(msg.metadata.file_id ?? '');
          results.push({ file_id: id, status: 'UPLOAD_STATUS_UNSPECIFIED', stored_bytes: 0, code: 0, message: '' });
          file = new FileReceiver(who, ctx);
          skip = false;
          let held: boolean;
          try {
            held = await file.begin(msg.metadata);
          } catch (e) {
            await file.discard();
            refuse(i, id, e);
            skip = true;
            return false;
          }
          declared += file.declared;
          if (declared > limits.maxBatchBytes) {
            throw invalid(`upload batch declares more than ${limits.maxBatchBytes} bytes (limit maxBatchBytes): send fewer or smaller files per call`, { limit: limits.maxBatchBytes });
          }
          if (held) {
            const got = await file.finish();
            if (got.kind === 'already_have') results[i] = { file_id: got.file_id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: got.stored_bytes, code: 0, message: '' };
            skip = true;
          }
          return false;
        }
        if (msg.packet !== 'chunk') throw invalid(msg.packet === 'metadata' ? 'metadata message is empty' : 'message has neither metadata nor chunk');
        if (!file) throw invalid('first message must be metadata, got a chunk');
        watch.bytes(msg.chunk.length);
        received += msg.chunk.length;
        if (received > limits.maxBatchBytes) {
          throw invalid(`upload batch sent more than ${limits.maxBatchBytes} bytes (limit maxBatchBytes)`, { limit: limits.maxBatchBytes });
        }
        if (skip) return false;
        try {
          await file.chunk(msg.chunk);
        } catch (e) {
          await file.discard();
          refuse(results.length - 1, results.at(-1)!.file_id!, e);
          skip = true;
        }
        return false;
      },
      (fail) => {
        abortCall = fail;
      },
    );
    await close();
    file = undefined;
    if (results.length === 0) throw invalid('upload batch ended without any file');
    // Handed over in one turn: FileStorage's queue takes them as one group commit.
    const commits = ready.splice(0).map((r) => ({ r, p: ctx.storage.commit(r.staged, r.rec) }));
    const settled = await Promise.allSettled(commits.map((c) => c.p));
    let fault: unknown;
    settled.forEach((s, k) => {
      const { i, rec } = commits[k]!.r;
      if (s.status === 'fulfilled') {
        results[i] = { file_id: rec.file_id, status: s.value.status === 'committed' ? 'UPLOAD_STATUS_COMMITTED' : 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: s.value.record.size, code: 0, message: '' };
        return;
      }
      try {
        refuse(i, rec.file_id, s.reason);
      } catch (e) {
        fault ??= e;
      }
    });
    if (fault !== undefined) throw fault;
    const n = (st: string): number => results.filter((r) => r.status === st).length;
    log.info({ part_id: who.kind === 'device' ? who.partId : undefined, files: results.length, committed: n('UPLOAD_STATUS_COMMITTED'), already_have: n('UPLOAD_STATUS_ALREADY_HAVE'), rejected: n('UPLOAD_STATUS_REJECTED') }, 'upload batch');
    return { results };
  } finally {
    watch.stop();
    await file?.discard();
    await Promise.all(ready.map((r) => r.staged.discard().catch(() => undefined)));
  }
}
