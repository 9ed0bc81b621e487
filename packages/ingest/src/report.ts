/**
 * What was received, read back from the index and the stored files: usable while a server
 * writes to the same data dir (LMDB readers never block the writer) and after it stopped.
 */
import { createHash } from 'node:crypto';
import { readCaptureBytes } from '@edgecap/format';
import { PgStorage } from './pg/storage.js';
import { acquireExisting, releaseFileStorage, FileStorage, type FileRecord, type IngestStorage, type ReportedGap } from './storage.js';

/**
 * Where the received data is: an embedded data dir (string, the default backend) or a
 * PostgreSQL database (`{ pgUrl }`) written by `--storage postgres` ingest nodes.
 */
export type ExportTarget = string | { pgUrl: string };

async function openTarget(target: ExportTarget): Promise<IngestStorage> {
  if (typeof target === 'string') return acquireExisting(target);
  return PgStorage.open({ url: target.pgUrl, poolSize: 2, migrate: false });
}

async function closeTarget(s: IngestStorage): Promise<void> {
  if (s instanceof FileStorage) return releaseFileStorage(s);
  return s.close();
}

export interface BinarySummary {
  binary: { size: number; sha256: string; mime_type?: string };
}

export interface ExportedReading {
  part_id: string;
  resource_kind: string;
  resource: string;
  method: string;
  seq: number;
  time_requested_us: number;
  time_received_us: number;
  /** The reading's value; every binary item replaced by a BinarySummary. */
  data: unknown;
  file_id: string;
  mime_type?: string;
}

/** Replace byte arrays (anywhere in the value) by their size and sha256: JSON-safe output. */
export function summarizeBinary(v: unknown, mime?: string): unknown {
  if (v instanceof Uint8Array) {
    const b: BinarySummary['binary'] = { size: v.length, sha256: createHash('sha256').update(v).digest('hex') };
    if (mime) b.mime_type = mime;
    return { binary: b };
  }
  if (Array.isArray(v)) return v.map((x) => summarizeBinary(x));
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), summarizeBinary(x)]));
  if (typeof v === 'bigint') return v.toString();
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, summarizeBinary(x)]));
  return v;
}

async function withStorage<T>(target: ExportTarget, fn: (s: IngestStorage) => Promise<T>): Promise<T> {
  const s = await openTarget(target);
  try {
    return await fn(s);
  } finally {
    await closeTarget(s);
  }
}

const streamOrder = (a: FileRecord, b: FileRecord): number =>
  a.part_id.localeCompare(b.part_id) ||
  a.resource_kind.localeCompare(b.resource_kind) ||
  a.resource_name.localeCompare(b.resource_name) ||
  a.method.localeCompare(b.method) ||
  (a.capture?.first_seq ?? -1) - (b.capture?.first_seq ?? -1) ||
  a.file_id.localeCompare(b.file_id);

async function captureRecords(s: IngestStorage): Promise<FileRecord[]> {
  const out: FileRecord[] = [];
  for await (const r of s.files()) if (r.data_type !== 'file') out.push(r);
  return out.sort(streamOrder);
}

/**
 * Every reading of every stored capture file, per stream in seq order of files. On
 * PostgreSQL the readings come from the `readings` table (decoded at commit).
 */
export async function* exportReadings(target: ExportTarget): AsyncGenerator<ExportedReading> {
  const s = await openTarget(target);
  try {
    for (const rec of await captureRecords(s)) {
      if (s instanceof PgStorage) {
        yield* s.readingsOf(rec.file_id);
        continue;
      }
      const sum = readCaptureBytes(await s.readBytes(rec), rec.path);
      const mimeDefault = sum.header?.mime_type;
      for (const r of sum.readings) {
        const mime = r.mime_type ?? mimeDefault;
        const out: ExportedReading = {
          part_id: rec.part_id,
          resource_kind: rec.resource_kind,
          resource: rec.resource_name,
          method: rec.method,
          seq: r.seq,
          time_requested_us: r.time_requested_us,
          time_received_us: r.time_received_us,
          data: summarizeBinary(r.data, mime),
          file_id: rec.file_id,
        };
        if (mime) out.mime_type = mime;
        yield out;
      }
    }
  } finally {
    await closeTarget(s);
  }
}

export interface ReceivedCaptureFile {
  type: 'capture';
  part_id: string;
  resource_kind: string;
  resource: string;
  method: string;
  file_id: string;
  data_type: 'tabular' | 'binary';
  readings: number;
  first_seq: number | undefined;
  last_seq: number | undefined;
  bytes: number;
  received_at_ms: number;
}

export interface ReceivedFile {
  type: 'file';
  part_id: string;
  source: string;
  file_name: string;
  /** Where it is stored, relative to the data dir. */
  path: string;
  file_id: string;
  bytes: number;
  sha256: string;
  received_at_ms: number;
}

export type ReceivedEntry = ReceivedCaptureFile | ReceivedFile;

/**
 * What the server holds, one entry per stored file, sorted by machine / resource / method /
 * first seq: capture files (`type: 'capture'`) and arbitrary files (`type: 'file'`).
 */
export async function listReceived(target: ExportTarget): Promise<ReceivedEntry[]> {
  return withStorage(target, async (s) => {
    const out: ReceivedEntry[] = [];
    const all: FileRecord[] = [];
    for await (const r of s.files()) all.push(r);
    for (const r of all.sort(streamOrder)) {
      if (r.data_type === 'file') {
        out.push({ type: 'file', part_id: r.part_id, source: r.source, file_name: r.file_name ?? '', path: r.path, file_id: r.file_id, bytes: r.size, sha256: r.sha256, received_at_ms: r.received_at_ms });
      } else {
        out.push({
          type: 'capture',
          part_id: r.part_id,
          resource_kind: r.resource_kind,
          resource: r.resource_name,
          method: r.method,
          file_id: r.file_id,
          data_type: r.data_type,
          readings: r.capture?.readings ?? 0,
          first_seq: r.capture?.first_seq,
          last_seq: r.capture?.last_seq,
          bytes: r.size,
          received_at_ms: r.received_at_ms,
        });
      }
    }
    return out;
  });
}

export interface SeqRange {
  from_seq: number;
  to_seq: number;
}

export interface GapEntry extends SeqRange {
  explained: boolean;
  /** Why it is missing (ring_full, janitor, ...); empty when unexplained. */
  reasons: string[];
}

export interface StreamCompleteness {
  part_id: string;
  resource_kind: string;
  resource: string;
  method: string;
  /** Distinct readings received. */
  readings: number;
  /** Readings received more than once (same seq in several files). */
  duplicates: number;
  received: SeqRange[];
  /** Every missing range from seq 0 up to the highest known seq, split by explanation. */
  gaps: GapEntry[];
  unexplained_readings: number;
}

export interface GapReport {
  streams: StreamCompleteness[];
  unexplained_gaps: number;
}

interface Explanation {
  from: number;
  to: number;
  reason: string;
}

function merge(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out.at(-1);
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Split the hole [a, b] by which explanations cover each part of it. */
function splitHole(a: number, b: number, ex: Explanation[]): GapEntry[] {
  const cuts = new Set<number>([a, b + 1]);
  for (const e of ex) {
    if (e.to < a || e.from > b) continue;
    cuts.add(Math.max(a, e.from));
    cuts.add(Math.min(b, e.to) + 1);
  }
  const pts = [...cuts].sort((x, y) => x - y);
  const out: GapEntry[] = [];
  for (let i = 0; i + 1 < pts.length; i++) {
    const from = pts[i]!;
    const to = pts[i + 1]! - 1;
    const reasons = [...new Set(ex.filter((e) => e.from <= from && e.to >= from).map((e) => e.reason))].sort();
    const last = out.at(-1);
    if (last && last.to_seq + 1 === from && last.reasons.join() === reasons.join()) last.to_seq = to;
    else out.push({ from_seq: from, to_seq: to, explained: reasons.length > 0, reasons });
  }
  return out;
}

const streamKey = (part: string, kind: string, name: string, method: string): string => JSON.stringify([part, kind, name, method]);

/**
 * Completeness per part / resource / method: received seq ranges and every gap, explained
 * when a GAP frame in a received file or a reported gap (ReportGaps) covers it.
 */
export async function gapReport(target: ExportTarget): Promise<GapReport> {
  return withStorage(target, async (s) => {
    const streams = new Map<string, { key: [string, string, string, string]; ranges: [number, number][]; count: number; ex: Explanation[] }>();
    const get = (part: string, kind: string, name: string, method: string) => {
      const k = streamKey(part, kind, name, method);
      let st = streams.get(k);
      if (!st) {
        st = { key: [part, kind, name, method], ranges: [], count: 0, ex: [] };
        streams.set(k, st);
      }
      return st;
    };
    for (const r of await captureRecords(s)) {
      const st = get(r.part_id, r.resource_kind, r.resource_name, r.method);
      if (!r.capture) continue;
      st.ranges.push(...r.capture.ranges);
      st.count += r.capture.readings;
      for (const g of r.capture.gaps) st.ex.push({ from: g.from_seq, to: g.to_seq, reason: g.reason });
    }
    for await (const g of s.gaps() as AsyncIterable<ReportedGap>) {
      get(g.part_id, g.resource_kind, g.resource_name, g.method).ex.push({ from: g.from_seq, to: g.to_seq, reason: g.reason });
    }
    const report: GapReport = { streams: [], unexplained_gaps: 0 };
    for (const st of [...streams.values()].sort((a, b) => streamKey(...a.key).localeCompare(streamKey(...b.key)))) {
      const received = merge(st.ranges);
      const distinct = received.reduce((n, [a, b]) => n + (b - a + 1), 0);
      const top = Math.max(received.at(-1)?.[1] ?? -1, ...st.ex.map((e) => e.to));
      const gaps: GapEntry[] = [];
      let next = 0;
      for (const [a, b] of [...received, [top + 1, top + 1] as [number, number]]) {
        if (a > next) gaps.push(...splitHole(next, a - 1, st.ex));
        next = Math.max(next, b + 1);
      }
      const unexplained = gaps.filter((g) => !g.explained);
      report.unexplained_gaps += unexplained.length;
      report.streams.push({
        part_id: st.key[0],
        resource_kind: st.key[1],
        resource: st.key[2],
        method: st.key[3],
        readings: distinct,
        duplicates: st.count - distinct,
        received: received.map(([a, b]) => ({ from_seq: a, to_seq: b })),
        gaps,
        unexplained_readings: unexplained.reduce((n, g) => n + (g.to_seq - g.from_seq + 1), 0),
      });
    }
    return report;
  });
}

/** Remove previously reported gaps (by exact stream, range and reason). */
export async function removeReportedGaps(target: ExportTarget, gaps: ReportedGap[]): Promise<number> {
  return withStorage(target, (s) => s.deleteGaps(gaps));
}
