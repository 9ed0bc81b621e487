/**
 * The receiving side of viam.app.datasync.v1.DataSyncService, storage-agnostic: each upload
 * is validated, keyed (convert.ts: sha256 over part id, canonical metadata, contents) and
 * handed to `commit` — the ingest server's own commit path, which stores a key once.
 *
 *   DataCaptureUpload(metadata, SensorData[]) ─┐
 *   StreamingDataCaptureUpload(md, bytes...) ──┼─► dedup key ─► edgecap capture bytes ─► commit(file_id = key)
 *   FileUpload(metadata, chunks...) ───────────┴─► dedup key ─► bytes as sent ──────────► commit(data_type file)
 *
 * Auth: the caller's `authorized(metadata)`; edgecap's ingest checks `authorization: Bearer <key>`.
 * Answers carry file_id (= binary_data_id for binary and files) = the key as a UUID-shaped id,
 * and trailing metadata `edgecap-upload-status: committed | already_have`.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import { captureTypeOf, dataTypeName, dedupFileId, readingsToCaptureBytes, sensorDataToReading, sensorItemDigest, timestampToUs, viamDedupKey, type UploadMetadataLike } from './convert.js';
import { invalidUpload } from './errors.js';
import type { DataCaptureUploadRequest__Output, FileUploadRequest__Output, SensorData__Output, StreamingDataCaptureUploadRequest__Output, UploadMetadata__Output } from './proto.js';

export interface ViamCommitRequest {
  /** The dedup key as a UUID-shaped id. */
  file_id: string;
  part_id: string;
  data_type: 'tabular' | 'binary' | 'file';
  tags: string[];
  /** Bytes to store, in order: an edgecap capture file (tabular/binary) or the file as sent. */
  chunks: Uint8Array[];
  size: number;
  /** Always 'viam'. */
  source: string;
  mtime_ms: number;
  /** Files only: a safe relative name ('/'-separated). */
  file_name?: string;
}

export type ViamCommit = (req: ViamCommitRequest) => Promise<'committed' | 'already_have'>;

export interface ViamServiceOptions {
  commit: ViamCommit;
  authorized: (md: grpc.Metadata) => boolean;
  /** Largest upload accepted (default 1 GiB). */
  maxBytes?: number;
  /** Map an error from `commit` to a status (default INTERNAL; CLOSED → UNAVAILABLE). */
  toStatus?: (err: unknown) => Partial<grpc.StatusObject>;
  /** Called after each answered upload (logging). */
  onUpload?: (info: { method: string; file_id: string; status: 'committed' | 'already_have'; bytes: number }) => void;
}

export const VIAM_SOURCE = 'viam';
export const UPLOAD_STATUS_TRAILER = 'edgecap-upload-status';
const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

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

export function viamServiceHandlers(opts: ViamServiceOptions): grpc.UntypedServiceImplementation {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const toStatus = (err: unknown): Partial<grpc.StatusObject> => {
    if (err instanceof EdgecapError && err.code === ErrorCodes.UPLOAD_REJECTED && !('status' in err)) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
    return (opts.toStatus ?? defaultStatus)(err);
  };
  const unauth = { code: grpc.status.UNAUTHENTICATED, details: 'missing or invalid API key (send authorization: Bearer <key>)' };

  const answer = (cb: grpc.sendUnaryData<unknown>, method: string, work: () => Promise<{ id: string; binary: boolean; status: 'committed' | 'already_have'; bytes: number }>): void => {
    work().then(
      (r) => {
        opts.onUpload?.({ method, file_id: r.id, status: r.status, bytes: r.bytes });
        const trailer = new grpc.Metadata();
        trailer.set(UPLOAD_STATUS_TRAILER, r.status);
        cb(null, { file_id: r.id, binary_data_id: r.binary ? r.id : '' }, trailer);
      },
      (e) => cb(toStatus(e)),
    );
  };

  /** Tabular or binary items of one upload → key → capture bytes → commit. */
  const commitSensorData = async (md: UploadMetadata__Output, items: SensorData__Output[]) => {
    if (items.length === 0) throw invalidUpload('upload has no sensor_contents');
    if (dataTypeName(md.type) === 'DATA_TYPE_FILE') throw invalidUpload('metadata.type DATA_TYPE_FILE belongs to FileUpload, not to a data capture upload');
    const type = captureTypeOf(md.type, items[0]);
    items.forEach((sd, i) => {
      if (type === 'binary' && !isBinaryItem(sd)) throw invalidUpload(`sensor_contents[${i}] has no binary data (metadata.type is binary)`);
      if (type === 'tabular' && sd.data !== 'struct') throw invalidUpload(`sensor_contents[${i}] has no struct data (metadata.type is tabular)`);
    });
    const key = viamDedupKey(md as UploadMetadataLike, items.map(sensorItemDigest));
    const id = dedupFileId(key);
    const bytes = readingsToCaptureBytes(id, md as UploadMetadataLike, type, items.map(sensorDataToReading));
    if (bytes.length > maxBytes) throw invalidUpload(`upload of ${bytes.length} bytes exceeds the server limit of ${maxBytes} bytes`);
    const status = await opts.commit({
      file_id: id,
      part_id: md.part_id,
      data_type: type,
      tags: [...(md.tags ?? [])],
      chunks: [bytes],
      size: bytes.length,
      source: VIAM_SOURCE,
      mtime_ms: Math.floor((timestampToUs(md.file_modify_time) ?? 0) / 1000),
    });
    return { id, binary: type === 'binary', status, bytes: bytes.length };
  };

  return {
    DataCaptureUpload: (call: grpc.ServerUnaryCall<DataCaptureUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!opts.authorized(call.metadata)) return cb(unauth);
      return answer(cb, 'DataCaptureUpload', async () => {
        const md = call.request.metadata;
        if (!md) throw invalidUpload('DataCaptureUploadRequest has no metadata');
        return commitSensorData(md, call.request.sensor_contents ?? []);
      });
    },

    StreamingDataCaptureUpload: (call: grpc.ServerReadableStream<StreamingDataCaptureUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!opts.authorized(call.metadata)) return cb(unauth);
      return answer(cb, 'StreamingDataCaptureUpload', async () => {
        let md: StreamingDataCaptureUploadRequest__Output['metadata'] | undefined;
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const m of call as AsyncIterable<StreamingDataCaptureUploadRequest__Output>) {
          if (!md) {
            if (m.upload_packet !== 'metadata' || !m.metadata?.upload_metadata) throw invalidUpload('first message must be metadata with upload_metadata');
            md = m.metadata;
            continue;
          }
          if (m.upload_packet === 'metadata') throw invalidUpload('metadata sent twice in one upload');
          const d = m.data ?? Buffer.alloc(0);
          size += d.length;
          if (size > maxBytes) throw invalidUpload(`upload exceeds the server limit of ${maxBytes} bytes`);
          chunks.push(d);
        }
        if (!md?.upload_metadata) throw invalidUpload('upload ended without metadata');
        const um = md.upload_metadata;
        const t = dataTypeName(um.type);
        if (t !== 'DATA_TYPE_BINARY_SENSOR' && t !== 'DATA_TYPE_UNSPECIFIED') throw invalidUpload(`StreamingDataCaptureUpload carries binary data, metadata.type is ${t}`);
        const item: SensorData__Output = { metadata: md.sensor_metadata, binary: Buffer.concat(chunks), data: 'binary' };
        return commitSensorData({ ...um, type: 'DATA_TYPE_BINARY_SENSOR' }, [item]);
      });
    },

    FileUpload: (call: grpc.ServerReadableStream<FileUploadRequest__Output, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!opts.authorized(call.metadata)) return cb(unauth);
      return answer(cb, 'FileUpload', async () => {
        let md: UploadMetadata__Output | undefined;
        const chunks: Buffer[] = [];
        const h = createHash('sha256').update('file\0');
        let size = 0;
        for await (const m of call as AsyncIterable<FileUploadRequest__Output>) {
          if (!md) {
            if (m.upload_packet !== 'metadata' || !m.metadata) throw invalidUpload('first message must be metadata');
            md = m.metadata;
            continue;
          }
          if (m.upload_packet === 'metadata') throw invalidUpload('metadata sent twice in one upload');
          const d = m.file_contents?.data ?? Buffer.alloc(0);
          size += d.length;
          if (size > maxBytes) throw invalidUpload(`file exceeds the server limit of ${maxBytes} bytes`);
          chunks.push(d);
          h.update(d);
        }
        if (!md) throw invalidUpload('upload ended without metadata');
        const id = dedupFileId(viamDedupKey(md as UploadMetadataLike, [h.digest()]));
        const status = await opts.commit({
          file_id: id,
          part_id: md.part_id,
          data_type: 'file',
          tags: [...(md.tags ?? [])],
          chunks,
          size,
          source: VIAM_SOURCE,
          mtime_ms: Math.floor((timestampToUs(md.file_modify_time) ?? 0) / 1000),
          file_name: safeViamFileName(md.file_name, md.file_extension, id),
        });
        return { id, binary: true, status, bytes: size };
      });
    },
  };
}
