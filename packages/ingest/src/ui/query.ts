/**
 * The data browser's reads, on any IngestStorage (embedded or PostgreSQL), through the same
 * read APIs the export uses: files() streams the index (PostgreSQL pages it by keyset), a
 * capture file's readings are decoded one file at a time (readBytes → readRecords). Every
 * answer is bounded: a page size, a bucket count, a cap on streams and on readings scanned.
 *
 *   machines   files() ──► per (part, kind, resource, method): files, readings, seq range
 *   readings   the stream's files in first-seq order; whole files skipped by their reading
 *              count until the page's offset, then decoded
 *   series     one pass over the stream's readings, min/max per time bucket; buckets double in
 *              width (neighbours merged) whenever there are more than 2×`buckets`: memory is
 *              bounded and no first pass is needed to learn the time range
 */
import { readRecords } from '@edgecap/format';
import { stringifyChunks, toExportable } from '../json.js';
import type { FileRecord, IngestStorage } from '../storage.js';

export interface StreamRef {
  part_id: string;
  resource_kind: string;
  resource_name: string;
  method: string;
}

export interface StreamSummary extends StreamRef {
  data_type: string;
  files: number;
  readings: number;
  bytes: number;
  first_seq: number | null;
  last_seq: number | null;
  last_received_ms: number;
}

export interface MachineSummary {
  part_id: string;
  streams: StreamSummary[];
  /** Arbitrary (non-capture) files. */
  files: number;
  file_bytes: number;
}

export interface UiLimits {
  /** Streams listed (the rest is counted as truncated). */
  maxStreams: number;
  /** Readings decoded for one plot. */
  maxScanReadings: number;
  /** Capture files of one stream considered per request. */
  maxStreamFiles: number;
  maxPage: number;
  maxBuckets: number;
  /** Largest stored capture file the UI decodes (it is read whole into memory). */
  maxDecodeBytes: number;
}

/** Files above this are refused by the decoding views rather than loaded whole (storage allows 1 GiB). */
export const MAX_UI_DECODE_BYTES = 64 * 1024 * 1024;

export const DEFAULT_UI_LIMITS: UiLimits = { maxStreams: 5000, maxScanReadings: 2_000_000, maxStreamFiles: 100_000, maxPage: 200, maxBuckets: 4000, maxDecodeBytes: MAX_UI_DECODE_BYTES };

/** A stored file too big for the UI to decode (the server answers 413 with this message). */
export class UiFileTooLargeError extends Error {
  readonly code = 'UI_FILE_TOO_LARGE';
  constructor(rec: FileRecord, max: number) {
    super(`capture file ${rec.file_id} is ${rec.size} bytes, over the browser's ${max}-byte limit for decoding; export it instead`);
  }
}

/** Read a capture file's bytes for decoding, refusing one over the UI's cap. */
async function decodeBytes(s: IngestStorage, rec: FileRecord, lim: UiLimits): Promise<Uint8Array> {
  if (rec.size > lim.maxDecodeBytes) throw new UiFileTooLargeError(rec, lim.maxDecodeBytes);
  return s.readBytes(rec);
}

/** How long a stream's file listing is reused: the page asks for fields, series, readings and images at once. */
const STREAM_FILES_TTL_MS = 5000;
const STREAM_FILES_CACHED = 16;
const streamFilesCache = new WeakMap<IngestStorage, Map<string, { at: number; p: Promise<{ files: FileRecord[]; truncated: boolean }> }>>();

const sameStream = (r: FileRecord, s: StreamRef): boolean => r.part_id === s.part_id && r.resource_kind === s.resource_kind && r.resource_name === s.resource_name && r.method === s.method;

export async function listMachines(s: IngestStorage, lim: UiLimits): Promise<{ machines: MachineSummary[]; truncated: boolean }> {
  const streams = new Map<string, StreamSummary>();
  const parts = new Map<string, MachineSummary>();
  let truncated = false;
  const part = (id: string): MachineSummary => {
    let m = parts.get(id);
    if (!m) {
      m = { part_id: id, streams: [], files: 0, file_bytes: 0 };
      parts.set(id, m);
    }
    return m;
  };
  for await (const r of s.files()) {
    if (r.data_type === 'file') {
      if (parts.size < lim.maxStreams || parts.has(r.part_id)) {
        const m = part(r.part_id);
        m.files++;
        m.file_bytes += r.size;
      } else truncated = true;
      continue;
    }
    const key = [r.part_id, r.resource_kind, r.resource_name, r.method].join('\0');
    let st = streams.get(key);
    if (!st) {
      if (streams.size >= lim.maxStreams) {
        truncated = true;
        continue;
      }
      st = { part_id: r.part_id, resource_kind: r.resource_kind, resource_name: r.resource_name, method: r.method, data_type: r.data_type, files: 0, readings: 0, bytes: 0, first_seq: null, last_seq: null, last_received_ms: 0 };
      streams.set(key, st);
      part(r.part_id).streams.push(st);
    }
    st.files++;
    st.bytes += r.size;
    st.readings += r.capture?.readings ?? 0;
    const f = r.capture?.first_seq;
    const l = r.capture?.last_seq;
    if (f !== undefined && (st.first_seq === null || f < st.first_seq)) st.first_seq = f;
    if (l !== undefined && (st.last_seq === null || l > st.last_seq)) st.last_seq = l;
    st.last_received_ms = Math.max(st.last_received_ms, r.received_at_ms);
  }
  const machines = [...parts.values()].sort((a, b) => a.part_id.localeCompare(b.part_id));
  for (const m of machines) m.streams.sort((a, b) => a.resource_kind.localeCompare(b.resource_kind) || a.resource_name.localeCompare(b.resource_name) || a.method.localeCompare(b.method));
  return { machines, truncated };
}

/**
 * The stream's capture files in first-seq order (bounded), shared for a few seconds by parallel
 * and repeated requests. What remains: each miss still scans the whole index, since storage has
 * no per-stream query; one would make this cache unnecessary.
 */
function streamFiles(s: IngestStorage, ref: StreamRef, lim: UiLimits): Promise<{ files: FileRecord[]; truncated: boolean }> {
  let m = streamFilesCache.get(s);
  if (!m) streamFilesCache.set(s, (m = new Map()));
  const key = [ref.part_id, ref.resource_kind, ref.resource_name, ref.method, lim.maxStreamFiles].join('\0');
  const now = Date.now();
  const hit = m.get(key);
  if (hit && now - hit.at < STREAM_FILES_TTL_MS) return hit.p;
  for (const [k, v] of m) if (now - v.at >= STREAM_FILES_TTL_MS) m.delete(k);
  if (m.size >= STREAM_FILES_CACHED) m.delete(m.keys().next().value!);
  const p = scanStreamFiles(s, ref, lim);
  m.set(key, { at: now, p });
  p.catch(() => m.delete(key));
  return p;
}

async function scanStreamFiles(s: IngestStorage, ref: StreamRef, lim: UiLimits): Promise<{ files: FileRecord[]; truncated: boolean }> {
  const out: FileRecord[] = [];
  let truncated = false;
  for await (const r of s.files()) {
    if (r.data_type === 'file' || !sameStream(r, ref)) continue;
    if (out.length >= lim.maxStreamFiles) {
      truncated = true;
      continue;
    }
    out.push(r);
  }
  out.sort((a, b) => (a.capture?.first_seq ?? -1) - (b.capture?.first_seq ?? -1) || a.file_id.localeCompare(b.file_id));
  return { files: out, truncated };
}

interface RawReading {
  seq: number;
  time_requested_us: number;
  time_received_us: number;
  data: unknown;
  mime_type: string | undefined;
  file_id: string;
}

/** The readings of one stored capture file, decoded one at a time from its bytes. */
function* fileReadings(rec: FileRecord, bytes: Uint8Array): Generator<RawReading> {
  let mimeDefault: string | undefined;
  for (const ev of readRecords(bytes, rec.path)) {
    if (ev.kind === 'header') mimeDefault = ev.header.mime_type;
    if (ev.kind !== 'reading') continue;
    const r = ev.reading;
    yield { seq: r.seq, time_requested_us: r.time_requested_us, time_received_us: r.time_received_us, data: r.data, mime_type: r.mime_type ?? mimeDefault, file_id: rec.file_id };
  }
}

/** Readings from `offset` on, whole files skipped by their reading count. */
async function* readingsFrom(s: IngestStorage, files: FileRecord[], offset: number, lim: UiLimits): AsyncGenerator<RawReading> {
  let skip = offset;
  for (const f of files) {
    const n = f.capture?.readings ?? 0;
    if (skip >= n && n > 0) {
      skip -= n;
      continue;
    }
    for (const r of fileReadings(f, await decodeBytes(s, f, lim))) {
      if (skip > 0) {
        skip--;
        continue;
      }
      yield r;
    }
  }
}

/** At most `max` characters of a value's JSON (binary as size + sha256), for a table cell. */
export function previewJson(v: unknown, mime: string | undefined, max = 1000): string {
  const it = stringifyChunks(toExportable(v, mime), undefined, max);
  const first = it.next();
  const text = first.done ? '' : first.value;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export interface ReadingRow {
  seq: number;
  time_requested_us: number;
  time_received_us: number;
  mime_type: string | null;
  data: string;
  file_id: string;
}

export async function readingsPage(s: IngestStorage, ref: StreamRef, offset: number, limit: number, lim: UiLimits): Promise<{ rows: ReadingRow[]; offset: number; more: boolean }> {
  const { files } = await streamFiles(s, ref, lim);
  const rows: ReadingRow[] = [];
  let more = false;
  for await (const r of readingsFrom(s, files, offset, lim)) {
    if (rows.length >= limit) {
      more = true;
      break;
    }
    rows.push({ seq: r.seq, time_requested_us: r.time_requested_us, time_received_us: r.time_received_us, mime_type: r.mime_type ?? null, data: previewJson(r.data, r.mime_type), file_id: r.file_id });
  }
  return { rows, offset, more };
}

/** A field of a reading by dot path (own properties only), as a number, or undefined. */
export function numericField(data: unknown, path: readonly string[]): number | undefined {
  let v = data;
  for (const k of path) {
    if (v instanceof Map) v = v.get(k);
    else if (v !== null && typeof v === 'object' && Object.prototype.hasOwnProperty.call(v, k)) v = (v as Record<string, unknown>)[k];
    else return undefined;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

/** Numeric fields (dot paths) found in the first readings of a stream. */
export async function numericFields(s: IngestStorage, ref: StreamRef, lim: UiLimits): Promise<string[]> {
  const { files } = await streamFiles(s, ref, lim);
  const found = new Set<string>();
  let n = 0;
  for await (const r of readingsFrom(s, files, 0, lim)) {
    const stack: [string, unknown, number][] = [['', r.data, 0]];
    while (stack.length > 0 && found.size < 100) {
      const [p, v, depth] = stack.pop()!;
      if (typeof v === 'number' || typeof v === 'bigint') {
        if (p) found.add(p);
      } else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v) && depth < 8) {
        const entries = v instanceof Map ? [...v.entries()] : Object.entries(v as Record<string, unknown>);
        for (const [k, x] of entries.slice(0, 100)) stack.push([p ? `${p}.${String(k)}` : String(k), x, depth + 1]);
      }
    }
    if (++n >= 20) break;
  }
  return [...found].sort();
}

export interface Series {
  field: string;
  /** Bucket start, seconds since the epoch. */
  t: number[];
  min: number[];
  max: number[];
  count: number[];
  bucket_us: number;
  scanned: number;
  points: number;
  truncated: boolean;
}

/**
 * Min/max per time bucket of a numeric field over [fromUs, toUs] (all time when absent), in one
 * bounded pass: at most 2×`buckets` buckets are ever held.
 */
export async function series(s: IngestStorage, ref: StreamRef, field: string, o: { fromUs?: number; toUs?: number; buckets: number }, lim: UiLimits): Promise<Series> {
  const { files, truncated: fileCap } = await streamFiles(s, ref, lim);
  const pathParts = field.split('.');
  let width = 1000; // µs; doubles as needed
  let buckets = new Map<number, { min: number; max: number; n: number }>();
  let scanned = 0;
  let points = 0;
  let truncated = fileCap;
  const add = (map: Map<number, { min: number; max: number; n: number }>, k: number, min: number, max: number, n: number): void => {
    const b = map.get(k);
    if (!b) map.set(k, { min, max, n });
    else {
      if (min < b.min) b.min = min;
      if (max > b.max) b.max = max;
      b.n += n;
    }
  };
  for await (const r of readingsFrom(s, files, 0, lim)) {
    if (++scanned > lim.maxScanReadings) {
      truncated = true;
      break;
    }
    const t = r.time_requested_us;
    if ((o.fromUs !== undefined && t < o.fromUs) || (o.toUs !== undefined && t > o.toUs)) continue;
    const v = numericField(r.data, pathParts);
    if (v === undefined) continue;
    points++;
    add(buckets, Math.floor(t / width), v, v, 1);
    while (buckets.size > 2 * o.buckets) {
      width *= 2;
      const next = new Map<number, { min: number; max: number; n: number }>();
      for (const [k, b] of buckets) add(next, Math.floor(k / 2), b.min, b.max, b.n);
      buckets = next;
    }
  }
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  return {
    field,
    t: keys.map((k) => (k * width) / 1e6),
    min: keys.map((k) => buckets.get(k)!.min),
    max: keys.map((k) => buckets.get(k)!.max),
    count: keys.map((k) => buckets.get(k)!.n),
    bucket_us: width,
    scanned: Math.min(scanned, lim.maxScanReadings),
    points,
    truncated,
  };
}

export const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
/** Characters of an annotation label shown. */
const MAX_LABEL = 256;

export interface ImageEntry {
  file_id: string;
  seq: number;
  time_requested_us: number;
  mime_type: string;
  size: number;
  /** Labels carried by the reading (bounding boxes, classifications), when it has any. */
  annotations: { label: string; confidence?: number; box?: [number, number, number, number] }[];
}

/** Image bytes and annotations of a reading: raw bytes, or an object with a byte field and `annotations`. */
function imageOf(data: unknown): { bytes: Uint8Array; annotations: ImageEntry['annotations'] } | undefined {
  if (data instanceof Uint8Array) return { bytes: data, annotations: [] };
  if (data === null || typeof data !== 'object') return undefined;
  const o = data as Record<string, unknown>;
  const bytes = Object.values(o).find((x): x is Uint8Array => x instanceof Uint8Array);
  if (!bytes) return undefined;
  const out: ImageEntry['annotations'] = [];
  const a = o.annotations as { bboxes?: unknown; classifications?: unknown } | undefined;
  // Labels come from devices: shown truncated.
  const label = (x: unknown): string => String(x ?? '').slice(0, MAX_LABEL);
  const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
  if (a && typeof a === 'object') {
    for (const b of (Array.isArray(a.bboxes) ? a.bboxes : []).slice(0, 50) as Record<string, unknown>[]) {
      const box = [num(b?.x_min_normalized), num(b?.y_min_normalized), num(b?.x_max_normalized), num(b?.y_max_normalized)];
      const e: ImageEntry['annotations'][number] = { label: label(b?.label) };
      const c = num(b?.confidence);
      if (c !== undefined) e.confidence = c;
      if (box.every((x) => x !== undefined)) e.box = box as [number, number, number, number];
      out.push(e);
    }
    for (const c of (Array.isArray(a.classifications) ? a.classifications : []).slice(0, 50) as Record<string, unknown>[]) {
      const e: ImageEntry['annotations'][number] = { label: label(c?.label) };
      const conf = num(c?.confidence);
      if (conf !== undefined) e.confidence = conf;
      out.push(e);
    }
  }
  return { bytes, annotations: out };
}

export async function imagesPage(s: IngestStorage, ref: StreamRef, offset: number, limit: number, lim: UiLimits): Promise<{ images: ImageEntry[]; more: boolean }> {
  const { files } = await streamFiles(s, ref, lim);
  const images: ImageEntry[] = [];
  let more = false;
  let scanned = 0;
  for await (const r of readingsFrom(s, files, offset, lim)) {
    if (++scanned > lim.maxScanReadings) break;
    const img = imageOf(r.data);
    if (!img || !r.mime_type || !IMAGE_TYPES.has(r.mime_type)) continue;
    if (images.length >= limit) {
      more = true;
      break;
    }
    images.push({ file_id: r.file_id, seq: r.seq, time_requested_us: r.time_requested_us, mime_type: r.mime_type, size: img.bytes.length, annotations: img.annotations });
  }
  return { images, more };
}

/** One image's bytes (a stored reading), or undefined. */
export async function imageBytes(s: IngestStorage, partId: string, fileId: string, seq: number, lim: UiLimits): Promise<{ bytes: Uint8Array; mime: string } | undefined> {
  const rec = await s.get(partId, fileId);
  if (!rec || rec.data_type === 'file') return undefined;
  for (const r of fileReadings(rec, await decodeBytes(s, rec, lim))) {
    if (r.seq !== seq) continue;
    const img = imageOf(r.data);
    if (!img || !r.mime_type || !IMAGE_TYPES.has(r.mime_type)) return undefined;
    return { bytes: img.bytes, mime: r.mime_type };
  }
  return undefined;
}

export interface FileEntry {
  file_id: string;
  source: string;
  file_name: string;
  size: number;
  sha256: string;
  received_at_ms: number;
}

/** Arbitrary files of a part, a page at a time in index order. */
export async function filesPage(s: IngestStorage, partId: string, offset: number, limit: number): Promise<{ files: FileEntry[]; more: boolean }> {
  const out: FileEntry[] = [];
  let skip = offset;
  for await (const r of s.files()) {
    if (r.data_type !== 'file' || r.part_id !== partId) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    if (out.length >= limit) return { files: out, more: true };
    out.push({ file_id: r.file_id, source: r.source, file_name: r.file_name ?? r.file_id, size: r.size, sha256: r.sha256, received_at_ms: r.received_at_ms });
  }
  return { files: out, more: false };
}
