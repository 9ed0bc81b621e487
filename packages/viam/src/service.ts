/**
 * The receiving side of viam.app.datasync.v1.DataSyncService, storage-agnostic: each upload
 * is validated, keyed (convert.ts: sha256 over part id, canonical metadata, contents), staged
 * through the injected `stage()` as its bytes arrive, and handed to `commit` (which owns the
 * staged area from then on) only when it was received completely.
 *
 *   DataCaptureUpload(md, SensorData[]) ── admit ─► key ─► capture bytes (in memory: one message) ─► stage ─► commit
 *   StreamingDataCaptureUpload(md, bytes...) ─ admit ─► stage raw ◄─ chunks as they arrive
 *        half-close confirmed ─► read raw back: key + CRC ─► stage capture file ◄─ read raw back
 *        (capture-stream.ts; byte-identical to readingsToCaptureBytes) ─► discard raw ─► commit
 *   FileUpload(md, chunks...) ── admit ─► stage ◄─ chunks as they arrive (hashed on the way) ─► commit(data_type file)
 *
 * Complete means (call-end.ts): the client half-closed and did not cancel right after (grpc-js
 * cancels as END_STREAM + RST_STREAM; a PING on the connection tells the two apart), the call is
 * not cancelled and not past its deadline. Anything else commits nothing and discards staging.
 *
 * Auth: `authorize(metadata)` names the caller (edgecap's ingest: `authorization: Bearer <key>`);
 * `admit(who, part_id)` runs before anything is staged. Answers carry file_id (= binary_data_id
 * for binary and files) = the key as a UUID-shaped id, and trailing metadata
 * `edgecap-upload-status: committed | already_have`.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import { annotationCount, captureTypeOf, dataTypeName, dedupFileId, readingsToCaptureBytes, sensorDataToReading, sensorItemDigest, timestampToUs, viamDedupKey, type UploadMetadataLike } from './convert.js';
import { IncompleteUpload, messagesOf, watchCall, type WatchedCall } from './call-end.js';
import { planBinaryCapture, writeBinaryCapture, type BinaryCaptureInput } from './capture-stream.js';
import { invalidUpload } from './errors.js';
import type { DataCaptureUploadRequest__Output, FileUploadRequest__Output, SensorData__Output, SensorMetadata__Output, StreamingDataCaptureUploadRequest__Output, UploadMetadata__Output } from './proto.js';

/**
 * A staging area for one upload's bytes (on the ingest: a file on its disk). The service writes
 * chunks as they arrive; whoever ends up holding it either commits or discards it.
 */
export interface ViamStaged {
  /** Bytes written so far. */
  readonly bytes: number;
  /** Append a chunk; the caller may reuse the chunk once the promise resolves. */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Read back everything written so far (all awaited writes), in order, in chunks of bounded
   * size (e.g. fs.createReadStream's 64 KiB), each a buffer of its own. The service reads a
   * streamed binary upload back (twice) to turn it into a capture file without holding it.
   */
  chunks(): AsyncIterable<Uint8Array>;
  /** Remove the staged bytes; idempotent. */
  discard(): Promise<void>;
}

export interface ViamCommitRequest {
  /** The dedup key as a UUID-shaped id. */
  file_id: string;
  part_id: string;
  data_type: 'tabular' | 'binary' | 'file';
  tags: string[];
  /** The bytes to store, complete: an edgecap capture file (tabular/binary) or the file as sent. */
  staged: ViamStaged;
  size: number;
  /** Always 'viam'. */
  source: string;
  mtime_ms: number;
  /** Files only: a safe relative name ('/'-separated). */
  file_name?: string;
}

/** Takes ownership of req.staged: commits it or discards it, also when it throws. */
export type ViamCommit<P> = (req: ViamCommitRequest, who: P) => Promise<'committed' | 'already_have'>;

export interface ViamServiceOptions<P> {
  /** Identity of the caller from the call's credentials; undefined = UNAUTHENTICATED. */
  authorize: (md: grpc.Metadata) => P | undefined;
  /**
   * Called as soon as upload metadata is known, before any bytes are staged: throws (an error
   * `toStatus` maps, e.g. to PERMISSION_DENIED) when this caller may not upload for part_id.
   */
  admit?: (who: P, partId: string) => void;
  /** A fresh staging area (a file on the ingest's disk). */
  stage: () => Promise<ViamStaged>;
  /** Takes ownership of req.staged (commits or discards it). Called only for complete uploads. */
  commit: ViamCommit<P>;
  /** Largest upload accepted (default 1 GiB). */
  maxBytes?: number;
  /** Most annotations (bounding boxes + classifications) one item may carry (default 10,000). */
  maxAnnotations?: number;
  /** Map an error from `admit`, `stage` or `commit` to a status (default INTERNAL; CLOSED → UNAVAILABLE). */
  toStatus?: (err: unknown) => Partial<grpc.StatusObject>;
  /** Called after each answered upload (logging). */
  onUpload?: (info: { method: string; file_id: string; status: 'committed' | 'already_have'; bytes: number }) => void;
}

export const VIAM_SOURCE = 'viam';
export const UPLOAD_STATUS_TRAILER = 'edgecap-upload-status';
const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_ANNOTATIONS = 10_000;

/** A viam file name (often an absolute path on the robot) as a safe relative name. */
export function safeViamFileName(name: string, extension: string, fallback: string): string {
  const segs = name
    .replace(/\\/g, '/')
    .replace(/\0/g, '')
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..')
    .map((s) => (Buffer.byteLength(s) > 200 ? s.slice(0, 100) : s));
  if (segs.length === 0) segs.push(fallback);
  const ext = extension ? (extension.startsWith('.') ? extension : `.${extension}`) : '';
  const last = segs[segs.length - 1]!;
  if (ext && !last.endsWith(ext)) segs[segs.length - 1] = `${last}${ext}`;
  return segs.join('/');
}

function defaultStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof EdgecapError && err.code === ErrorCodes.CLOSED) return { code: grpc.status.UNAVAILABLE, details: 'ingest server is shutting down' };
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

const isBinaryItem = (sd: SensorData__Output): boolean => sd.data === 'binary' || (sd.data === undefined && sd.binary !== undefined && sd.struct == null);

/** Staging areas of one call: whatever is not handed to `commit` is discarded when the call ends. */
class Stagings {
  private readonly held = new Set<ViamStaged>();
  constructor(private readonly stage: () => Promise<ViamStaged>) {}
  async open(): Promise<ViamStaged> {
    const s = await this.stage();
    this.held.add(s);
    return s;
  }
  /** `s` now belongs to someone else (commit). */
  handOver(s: ViamStaged): ViamStaged {
    this.held.delete(s);
    return s;
  }
  async discard(s: ViamStaged): Promise<void> {
    this.held.delete(s);
    await s.discard();
  }
  async discardAll(): Promise<void> {
    const all = [...this.held];
    this.held.clear();
    await Promise.all(all.map((s) => s.discard().catch(() => undefined)));
  }
}

interface Answer {
  id: string;
  binary: boolean;
  status: 'committed' | 'already_have';
  bytes: number;
}

export function viamServiceHandlers<P>(opts: ViamServiceOptions<P>): grpc.UntypedServiceImplementation {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxAnnotations = opts.maxAnnotations ?? DEFAULT_MAX_ANNOTATIONS;
  /** Annotations are kept with the item (capture file, export): a client may not send unbounded lists. */
  const boundAnnotations = (m: SensorMetadata__Output | null | undefined, where: string): void => {
    const n = annotationCount(m);
    if (n > maxAnnotations) throw invalidUpload(`${where} carries ${n} annotations (bounding boxes + classifications), the server limit is ${maxAnnotations}`);
  };
  const toStatus = (err: unknown): Partial<grpc.StatusObject> => {
    if (err instanceof IncompleteUpload) return err.status;
    if (err instanceof EdgecapError && err.code === ErrorCodes.UPLOAD_REJECTED && !('status' in err)) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
    return (opts.toStatus ?? defaultStatus)(err);
  };
  const unauth = { code: grpc.status.UNAUTHENTICATED, details: 'missing or invalid API key (send authorization: Bearer <key>)' };
  const admit = (who: P, partId: string): void => opts.admit?.(who, partId);
  const mtimeMs = (md: UploadMetadata__Output): number => Math.floor((timestampToUs(md.file_modify_time) ?? 0) / 1000);

  const answer = (call: WatchedCall, cb: grpc.sendUnaryData<unknown>, method: string, work: (watch: { check: () => void }, staging: Stagings) => Promise<Answer>): void => {
    const watch = watchCall(call);
    const staging = new Stagings(opts.stage);
    work(watch, staging)
      .finally(() => staging.discardAll())
      .then(
        (r) => {
          opts.onUpload?.({ method, file_id: r.id, status: r.status, bytes: r.bytes });
          const trailer = new grpc.Metadata();
          trailer.set(UPLOAD_STATUS_TRAILER, r.status);
          cb(null, { file_id: r.id, binary_data_id: r.binary ? r.id : '' }, trailer);
        },
        (e) => cb(toStatus(e)),
      );
  };

  /** Tabular or binary items of a unary upload (already in memory) → key → capture bytes → staged → commit. */
  const commitSensorData = async (who: P, md: UploadMetadata__Output, items: SensorData__Output[], watch: { check: () => void }, staging: Stagings): Promise<Answer> => {
    if (items.length === 0) throw invalidUpload('upload has no sensor_contents');
    if (dataTypeName(md.type) === 'DATA_TYPE_FILE') throw invalidUpload('metadata.type DATA_TYPE_FILE belongs to FileUpload, not to a data capture upload');
    const type = captureTypeOf(md.type, items[0]);
    items.forEach((sd, i) => {
      if (type === 'binary' && !isBinaryItem(sd)) throw invalidUpload(`sensor_contents[${i}] has no binary data (metadata.type is binary)`);
      if (type === 'tabular' && sd.data !== 'struct') throw invalidUpload(`sensor_contents[${i}] has no struct data (metadata.type is tabular)`);
      boundAnnotations(sd.metadata, `sensor_contents[${i}]`);
    });
    const key = viamDedupKey(md as UploadMetadataLike, items.map(sensorItemDigest));
    const id = dedupFileId(key);
    const bytes = readingsToCaptureBytes(id, md as UploadMetadataLike, type, items.map(sensorDataToReading));
    if (bytes.length > maxBytes) throw invalidUpload(`upload of ${bytes.length} bytes exceeds the server limit of ${maxBytes} bytes`);
    const staged = await staging.open();
    await staged.write(bytes);
    watch.check();
    const status = await opts.commit(
      { file_id: id, part_id: md.part_id, data_type: type, tags: [...(md.tags ?? [])], staged: staging.handOver(staged), size: bytes.length, source: VIAM_SOURCE, mtime_ms: mtimeMs(md) },
      who,
    );
    return { id, binary: type === 'binary', status, bytes: bytes.length };
  };

  return {
    DataCaptureUpload: (call: grpc.ServerUnaryCall<DataCaptureUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const who = opts.authorize(call.metadata);
      if (who === undefined) return cb(unauth);
      return answer(call, cb, 'DataCaptureUpload', async (watch, staging) => {
        const md = call.request.metadata;
        if (!md) throw invalidUpload('DataCaptureUploadRequest has no metadata');
        admit(who, md.part_id);
        return commitSensorData(who, md, call.request.sensor_contents ?? [], watch, staging);
      });
    },

    /**
     * The binary is staged raw as it arrives; after the half-close it is read back twice (digest
     * and CRC, then copy) into a second staging area as a capture file, and the raw one discarded.
     */
    StreamingDataCaptureUpload: (call: grpc.ServerReadableStream<StreamingDataCaptureUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const who = opts.authorize(call.metadata);
      if (who === undefined) return cb(unauth);
      return answer(call, cb, 'StreamingDataCaptureUpload', async (watch, staging) => {
        let md: StreamingDataCaptureUploadRequest__Output['metadata'] | undefined;
        let raw: ViamStaged | undefined;
        let size = 0;
        for await (const m of messagesOf(call, watch)) {
          if (!md) {
            if (m.upload_packet !== 'metadata' || !m.metadata?.upload_metadata) throw invalidUpload('first message must be metadata with upload_metadata');
            md = m.metadata;
            const um = m.metadata.upload_metadata;
            admit(who, um.part_id);
            const t = dataTypeName(um.type);
            if (t !== 'DATA_TYPE_BINARY_SENSOR' && t !== 'DATA_TYPE_UNSPECIFIED') throw invalidUpload(`StreamingDataCaptureUpload carries binary data, metadata.type is ${t}`);
            boundAnnotations(m.metadata.sensor_metadata, 'sensor_metadata');
            raw = await staging.open();
            watch.check();
            continue;
          }
          if (m.upload_packet === 'metadata') throw invalidUpload('metadata sent twice in one upload');
          const d = m.data ?? Buffer.alloc(0);
          size += d.length;
          if (size > maxBytes) throw invalidUpload(`upload exceeds the server limit of ${maxBytes} bytes`);
          if (d.length > 0) await raw!.write(d);
        }
        if (!md?.upload_metadata || !raw) throw invalidUpload('upload ended without metadata');
        const um: UploadMetadata__Output = { ...md.upload_metadata, type: 'DATA_TYPE_BINARY_SENSOR' };
        // time and mime of the one reading exactly as the in-memory path derives them
        const r = sensorDataToReading({ metadata: md.sensor_metadata, binary: Buffer.alloc(0), data: 'binary' } as SensorData__Output);
        const input: BinaryCaptureInput = { md: um as UploadMetadataLike, sensorMetadata: md.sensor_metadata, time_requested_us: r.time_requested_us, time_received_us: r.time_received_us, size };
        if (r.mime_type) input.mime_type = r.mime_type;
        if (r.annotations) input.annotations = r.annotations;
        const plan = await planBinaryCapture(input, raw, watch.check);
        if (plan.total > maxBytes) throw invalidUpload(`upload of ${plan.total} bytes exceeds the server limit of ${maxBytes} bytes`);
        const out = await staging.open();
        await writeBinaryCapture(plan, size, raw, out, watch.check);
        await staging.discard(raw);
        watch.check();
        const status = await opts.commit(
          { file_id: plan.file_id, part_id: um.part_id, data_type: 'binary', tags: [...(um.tags ?? [])], staged: staging.handOver(out), size: plan.total, source: VIAM_SOURCE, mtime_ms: mtimeMs(um) },
          who,
        );
        return { id: plan.file_id, binary: true, status, bytes: plan.total };
      });
    },

    FileUpload: (call: grpc.ServerReadableStream<FileUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const who = opts.authorize(call.metadata);
      if (who === undefined) return cb(unauth);
      return answer(call, cb, 'FileUpload', async (watch, staging) => {
        let md: UploadMetadata__Output | undefined;
        let staged: ViamStaged | undefined;
        const h = createHash('sha256').update('file\0');
        let size = 0;
        for await (const m of messagesOf(call, watch)) {
          if (!md) {
            if (m.upload_packet !== 'metadata' || !m.metadata) throw invalidUpload('first message must be metadata');
            md = m.metadata;
            admit(who, md.part_id);
            staged = await staging.open();
            watch.check();
            continue;
          }
          if (m.upload_packet === 'metadata') throw invalidUpload('metadata sent twice in one upload');
          const d = m.file_contents?.data ?? Buffer.alloc(0);
          size += d.length;
          if (size > maxBytes) throw invalidUpload(`file exceeds the server limit of ${maxBytes} bytes`);
          h.update(d);
          if (d.length > 0) await staged!.write(d);
        }
        if (!md || !staged) throw invalidUpload('upload ended without metadata');
        const id = dedupFileId(viamDedupKey(md as UploadMetadataLike, [h.digest()]));
        watch.check();
        const status = await opts.commit(
          {
            file_id: id,
            part_id: md.part_id,
            data_type: 'file',
            tags: [...(md.tags ?? [])],
            staged: staging.handOver(staged),
            size,
            source: VIAM_SOURCE,
            mtime_ms: mtimeMs(md),
            file_name: safeViamFileName(md.file_name, md.file_extension, id),
          },
          who,
        );
        return { id, binary: true, status, bytes: size };
      });
    },
  };
}
