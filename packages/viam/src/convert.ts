/**
 * Converters between viam.app.datasync.v1 messages and edgecap's model, and the
 * deterministic dedup key for uploads that carry no file id.
 *
 *   SensorData.struct (google.protobuf.Struct) ⇄ plain object (msgpack-able)
 *   SensorData.binary (bytes)                  ⇄ Uint8Array
 *   google.protobuf.Timestamp                  ⇄ µs since the epoch
 *   UploadMetadata + SensorData[]              ─► edgecap capture file bytes (header + READING frames)
 *
 * Dedup key (viam-server re-sends a whole upload after a lost ack, without any id):
 *   sha256( lp("edgecap/viam-dedup/v1") lp(part_id) lp(canonical UploadMetadata)
 *           lp(#items) lp(itemDigest)... )
 *   itemDigest(sensor) = sha256( lp(canonical SensorMetadata) lp("struct"|"binary") lp(payload) )
 *   itemDigest(file)   = sha256( "file\0" bytes )
 * lp = 8-byte big-endian length + bytes; canonical = JSON with sorted keys. A binary item
 * sent unary or streamed gets the same key; the stored file id is the key as a UUID-shaped
 * string (first 128 bits).
 */
import { createHash, type Hash } from 'node:crypto';
import { FrameEncoder, FrameType, encodeFileStart, encodeFrame, type HeaderInit, type ReadingAnnotations } from '@edgecap/format';
import { invalidUpload } from './errors.js';
import { decodeMessage, encodeMessage } from './proto.js';
import type { Annotations, Annotations__Output } from './gen/viam/app/datasync/v1/Annotations.js';
import type { SensorMetadata } from './gen/viam/app/datasync/v1/SensorMetadata.js';
import type { Any__Output, SensorData, SensorData__Output, SensorMetadata__Output, Struct, Struct__Output, Timestamp, Timestamp__Output, Value, Value__Output, ViamDataType, ViamMimeType } from './proto.js';

// ── Struct ⇄ plain ─────────────────────────────────────────────────────────────

export function valueToJs(v: Value__Output | null | undefined): unknown {
  if (!v) return null;
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'structValue':
      return structToObject(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJs);
    default:
      return null;
  }
}

/** google.protobuf.Struct (loader shape) → plain object. */
export function structToObject(s: Struct__Output | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = valueToJs(v);
  return out;
}

/**
 * Any msgpack-decoded value → google.protobuf.Value. Lossy where JSON is: bigint → number,
 * bytes → base64 string, Map keys → strings, undefined → null.
 */
export function jsToValue(v: unknown): Value {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'bigint') return { numberValue: Number(v) };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (v instanceof Uint8Array) return { stringValue: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (v instanceof Date) return { stringValue: v.toISOString() };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsToValue) } };
  if (v instanceof Map) return { structValue: objectToStruct(Object.fromEntries([...v].map(([k, x]) => [String(k), x]))) };
  if (typeof v === 'object') return { structValue: objectToStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}

/** Plain object → google.protobuf.Struct. A non-object value is wrapped as `{ value: v }`. */
export function objectToStruct(o: unknown): Struct {
  const obj: Record<string, unknown> =
    o instanceof Map ? Object.fromEntries([...o].map(([k, x]) => [String(k), x])) : o && typeof o === 'object' && !Array.isArray(o) && !(o instanceof Uint8Array) ? (o as Record<string, unknown>) : { value: o };
  const fields: Record<string, Value> = {};
  for (const [k, x] of Object.entries(obj)) fields[k] = jsToValue(x);
  return { fields };
}

// ── Timestamps, MIME ───────────────────────────────────────────────────────────

export function timestampToUs(ts: Timestamp__Output | null | undefined): number | undefined {
  if (!ts) return undefined;
  return Number(ts.seconds ?? 0) * 1_000_000 + Math.floor((ts.nanos ?? 0) / 1000);
}

export function usToTimestamp(us: number): Timestamp {
  const seconds = Math.floor(us / 1_000_000);
  return { seconds, nanos: Math.round(us - seconds * 1_000_000) * 1000 };
}

const MIME_OF: Record<string, string> = {
  MIME_TYPE_IMAGE_JPEG: 'image/jpeg',
  MIME_TYPE_IMAGE_PNG: 'image/png',
  MIME_TYPE_APPLICATION_PCD: 'pointcloud/pcd',
  MIME_TYPE_VIDEO_MP4: 'video/mp4',
};

/** The deprecated SensorMetadata.mime_type enum as a MIME string (undefined when unspecified). */
export function mimeOfEnum(e: unknown): string | undefined {
  return typeof e === 'string' ? MIME_OF[e] : undefined;
}

export function enumOfMime(mime: string | undefined): ViamMimeType {
  for (const [k, v] of Object.entries(MIME_OF)) if (v === mime) return k as ViamMimeType;
  return 'MIME_TYPE_UNSPECIFIED';
}

const EXT_OF: Record<string, string> = { 'image/jpeg': '.jpeg', 'image/png': '.png', 'pointcloud/pcd': '.pcd', 'video/mp4': '.mp4' };
export const extensionOfMime = (mime: string | undefined): string => (mime ? (EXT_OF[mime] ?? '') : '');

// ── method parameters (map<string, Any>) ───────────────────────────────────────

const VALUE_URL = 'type.googleapis.com/google.protobuf.Value';
const STRUCT_URL = 'type.googleapis.com/google.protobuf.Struct';

/** method_parameters → plain params: Value/Struct decoded, other Any kept as {type_url, value}. */
export function anyMapToParams(m: Record<string, Any__Output> | null | undefined): Record<string, unknown> | undefined {
  const entries = Object.entries(m ?? {});
  if (entries.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, a] of entries) {
    const value = new Uint8Array(a.value ?? []);
    try {
      if (a.type_url === VALUE_URL) out[k] = valueToJs(decodeMessage<Value__Output>('google.protobuf.Value', value));
      else if (a.type_url === STRUCT_URL) out[k] = structToObject(decodeMessage<Struct__Output>('google.protobuf.Struct', value));
      else out[k] = { type_url: a.type_url, value };
    } catch {
      out[k] = { type_url: a.type_url, value };
    }
  }
  return out;
}

/** Plain params → method_parameters: {type_url, value} kept, anything else as a google.protobuf.Value. */
export function paramsToAnyMap(p: Record<string, unknown> | undefined): Record<string, { type_url: string; value: Uint8Array }> {
  const out: Record<string, { type_url: string; value: Uint8Array }> = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    const o = v as { type_url?: unknown; value?: unknown } | null;
    if (o && typeof o === 'object' && typeof o.type_url === 'string' && o.value instanceof Uint8Array) out[k] = { type_url: o.type_url, value: o.value };
    else out[k] = { type_url: VALUE_URL, value: encodeMessage('google.protobuf.Value', jsToValue(v)) };
  }
  return out;
}

// ── canonical JSON and the dedup key ──────────────────────────────────────────

/** Deterministic JSON: sorted object keys, bytes as {"$bytes": base64}, bigint as string. */
export function canonicalJson(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (x === undefined || x === null) return null;
    if (typeof x === 'bigint') return x.toString();
    if (x instanceof Uint8Array) return { $bytes: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64') };
    if (Array.isArray(x)) return x.map(norm);
    if (x instanceof Map) return norm(Object.fromEntries([...x].map(([k, y]) => [String(k), y])));
    if (typeof x === 'object') {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(x as object).sort()) {
        const y = (x as Record<string, unknown>)[k];
        if (y !== undefined) o[k] = norm(y);
      }
      return o;
    }
    return x;
  };
  return JSON.stringify(norm(v));
}

/** The fields of UploadMetadata that identify an upload, normalised (defaults, enum names, µs). */
export interface UploadMetadataLike {
  part_id?: string;
  component_type?: string;
  component_name?: string;
  method_name?: string;
  type?: ViamDataType | string | number;
  file_name?: string;
  method_parameters?: Record<string, Any__Output> | Record<string, { type_url: string; value: Uint8Array }> | null;
  file_extension?: string;
  tags?: string[];
  dataset_ids?: string[];
  mime_type?: string;
  file_create_time?: Timestamp__Output | null;
  file_modify_time?: Timestamp__Output | null;
}

const DATA_TYPE_NAMES = ['DATA_TYPE_UNSPECIFIED', 'DATA_TYPE_BINARY_SENSOR', 'DATA_TYPE_TABULAR_SENSOR', 'DATA_TYPE_FILE'] as const;
export const dataTypeName = (t: unknown): string => (typeof t === 'number' ? (DATA_TYPE_NAMES[t] ?? String(t)) : typeof t === 'string' && t ? t : 'DATA_TYPE_UNSPECIFIED');

export function canonicalUploadMetadata(md: UploadMetadataLike): string {
  const params: Record<string, unknown> = {};
  for (const [k, a] of Object.entries(md.method_parameters ?? {})) params[k] = { type_url: a.type_url ?? '', value: new Uint8Array(a.value ?? []) };
  return canonicalJson({
    part_id: md.part_id ?? '',
    component_type: md.component_type ?? '',
    component_name: md.component_name ?? '',
    method_name: md.method_name ?? '',
    type: dataTypeName(md.type),
    file_name: md.file_name ?? '',
    method_parameters: params,
    file_extension: md.file_extension ?? '',
    tags: [...(md.tags ?? [])],
    dataset_ids: [...(md.dataset_ids ?? [])],
    mime_type: md.mime_type ?? '',
    file_create_time: timestampToUs(md.file_create_time) ?? null,
    file_modify_time: timestampToUs(md.file_modify_time) ?? null,
  });
}

function lp(h: Hash, b: Uint8Array | string): void {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(buf.length));
  h.update(len);
  h.update(buf);
}

export const DEDUP_DOMAIN = 'edgecap/viam-dedup/v1';

function canonicalSensorMetadata(m: SensorMetadata__Output | null | undefined): string {
  const a = m?.annotations;
  return canonicalJson({
    time_requested: timestampToUs(m?.time_requested) ?? null,
    time_received: timestampToUs(m?.time_received) ?? null,
    mime_type: typeof m?.mime_type === 'string' ? m.mime_type : 'MIME_TYPE_UNSPECIFIED',
    annotations: a
      ? {
          bboxes: (a.bboxes ?? []).map((b) => [b.id, b.label, b.x_min_normalized, b.y_min_normalized, b.x_max_normalized, b.y_max_normalized, b.confidence ?? null]),
          // id appended only when set: digests of items whose classifications have no id (all
          // of them before viam added the field) stay what they were
          classifications: (a.classifications ?? []).map((c) => (c.id ? [c.label, c.confidence ?? null, c.id] : [c.label, c.confidence ?? null])),
        }
      : null,
  });
}

/** Digest of one SensorData item (struct or binary). */
export function sensorItemDigest(sd: SensorData__Output): Buffer {
  const h = createHash('sha256');
  lp(h, canonicalSensorMetadata(sd.metadata));
  if (sd.data === 'binary' || (sd.data === undefined && sd.binary !== undefined)) {
    lp(h, 'binary');
    lp(h, sd.binary ?? new Uint8Array(0));
  } else {
    lp(h, 'struct');
    lp(h, canonicalJson(structToObject(sd.struct)));
  }
  return h.digest();
}

/**
 * The digest of one binary SensorData item, streamed: the hash is primed with everything
 * `sensorItemDigest` hashes before the payload (whose length must be known up front); update
 * it with exactly `size` payload bytes, then digest() equals sensorItemDigest of that item.
 */
export function binaryItemHash(m: SensorMetadata__Output | null | undefined, size: number): Hash {
  const h = createHash('sha256');
  lp(h, canonicalSensorMetadata(m));
  lp(h, 'binary');
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(size));
  h.update(len);
  return h;
}

/** Incremental digest of an arbitrary file's bytes. */
export function fileItemDigest(chunks: Iterable<Uint8Array>): Buffer {
  const h = createHash('sha256').update('file\0');
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** The dedup key (hex sha256) of an upload: metadata plus item digests in order. */
export function viamDedupKey(md: UploadMetadataLike, itemDigests: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  lp(h, DEDUP_DOMAIN);
  lp(h, md.part_id ?? '');
  lp(h, canonicalUploadMetadata(md));
  lp(h, String(itemDigests.length));
  for (const d of itemDigests) lp(h, d);
  return h.digest('hex');
}

/** The key as the stored file id: UUID-shaped (8-4-4-4-12 hex of the first 128 bits). */
export function dedupFileId(keyHex: string): string {
  const k = keyHex.toLowerCase();
  return `${k.slice(0, 8)}-${k.slice(8, 12)}-${k.slice(12, 16)}-${k.slice(16, 20)}-${k.slice(20, 32)}`;
}

// ── annotations ───────────────────────────────────────────────────────────────

const finite = (n: unknown): number => (typeof n === 'number' ? n : Number(n ?? 0));

/**
 * SensorMetadata.annotations as stored with a reading (format's ReadingAnnotations): every
 * field viam sends, in viam's order; confidence only when sent, a classification's id only when
 * set. Undefined when there are none, so an unannotated item is stored exactly as before.
 */
export function annotationsOf(a: Annotations__Output | null | undefined): ReadingAnnotations | undefined {
  const bboxes = a?.bboxes ?? [];
  const classifications = a?.classifications ?? [];
  if (bboxes.length === 0 && classifications.length === 0) return undefined;
  return {
    bboxes: bboxes.map((b) => {
      const o: ReadingAnnotations['bboxes'][number] = {
        id: b.id ?? '',
        label: b.label ?? '',
        x_min_normalized: finite(b.x_min_normalized),
        y_min_normalized: finite(b.y_min_normalized),
        x_max_normalized: finite(b.x_max_normalized),
        y_max_normalized: finite(b.y_max_normalized),
      };
      if (b.confidence != null) o.confidence = finite(b.confidence);
      return o;
    }),
    classifications: classifications.map((c) => {
      const o: ReadingAnnotations['classifications'][number] = { label: c.label ?? '' };
      if (c.confidence != null) o.confidence = finite(c.confidence);
      if (c.id) o.id = c.id;
      return o;
    }),
  };
}

/** Bounding boxes plus classifications of one item (what the ingest bounds). */
export function annotationCount(m: SensorMetadata__Output | null | undefined): number {
  return (m?.annotations?.bboxes?.length ?? 0) + (m?.annotations?.classifications?.length ?? 0);
}

/**
 * A stored reading's annotations back as SensorMetadata.annotations (the edge re-sending a
 * file). A file is read as it is: lists that are not lists count as empty.
 */
export function annotationsToProto(a: ReadingAnnotations): Annotations {
  return {
    bboxes: Array.isArray(a.bboxes) ? a.bboxes.map((b) => ({ ...b })) : [],
    classifications: Array.isArray(a.classifications) ? a.classifications.map((c) => ({ ...c })) : [],
  };
}

// ── SensorData ⇄ readings, capture bytes ─────────────────────────────────────

export interface ViamReading {
  time_requested_us: number;
  time_received_us: number;
  /** Tabular: the struct as a plain object. Binary: the bytes. */
  data: Record<string, unknown> | Uint8Array;
  /** From the (deprecated) SensorMetadata.mime_type enum, when set. */
  mime_type?: string;
  /** SensorMetadata.annotations (bounding boxes, classifications), when there are any. */
  annotations?: ReadingAnnotations;
}

export function sensorDataToReading(sd: SensorData__Output): ViamReading {
  const tReq = timestampToUs(sd.metadata?.time_requested) ?? 0;
  const tRecv = timestampToUs(sd.metadata?.time_received) ?? tReq;
  const isBinary = sd.data === 'binary' || (sd.data === undefined && sd.binary !== undefined);
  const data = isBinary ? new Uint8Array(sd.binary ?? new Uint8Array(0)) : structToObject(sd.struct);
  const r: ViamReading = { time_requested_us: tReq, time_received_us: tRecv, data };
  const mime = mimeOfEnum(sd.metadata?.mime_type);
  if (mime) r.mime_type = mime;
  const ann = annotationsOf(sd.metadata?.annotations);
  if (ann) r.annotations = ann;
  return r;
}

export function readingToSensorData(r: { time_requested_us: number; time_received_us: number; data: unknown; mime_type?: string; annotations?: ReadingAnnotations }, binary: boolean): SensorData {
  const metadata: SensorMetadata = { time_requested: usToTimestamp(r.time_requested_us), time_received: usToTimestamp(r.time_received_us), mime_type: enumOfMime(r.mime_type) };
  if (r.annotations) metadata.annotations = annotationsToProto(r.annotations);
  if (binary) {
    if (!(r.data instanceof Uint8Array)) throw invalidUpload('binary reading is not a byte array');
    return { metadata, binary: r.data };
  }
  return { metadata, struct: objectToStruct(r.data) };
}

/** tabular | binary from the metadata type, or from the first item when unspecified. */
export function captureTypeOf(type: unknown, first: SensorData__Output | undefined): 'tabular' | 'binary' {
  const t = dataTypeName(type);
  if (t === 'DATA_TYPE_BINARY_SENSOR') return 'binary';
  if (t === 'DATA_TYPE_TABULAR_SENSOR') return 'tabular';
  return first && (first.data === 'binary' || first.binary !== undefined) ? 'binary' : 'tabular';
}

/**
 * An edgecap capture file holding one viam upload: header (id = the dedup file id) and one
 * READING frame per item, seq = index within the upload.
 */
export function readingsToCaptureBytes(fileId: string, md: UploadMetadataLike, type: 'tabular' | 'binary', readings: readonly ViamReading[]): Uint8Array {
  const init = captureHeaderInit(fileId, md, type, readings[0]?.time_requested_us ?? 0);
  const parts: Uint8Array[] = [encodeFileStart(init).bytes];
  const enc = new FrameEncoder();
  readings.forEach((r, seq) => {
    parts.push(encodeFrame(FrameType.READING, enc.readingPayload(seq, r.time_requested_us, r.time_received_us, r.data, readingMime(init, r.mime_type), r.annotations)));
  });
  return Buffer.concat(parts);
}

/** The capture header of a viam upload (readingsToCaptureBytes and its streaming twin share it). */
export function captureHeaderInit(fileId: string, md: UploadMetadataLike, type: 'tabular' | 'binary', startUs: number): HeaderInit {
  const init: HeaderInit = {
    id: fileId,
    kind: md.component_type || 'unknown',
    name: md.component_name || 'unknown',
    method: md.method_name || 'unknown',
    type,
    tags: [...(md.tags ?? [])],
    start_us: startUs,
  };
  if (md.part_id) init.part_id = md.part_id;
  const headerMime = md.mime_type || undefined;
  if (headerMime) init.mime_type = headerMime;
  const params = anyMapToParams(md.method_parameters as Record<string, Any__Output> | undefined);
  if (params) init.params = params;
  return init;
}

/** A reading's own mime type, written only when it differs from the header's. */
export const readingMime = (init: HeaderInit, mime: string | undefined): string | undefined => (mime && mime !== init.mime_type ? mime : undefined);
