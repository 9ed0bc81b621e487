/**
 * The edge side of viam.app.datasync.v1: one upload attempt of one local file (no retries,
 * no sleeping: failures come back as data, the sync engine decides).
 *
 *   edgecap capture file ─ tabular ─► DataCaptureUpload(metadata, SensorData[])    (batches ≤ 4 MiB)
 *                        └ binary ──► per item: ≤ 1 MiB DataCaptureUpload(metadata, [item])
 *                                               > 1 MiB StreamingDataCaptureUpload(md, 64 KiB chunks)
 *   viam-server .capture ─ the same, from its DataCaptureMetadata + SensorData
 *   arbitrary file ──────► FileUpload(metadata, 64 KiB chunks)
 *
 * Every call is idempotent on an edgecap ingest (dedup key over metadata + contents), so a
 * file re-sent after a lost ack is stored once.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { readCaptureBytes, type CaptureFileHeader } from '@edgecap/format';
import { readViamCaptureBytes } from './capture-file.js';
import { captureTypeOf, dedupFileId, extensionOfMime, paramsToAnyMap, readingToSensorData, readingsToCaptureBytes, sensorItemDigest, usToTimestamp, viamDedupKey, type UploadMetadataLike } from './convert.js';
import { ViamDataError, invalidFile } from './errors.js';
import { loadViamProto, encodeMessage, type DataCaptureMetadata__Output, type DataSyncServiceClient, type SensorData, type UploadMetadata } from './proto.js';
import { UPLOAD_STATUS_TRAILER } from './service.js';

export const VIAM_CHUNK_BYTES = 64 * 1024;
/** Binary items up to this size go unary; larger ones are streamed. */
export const VIAM_UNARY_BINARY_MAX = 1024 * 1024;
/** Tabular SensorData are sent in DataCaptureUpload batches of at most this many bytes. */
export const VIAM_TABULAR_BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024;

export interface ViamUploadTask {
  path: string;
  /** What the file is: an edgecap capture file, a viam-server `.capture` file, or an arbitrary file. */
  kind: 'capture' | 'viam-capture' | 'file';
  partId: string;
  /** Added to the file's own tags. */
  tags?: string[];
  /** Arbitrary files: the name to send ('/'-separated, relative); default the base name. */
  fileName?: string;
  /** Sent as `authorization: Bearer <apiKey>`: an API key, or an access token from AuthService. */
  apiKey?: string;
  /** Deadline per call, ms (default 120 s + 1 s per 256 KiB of the file). */
  deadlineMs?: number;
  /**
   * The edge's bandwidth cap (sync_max_bytes_per_second): awaited with the byte count before
   * each message that carries data (chunks of 64 KiB; a unary call's whole payload).
   */
  pace?: (bytes: number) => Promise<void>;
}

type Pace = (bytes: number) => Promise<void>;
const unpaced: Pace = () => Promise.resolve();

export type ViamUploadOutcome =
  | { ok: true; status: 'committed' | 'already_have'; bytes: number; sha256: string; calls: number }
  | { ok: false; kind: 'status' | 'local' | 'invalid'; grpcCode?: number; errno?: string; message: string };

export function createViamClient(address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions): DataSyncServiceClient {
  const Ctor = loadViamProto().viam.app.datasync.v1.DataSyncService;
  return new Ctor(address, creds, options) as unknown as DataSyncServiceClient;
}

class CallFailed extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(message);
  }
}

type Status = 'committed' | 'already_have';
const statusOf = (md: grpc.Metadata | undefined): Status => (md?.get(UPLOAD_STATUS_TRAILER)[0] === 'already_have' ? 'already_have' : 'committed');

/** Resolve once both the callback and the final status (with trailers) arrived. */
function settle(resolve: (s: Status) => void, reject: (e: Error) => void): { cb: (err: grpc.ServiceError | null) => void; onStatus: (s: grpc.StatusObject) => void } {
  let err: grpc.ServiceError | null | undefined;
  let status: grpc.StatusObject | undefined;
  const done = (): void => {
    if (err === undefined || status === undefined) return;
    if (err) reject(new CallFailed(err.code, err.details || err.message));
    else resolve(statusOf(status.metadata));
  };
  return {
    cb: (e) => {
      err = e;
      done();
    },
    onStatus: (s) => {
      status = s;
      done();
    },
  };
}

function unary(client: DataSyncServiceClient, req: { metadata: UploadMetadata; sensor_contents: SensorData[] }, md: grpc.Metadata, deadline: number): Promise<Status> {
  return new Promise<Status>((resolve, reject) => {
    const s = settle(resolve, reject);
    const call = client.DataCaptureUpload(req, md, { deadline }, (e) => s.cb(e));
    call.on('status', s.onStatus);
  });
}

/** A client-streaming call: first message, then `chunks()` as messages, with back-pressure. */
function streaming(
  start: (cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<unknown>,
  first: object,
  chunks: AsyncIterable<object> | Iterable<object>,
): Promise<Status> {
  return new Promise<Status>((resolve, reject) => {
    const s = settle(resolve, reject);
    let ended = false;
    const call = start((e) => {
      ended = true;
      s.cb(e);
    });
    call.on('status', (st: grpc.StatusObject) => {
      ended = true;
      s.onStatus(st);
    });
    call.on('error', () => undefined); // reported through the callback
    const write = (msg: object): Promise<void> =>
      new Promise<void>((res) => {
        if (ended || call.write(msg)) return res();
        const go = (): void => {
          call.off('drain', go).off('status', go).off('error', go);
          res();
        };
        call.on('drain', go).on('status', go).on('error', go);
      });
    void (async () => {
      try {
        await write(first);
        for await (const m of chunks) {
          if (ended) break;
          await write(m);
        }
        call.end();
      } catch (e) {
        call.cancel();
        reject(e as Error);
      }
    })();
  });
}

async function* sliceChunks(b: Uint8Array, wrap: (d: Uint8Array) => object, pace: Pace): AsyncGenerator<object> {
  for (let o = 0; o < b.length; o += VIAM_CHUNK_BYTES) {
    const d = b.subarray(o, Math.min(b.length, o + VIAM_CHUNK_BYTES));
    await pace(d.length);
    yield wrap(d);
  }
}

const uniq = (xs: string[]): string[] => [...new Set(xs)];

/** UploadMetadata for an edgecap capture file. */
export function uploadMetadataOfHeader(h: CaptureFileHeader, partId: string, tags: string[] = []): UploadMetadata {
  return {
    part_id: h.part_id || partId,
    component_type: h.kind,
    component_name: h.name,
    method_name: h.method,
    type: h.type === 'binary' ? 'DATA_TYPE_BINARY_SENSOR' : 'DATA_TYPE_TABULAR_SENSOR',
    method_parameters: paramsToAnyMap(h.params),
    file_extension: h.type === 'binary' ? extensionOfMime(h.mime_type) : '.dat',
    tags: uniq([...(h.tags ?? []), ...tags]),
    mime_type: h.mime_type ?? '',
  };
}

/** UploadMetadata for a viam-server `.capture` file (what viam-server itself would send). */
export function uploadMetadataOfViam(md: DataCaptureMetadata__Output, partId: string, tags: string[] = []): UploadMetadata {
  return {
    part_id: partId,
    component_type: md.component_type,
    component_name: md.component_name,
    method_name: md.method_name,
    type: md.type,
    method_parameters: md.method_parameters,
    file_extension: md.file_extension,
    tags: uniq([...(md.tags ?? []), ...tags]),
    mime_type: md.mime_type,
  };
}

/** Send tabular items in size-bounded batches, binary items one per call (unary or streamed). */
async function sendSensorData(client: DataSyncServiceClient, md: UploadMetadata, items: SensorData[], binary: boolean, callMd: grpc.Metadata, deadline: () => number, pace: Pace): Promise<{ calls: number; status: Status }> {
  let calls = 0;
  let allAlready = true;
  const note = (s: Status): void => {
    calls++;
    if (s !== 'already_have') allAlready = false;
  };
  if (!binary) {
    let batch: SensorData[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await pace(size);
      note(await unary(client, { metadata: md, sensor_contents: batch }, callMd, deadline()));
      batch = [];
      size = 0;
    };
    for (const sd of items) {
      const n = encodeMessage('SensorData', sd).length + 8;
      if (size + n > VIAM_TABULAR_BATCH_BYTES) await flush();
      batch.push(sd);
      size += n;
    }
    await flush();
  } else {
    for (const sd of items) {
      const bin = sd.binary as Uint8Array;
      if (bin.length <= VIAM_UNARY_BINARY_MAX) {
        await pace(bin.length);
        note(await unary(client, { metadata: md, sensor_contents: [sd] }, callMd, deadline()));
      } else {
        const first = { metadata: { upload_metadata: md, sensor_metadata: sd.metadata } };
        note(await streaming((cb) => client.StreamingDataCaptureUpload(callMd, { deadline: deadline() }, cb) as unknown as grpc.ClientWritableStream<unknown>, first, sliceChunks(bin, (d) => ({ data: d }), pace)));
      }
    }
  }
  return { calls, status: calls > 0 && allAlready ? 'already_have' : 'committed' };
}

async function* fileChunks(fh: fs.FileHandle, size: number, hash: ReturnType<typeof createHash>, pace: Pace): AsyncGenerator<object> {
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(VIAM_CHUNK_BYTES, size - pos));
    await pace(buf.length);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) throw Object.assign(new Error(`file shrank during upload at byte ${pos} of ${size}`), { code: 'ESHRANK' });
    const d = buf.subarray(0, bytesRead);
    hash.update(d);
    pos += bytesRead;
    yield { file_contents: { data: d } };
  }
}

/** One upload attempt of one file over viam.app.datasync.v1. Never throws. */
export async function uploadViam(task: ViamUploadTask, client: DataSyncServiceClient): Promise<ViamUploadOutcome> {
  const callMd = new grpc.Metadata();
  if (task.apiKey) callMd.set('authorization', `Bearer ${task.apiKey}`);
  let size = 0;
  const deadline = (): number => Date.now() + (task.deadlineMs ?? 120_000 + Math.ceil(size / (256 * 1024)) * 1000);
  const pace = task.pace ?? unpaced;
  try {
    if (task.kind === 'file') {
      let fh: fs.FileHandle;
      try {
        fh = await fs.open(task.path, 'r');
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        return { ok: false, kind: 'local', errno: err.code, message: `cannot open ${task.path}: ${err.message}` };
      }
      try {
        const st = await fh.stat();
        size = st.size;
        const hash = createHash('sha256');
        const md: UploadMetadata = {
          part_id: task.partId,
          type: 'DATA_TYPE_FILE',
          file_name: task.fileName ?? path.basename(task.path),
          file_extension: path.extname(task.path),
          tags: uniq(task.tags ?? []),
          file_modify_time: usToTimestamp(Math.floor(st.mtimeMs) * 1000),
        };
        const status = await streaming((cb) => client.FileUpload(callMd, { deadline: deadline() }, cb) as unknown as grpc.ClientWritableStream<unknown>, { metadata: md }, fileChunks(fh, size, hash, pace));
        return { ok: true, status, bytes: size, sha256: hash.digest('hex'), calls: 1 };
      } finally {
        await fh.close().catch(() => undefined);
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = await fs.readFile(task.path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` };
    }
    size = bytes.length;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    let md: UploadMetadata;
    let items: SensorData[];
    let binary: boolean;
    if (task.kind === 'capture') {
      const s = readCaptureBytes(bytes, task.path);
      if (!s.header) return { ok: false, kind: 'invalid', message: `${task.path} is not a valid edgecap capture file: ${s.problems[0]?.reason ?? 'no header'}` };
      binary = s.header.type === 'binary';
      md = uploadMetadataOfHeader(s.header, task.partId, task.tags);
      const h = s.header;
      items = s.readings.map((r) => readingToSensorData({ ...r, mime_type: r.mime_type ?? h.mime_type }, binary));
    } else {
      const c = readViamCaptureBytes(bytes);
      if (!c.metadata) return { ok: false, kind: 'invalid', message: `${task.path} is not a viam-server capture file: ${c.problems[0]?.reason ?? 'no metadata'}` };
      md = uploadMetadataOfViam(c.metadata, task.partId, task.tags);
      binary = c.metadata.type === 'DATA_TYPE_BINARY_SENSOR' || (c.metadata.type !== 'DATA_TYPE_TABULAR_SENSOR' && c.sensorData[0]?.data === 'binary');
      items = c.sensorData;
    }
    const r = await sendSensorData(client, md, items, binary, callMd, deadline, pace);
    return { ok: true, status: r.status, bytes: size, sha256, calls: r.calls };
  } catch (e) {
    if (e instanceof CallFailed) return { ok: false, kind: 'status', grpcCode: e.grpcCode, message: e.message };
    if (e instanceof ViamDataError) return { ok: false, kind: 'invalid', message: `${task.path}: ${e.message}` };
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'local', errno: err.code, message: `${task.path}: ${err.message}` };
  }
}

/**
 * A viam-server `.capture` file as edgecap capture bytes (for upload over edgecap's own
 * protocol): the same dedup key, and so the same file id, as the ingest computes when the
 * file arrives as one DataCaptureUpload.
 */
export function viamCaptureToEdgecap(
  bytes: Uint8Array,
  partId: string,
  tags: string[] = [],
): { bytes: Uint8Array; fileId: string; type: 'tabular' | 'binary'; metadata: UploadMetadata; readings: number } {
  const c = readViamCaptureBytes(bytes);
  if (!c.metadata) throw invalidFile(`not a viam-server capture file: ${c.problems[0]?.reason ?? 'no metadata'}`);
  const md = uploadMetadataOfViam(c.metadata, partId, tags);
  const type = captureTypeOf(md.type, c.sensorData[0]);
  const fileId = dedupFileId(viamDedupKey(md as UploadMetadataLike, c.sensorData.map(sensorItemDigest)));
  return { bytes: readingsToCaptureBytes(fileId, md as UploadMetadataLike, type, c.readings), fileId, type, metadata: md, readings: c.readings.length };
}
