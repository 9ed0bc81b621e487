/**
 * What was received, read back from the index and the stored files: usable while a server
 * writes to the same data dir (LMDB readers never block the writer) and after it stopped.
 *
 * Every input here is hostile (a client chose it): readers are iterative and stream.
 *
 *   files() ──► small per-file index entries (id, stream, first seq; a few ranges inline)
 *                 │ sorted by stream, first seq
 *                 ▼
 *   export:  one file at a time: get → readBytes → readRecords (one reading at a time)
 *            → toExportable (iterative, json.ts) → caller serializes (stringify, json.ts)
 *
 *   gaps() ──► per stream, per reason: explanation runs merged on the fly (RunList)
 *   report:  one stream at a time: its files' ranges + GAP frames → RunLists → one sweep over
 *            received runs × explanation runs → at most `maxEntries` received/gap entries,
 *            exact totals, a count of what was merged and cut
 */
import { readRecords } from '@edgecap/format';
import { toExportable } from './json.js';
import { PgStorage } from './pg/storage.js';
import { acquireExisting, releaseFileStorage, FileStorage, type FileRecord, type IngestStorage, type ReportedGap } from './storage.js';

export type { BinarySummary } from './json.js';

/**
 * Where the received data is: an embedded data dir (string, the default backend), a
 * PostgreSQL database (`{ pgUrl }`) written by `--storage postgres` ingest nodes, or an open
 * IngestStorage (used as is and left open).
 */
export type ExportTarget = string | { pgUrl: string } | IngestStorage;

async function openTarget(target: ExportTarget): Promise<IngestStorage> {
  if (typeof target === 'string') return acquireExisting(target);
  if ('pgUrl' in target && typeof target.pgUrl === 'string') return PgStorage.open({ url: target.pgUrl, poolSize: 2, migrate: false });
  return target as IngestStorage;
}

async function closeTarget(target: ExportTarget, s: IngestStorage): Promise<void> {
  if (s === target) return; // the caller's storage
  if (s instanceof FileStorage) return releaseFileStorage(s);
  return s.close();
}

async function withStorage<T>(target: ExportTarget, fn: (s: IngestStorage) => Promise<T>): Promise<T> {
  const s = await openTarget(target);
  try {
    return await fn(s);
  } finally {
    await closeTarget(target, s);
  }
}

/** The full record of an indexed file (undefined if it went away between the passes). */
function fetchRecord(s: IngestStorage, e: FileKey): Promise<FileRecord | undefined> {
  return s.get(e.part_id, e.file_id);
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

/**
 * Replace byte arrays (anywhere in the value) by their size and sha256, bigints by decimal
 * strings, Dates by ISO strings: JSON-safe output. Iterative (any depth); see json.ts.
 */
export function summarizeBinary(v: unknown, mime?: string): unknown {
  return toExportable(v, mime);
}

/** What the sort and the passes need of a file record: no ranges or gaps of big files. */
interface FileKey {
  part_id: string;
  resource_kind: string;
  resource_name: string;
  method: string;
  first_seq: number | undefined;
  file_id: string;
}

const fileOrder = (a: FileKey, b: FileKey): number =>
  a.part_id.localeCompare(b.part_id) ||
  a.resource_kind.localeCompare(b.resource_kind) ||
  a.resource_name.localeCompare(b.resource_name) ||
  a.method.localeCompare(b.method) ||
  (a.first_seq ?? -1) - (b.first_seq ?? -1) ||
  a.file_id.localeCompare(b.file_id);

const keyOf = (r: FileRecord): FileKey => ({
  part_id: r.part_id,
  resource_kind: r.resource_kind,
  resource_name: r.resource_name,
  method: r.method,
  first_seq: r.capture?.first_seq,
  file_id: r.file_id,
});

/** Index entries of every capture file, in stream / first seq order. */
async function captureIndex(s: IngestStorage): Promise<FileKey[]> {
  const out: FileKey[] = [];
  for await (const r of s.files()) if (r.data_type !== 'file') out.push(keyOf(r));
  return out.sort(fileOrder);
}

/**
 * Every reading of every stored capture file, per stream in seq order of files, one file in
 * memory at a time. On PostgreSQL the readings come from the `readings` table (decoded at
 * commit).
 */
export async function* exportReadings(target: ExportTarget): AsyncGenerator<ExportedReading> {
  const s = await openTarget(target);
  try {
    for (const e of await captureIndex(s)) {
      if (s instanceof PgStorage) {
        yield* s.readingsOf(e.part_id, e.file_id);
        continue;
      }
      const rec = await fetchRecord(s, e);
      if (!rec) continue;
      let mimeDefault: string | undefined;
      for (const ev of readRecords(await s.readBytes(rec), rec.path)) {
        if (ev.kind === 'header') mimeDefault = ev.header.mime_type;
        if (ev.kind !== 'reading') continue;
        const r = ev.reading;
        const mime = r.mime_type ?? mimeDefault;
        const out: ExportedReading = {
          part_id: rec.part_id,
          resource_kind: rec.resource_kind,
          resource: rec.resource_name,
          method: rec.method,
          seq: r.seq,
          time_requested_us: r.time_requested_us,
          time_received_us: r.time_received_us,
          data: toExportable(r.data, mime, undefined, r.annotations),
          file_id: rec.file_id,
        };
        if (mime) out.mime_type = mime;
        yield out;
      }
    }
  } finally {
    await closeTarget(target, s);
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
 * The stored bytes of one received file (capture or arbitrary), exactly as the edge sent them;
 * undefined if `partId` has no file `fileId`. Held whole in memory: for one file at a time.
 */
export async function readReceived(target: ExportTarget, partId: string, fileId: string): Promise<Uint8Array | undefined> {
  return withStorage(target, async (s) => {
    const rec = await s.get(partId, fileId);
    return rec ? s.readBytes(rec) : undefined;
  });
}

/**
 * What the server holds, one entry per stored file, sorted by machine / resource / method /
 * first seq: capture files (`type: 'capture'`) and arbitrary files (`type: 'file'`). Holds one
 * small entry per file (never a file's ranges or gaps).
 */
export async function listReceived(target: ExportTarget): Promise<ReceivedEntry[]> {
  return withStorage(target, async (s) => {
    const all: { k: FileKey; e: ReceivedEntry }[] = [];
    for await (const r of s.files()) {
      let e: ReceivedEntry;
      if (r.data_type === 'file') {
        e = { type: 'file', part_id: r.part_id, source: r.source, file_name: r.file_name ?? '', path: r.path, file_id: r.file_id, bytes: r.size, sha256: r.sha256, received_at_ms: r.received_at_ms };
      } else {
        e = {
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
        };
      }
      all.push({ k: keyOf(r), e });
    }
    return all.sort((a, b) => fileOrder(a.k, b.k)).map((x) => x.e);
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
  /** Received seqs as merged runs (the first `maxEntries`; see `truncated`). */
  received: SeqRange[];
  /**
   * Every missing range from seq 0 up to the highest known seq, split by explanation (the
   * first `maxEntries`; see `truncated`).
   */
  gaps: GapEntry[];
  /** Exact, also when `gaps` was cut. */
  unexplained_readings: number;
  /**
   * Present when gap records of this stream (GAP frames in its files, reported gaps)
   * overlapped or touched: `records` of them were merged into `runs` (per reason).
   */
  merged?: { records: number; runs: number };
  /** Present when `received` or `gaps` was cut at `limit` entries: their full lengths. */
  truncated?: { limit: number; received: number; gaps: number; unexplained_gaps: number };
  /** Present when ranges or gap records were unusable (not safe integers, from > to) and skipped. */
  ignored?: number;
}

export interface GapReport {
  streams: StreamCompleteness[];
  unexplained_gaps: number;
}

export interface GapReportOptions {
  /** Entries of `received` and of `gaps` listed per stream (default 1000; totals stay exact). */
  maxEntries?: number;
}

export const DEFAULT_REPORT_ENTRIES = 1000;
/** Distinct reasons kept per stream; further reasons are reported as OTHER_REASON. */
const MAX_REASONS = 32;
const MAX_REASON_CHARS = 100;
const OTHER_REASON = 'other';

/**
 * Inclusive seq runs, sorted and merged (overlapping or adjacent runs become one). Input in
 * order (the usual case: storage lists gaps by stream and from_seq, files hold sorted ranges)
 * extends or appends in O(1); out-of-order input waits in a buffer that is sorted and merged in
 * when it outgrows the runs (amortised O(n log n)). Memory: the merged runs, in typed arrays.
 */
export class RunList {
  private from = new Float64Array(8);
  private to = new Float64Array(8);
  private n = 0;
  private pendFrom: number[] = [];
  private pendTo: number[] = [];
  /** Runs added (before merging). */
  records = 0;

  add(a: number, b: number): void {
    this.records++;
    const n = this.n;
    if (n > 0 && a < this.from[n - 1]!) {
      this.pendFrom.push(a);
      this.pendTo.push(b);
      if (this.pendFrom.length >= Math.max(65536, n)) this.normalize();
      return;
    }
    if (n > 0 && a <= this.to[n - 1]! + 1) {
      if (b > this.to[n - 1]!) this.to[n - 1] = b;
      return;
    }
    this.append(a, b);
  }

  /** Merged runs (sorts in what came out of order). */
  get length(): number {
    this.normalize();
    return this.n;
  }

  fromAt(i: number): number {
    return this.from[i]!;
  }

  toAt(i: number): number {
    return this.to[i]!;
  }

  private append(a: number, b: number): void {
    if (this.n === this.from.length) {
      const f = new Float64Array(this.n * 2);
      const t = new Float64Array(this.n * 2);
      f.set(this.from);
      t.set(this.to);
      this.from = f;
      this.to = t;
    }
    this.from[this.n] = a;
    this.to[this.n] = b;
    this.n++;
  }

  private normalize(): void {
    const p = this.pendFrom.length;
    if (p === 0) return;
    const m = this.n + p;
    const f = new Float64Array(m);
    const t = new Float64Array(m);
    f.set(this.from.subarray(0, this.n));
    t.set(this.to.subarray(0, this.n));
    for (let i = 0; i < p; i++) {
      f[this.n + i] = this.pendFrom[i]!;
      t[this.n + i] = this.pendTo[i]!;
    }
    this.pendFrom = [];
    this.pendTo = [];
    const idx = new Uint32Array(m);
    for (let i = 0; i < m; i++) idx[i] = i;
    idx.sort((x, y) => f[x]! - f[y]!);
    this.n = 0;
    for (let k = 0; k < m; k++) {
      const i = idx[k]!;
      const a = f[i]!;
      const b = t[i]!;
      const n = this.n;
      if (n > 0 && a <= this.to[n - 1]! + 1) {
        if (b > this.to[n - 1]!) this.to[n - 1] = b;
      } else this.append(a, b);
    }
  }
}

type StreamTuple = [part: string, kind: string, name: string, method: string];

interface StreamAcc {
  key: StreamTuple;
  files: FileKey[];
  /** reason → its explanation runs */
  ex: Map<string, RunList>;
  ignored: number;
}

const streamKey = (k: StreamTuple): string => JSON.stringify(k);

const usableRange = (a: unknown, b: unknown): boolean => Number.isSafeInteger(a) && Number.isSafeInteger(b) && (a as number) <= (b as number);

function explain(st: StreamAcc, from: unknown, to: unknown, reason: unknown): void {
  if (!usableRange(from, to) || (from as number) < 0) {
    st.ignored++;
    return;
  }
  let r = typeof reason === 'string' && reason.length > 0 ? reason.slice(0, MAX_REASON_CHARS) : OTHER_REASON;
  let runs = st.ex.get(r);
  if (!runs) {
    if (st.ex.size >= MAX_REASONS) r = OTHER_REASON;
    runs = st.ex.get(r);
    if (!runs) {
      runs = new RunList();
      st.ex.set(r, runs);
    }
  }
  runs.add(from as number, to as number);
}

/** Sum of run lengths without spreading or per-entry objects. */
function coveredBy(runs: RunList): number {
  let n = 0;
  for (let i = 0; i < runs.length; i++) n += runs.toAt(i) - runs.fromAt(i) + 1;
  return n;
}

/** One stream's completeness from its runs: one sweep, bounded output, exact totals. */
function sweep(st: StreamAcc, received: RunList, count: number, limit: number): { stream: StreamCompleteness; unexplained: number } {
  const reasons = [...st.ex.keys()].sort();
  const exRuns = reasons.map((r) => st.ex.get(r)!);
  const exLen = exRuns.map((e) => e.length);
  const distinct = coveredBy(received);
  const nRecv = received.length;
  let top = nRecv > 0 ? received.toAt(nRecv - 1) : -1;
  let records = 0;
  let runs = 0;
  for (const e of exRuns) {
    records += e.records;
    runs += e.length;
    if (e.length > 0) top = Math.max(top, e.toAt(e.length - 1));
  }
  const out: StreamCompleteness = {
    part_id: st.key[0],
    resource_kind: st.key[1],
    resource: st.key[2],
    method: st.key[3],
    readings: distinct,
    duplicates: count - distinct,
    received: [],
    gaps: [],
    unexplained_readings: 0,
  };
  for (let i = 0; i < nRecv && i < limit; i++) out.received.push({ from_seq: received.fromAt(i), to_seq: received.toAt(i) });
  const ptr = new Array<number>(exRuns.length).fill(0);
  let entries = 0;
  let unexplained = 0;
  const emit = (from: number, to: number, active: string[]): void => {
    entries++;
    if (active.length === 0) {
      unexplained++;
      out.unexplained_readings += to - from + 1;
    }
    if (entries <= limit) out.gaps.push({ from_seq: from, to_seq: to, explained: active.length > 0, reasons: active });
  };
  /**
   * Split the hole [a, b] by which reasons' runs cover each part of it. Runs of one reason are
   * merged, so two neighbouring parts never carry the same reasons: nothing to coalesce.
   */
  const splitHole = (a: number, b: number): void => {
    let pos = a;
    while (pos <= b) {
      let cut = b + 1;
      const active: string[] = [];
      for (let r = 0; r < exRuns.length; r++) {
        const e = exRuns[r]!;
        const n = exLen[r]!;
        let p = ptr[r]!;
        while (p < n && e.toAt(p) < pos) p++;
        ptr[r] = p;
        if (p >= n) continue;
        if (e.fromAt(p) <= pos) {
          active.push(reasons[r]!);
          cut = Math.min(cut, e.toAt(p) + 1);
        } else cut = Math.min(cut, e.fromAt(p));
      }
      emit(pos, cut - 1, active);
      pos = cut;
    }
  };
  let next = 0;
  for (let i = 0; i <= nRecv; i++) {
    const a = i < nRecv ? received.fromAt(i) : top + 1;
    const b = i < nRecv ? received.toAt(i) : top + 1;
    if (a > next) splitHole(next, a - 1);
    next = Math.max(next, b + 1);
  }
  if (records > runs) out.merged = { records, runs };
  if (nRecv > limit || entries > limit) out.truncated = { limit, received: nRecv, gaps: entries, unexplained_gaps: unexplained };
  if (st.ignored > 0) out.ignored = st.ignored;
  return { stream: out, unexplained };
}

/**
 * Completeness per part / resource / method, one stream at a time: received seq ranges and
 * every gap, explained when a GAP frame in a received file or a reported gap (ReportGaps)
 * covers it. Yields each stream (at most `maxEntries` received runs and gap entries); returns
 * the total of unexplained gaps. Memory: small per-file index entries, and per stream the
 * merged runs of its reported gaps (the interface lists gaps of all streams in one pass).
 */
export async function* gapReportStreams(target: ExportTarget, opts: GapReportOptions = {}): AsyncGenerator<StreamCompleteness, { unexplained_gaps: number }> {
  const limit = Math.max(0, opts.maxEntries ?? DEFAULT_REPORT_ENTRIES);
  const s = await openTarget(target);
  try {
    const streams = new Map<string, StreamAcc>();
    const get = (k: StreamTuple): StreamAcc => {
      const id = streamKey(k);
      let st = streams.get(id);
      if (!st) {
        st = { key: k, files: [], ex: new Map(), ignored: 0 };
        streams.set(id, st);
      }
      return st;
    };
    for (const e of await captureIndex(s)) get([e.part_id, e.resource_kind, e.resource_name, e.method]).files.push(e);
    // storage lists gaps stream by stream: look a stream up only when it changes
    let prev: ReportedGap | undefined;
    let prevSt: StreamAcc | undefined;
    for await (const g of s.gaps() as AsyncIterable<ReportedGap>) {
      if (!prevSt || !prev || g.part_id !== prev.part_id || g.resource_kind !== prev.resource_kind || g.resource_name !== prev.resource_name || g.method !== prev.method) {
        prevSt = get([g.part_id, g.resource_kind, g.resource_name, g.method]);
      }
      prev = g;
      explain(prevSt, g.from_seq, g.to_seq, g.reason);
    }
    const order = [...streams.keys()].sort((a, b) => a.localeCompare(b));
    let total = 0;
    for (const id of order) {
      const st = streams.get(id)!;
      streams.delete(id);
      const received = new RunList();
      let count = 0;
      for (const e of st.files) {
        const rec = await fetchRecord(s, e);
        const c = rec?.capture;
        if (!c) continue;
        count += Number.isSafeInteger(c.readings) ? c.readings : 0;
        for (const r of Array.isArray(c.ranges) ? c.ranges : []) {
          if (Array.isArray(r) && usableRange(r[0], r[1])) received.add(r[0], r[1]);
          else st.ignored++;
        }
        for (const g of Array.isArray(c.gaps) ? c.gaps : []) explain(st, g?.from_seq, g?.to_seq, g?.reason);
      }
      st.files = [];
      const { stream, unexplained } = sweep(st, received, count, limit);
      total += unexplained;
      yield stream;
    }
    return { unexplained_gaps: total };
  } finally {
    await closeTarget(target, s);
  }
}

/** gapReportStreams collected: `{ streams, unexplained_gaps }`. */
export async function gapReport(target: ExportTarget, opts: GapReportOptions = {}): Promise<GapReport> {
  const report: GapReport = { streams: [], unexplained_gaps: 0 };
  const it = gapReportStreams(target, opts);
  for (;;) {
    const r = await it.next();
    if (r.done) {
      report.unexplained_gaps = r.value.unexplained_gaps;
      return report;
    }
    report.streams.push(r.value);
  }
}

/** Remove previously reported gaps (by exact stream, range and reason). */
export async function removeReportedGaps(target: ExportTarget, gaps: ReportedGap[]): Promise<number> {
  return withStorage(target, (s) => s.deleteGaps(gaps));
}
