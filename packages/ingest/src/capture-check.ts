/**
 * The server's capture-file check, incremental: fed chunk by chunk as an upload's bytes arrive.
 *
 *   upload chunk ─► CaptureCheck.push ─► RecordStream (format: magic, frames + CRC, header, GAP
 *                                          frames decoded; of each READING only its seq peeked)
 *                                            │ header ─► id must equal metadata.file_id
 *                                            │ seq    ─► SeqRuns (sorted merged runs, ≤ maxRanges)
 *                                            │ gap    ─► first maxGaps (well-formed) kept
 *                                            │ problem─► counted; bad magic/header refuse the file
 *   last chunk ──► CaptureCheck.finish ─► { info: CaptureInfo, kind, name, method, part_id? }
 *
 * A refusal (RequestRejected, INVALID_ARGUMENT) is thrown by the push that proves the file bad.
 * Memory: one frame straddling chunks (`retainedBytes`) + maxRanges runs + maxGaps gaps; work
 * per push proportional to the chunk. The result equals the old whole-buffer check (collect every
 * seq, sort, merge) for every file that check accepted and that stays within the limits.
 * An honest writer's file is one run of seqs (a few after restarts), a handful of GAP frames.
 */
import { RecordStream, readRecords, type CaptureFileHeader, type Gap, type RecordEvent } from '@edgecap/format';
import { invalid, type RequestRejected } from './errors.js';
import type { CaptureInfo } from './storage.js';

export interface CaptureCheckLimits {
  /** Most separate seq runs a file may have (an honest writer: one per file, a few after restarts). */
  maxRanges: number;
  /** GAP frames kept in the result; later ones are counted in `droppedGaps`. */
  maxGaps: number;
}

export const DEFAULT_CAPTURE_CHECK_LIMITS: Readonly<CaptureCheckLimits> = Object.freeze({ maxRanges: 10_000, maxGaps: 10_000 });

export interface CaptureCheckResult {
  info: CaptureInfo;
  kind: string;
  name: string;
  method: string;
  part_id?: string;
}

/** Runs per block of SeqRuns; a fuller block splits in two. */
const BLOCK = 128;

/**
 * A set of numbers as sorted, merged inclusive runs [lo, hi] (neighbours ≤ 1 apart share a run,
 * as when sorted seqs are merged). Two levels — blocks of ≤ BLOCK runs in order — so an
 * out-of-order insert costs O(log n + BLOCK + n/BLOCK), never O(n) moves of a flat array.
 * A seq at or after the last run's start (the common, in-order case) only touches the last run.
 */
export class SeqRuns {
  private readonly lo: number[][] = [];
  private readonly hi: number[][] = [];
  private n = 0;

  /** Number of runs. */
  get size(): number {
    return this.n;
  }

  get first(): number | undefined {
    return this.lo[0]?.[0];
  }

  get last(): number | undefined {
    return this.hi.at(-1)?.at(-1);
  }

  /** Add q (not NaN); returns the change in the number of runs (+1 new run, -1 two runs joined, 0). */
  add(q: number): number {
    const nb = this.lo.length;
    if (nb === 0) {
      this.lo.push([q]);
      this.hi.push([q]);
      this.n = 1;
      return 1;
    }
    const L = this.lo[nb - 1]!;
    const H = this.hi[nb - 1]!;
    const k = L.length - 1;
    if (q >= L[k]!) {
      if (q <= H[k]! + 1) {
        if (q > H[k]!) H[k] = q;
        return 0;
      }
      if (L.length >= BLOCK) {
        this.lo.push([q]);
        this.hi.push([q]);
      } else {
        L.push(q);
        H.push(q);
      }
      this.n++;
      return 1;
    }
    return this.insert(q);
  }

  /** q below the last run's start: find its neighbours and extend, join or insert. */
  private insert(q: number): number {
    const { lo, hi } = this;
    // bi: last block whose first run starts at or before q (-1: q is below every run)
    let a = 0;
    let b = lo.length - 1;
    let bi = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (lo[m]![0]! <= q) {
        bi = m;
        a = m + 1;
      } else b = m - 1;
    }
    // j: in block bi, last run starting at or before q — the predecessor P
    let j = -1;
    if (bi >= 0) {
      const L = lo[bi]!;
      a = 0;
      b = L.length - 1;
      while (a <= b) {
        const m = (a + b) >> 1;
        if (L[m]! <= q) {
          j = m;
          a = m + 1;
        } else b = m - 1;
      }
      if (q <= hi[bi]![j]!) return 0; // inside P
    }
    // successor S: the first run starting after q (exists: q is below the last run's start)
    let sb: number;
    let sj: number;
    if (bi < 0) [sb, sj] = [0, 0];
    else if (j + 1 < lo[bi]!.length) [sb, sj] = [bi, j + 1];
    else [sb, sj] = [bi + 1, 0];
    const joinP = bi >= 0 && q <= hi[bi]![j]! + 1;
    const joinS = lo[sb]![sj]! <= q + 1;
    if (joinP && joinS) {
      hi[bi]![j] = hi[sb]![sj]!;
      this.removeAt(sb, sj);
      this.n--;
      return -1;
    }
    if (joinP) {
      hi[bi]![j] = q;
      return 0;
    }
    if (joinS) {
      lo[sb]![sj] = q;
      return 0;
    }
    if (bi < 0) this.insertAt(0, 0, q);
    else this.insertAt(bi, j + 1, q);
    this.n++;
    return 1;
  }

  private insertAt(bi: number, at: number, q: number): void {
    const L = this.lo[bi]!;
    const H = this.hi[bi]!;
    L.splice(at, 0, q);
    H.splice(at, 0, q);
    if (L.length > BLOCK) {
      const half = L.length >> 1;
      this.lo.splice(bi + 1, 0, L.splice(half));
      this.hi.splice(bi + 1, 0, H.splice(half));
    }
  }

  private removeAt(bi: number, at: number): void {
    const L = this.lo[bi]!;
    L.splice(at, 1);
    this.hi[bi]!.splice(at, 1);
    if (L.length === 0) {
      this.lo.splice(bi, 1);
      this.hi.splice(bi, 1);
    }
  }

  toArray(): [number, number][] {
    const out: [number, number][] = [];
    for (let b = 0; b < this.lo.length; b++) {
      const L = this.lo[b]!;
      const H = this.hi[b]!;
      for (let i = 0; i < L.length; i++) out.push([L[i]!, H[i]!]);
    }
    return out;
  }
}

/** Longest GAP frame reason kept (the writer's reasons are short words). */
const MAX_GAP_REASON = 64;

/** A GAP frame as the writer makes it: numbers and a short reason (anything else would be stored as sent). */
function wellFormed(g: Gap): boolean {
  return typeof g.from_seq === 'number' && typeof g.to_seq === 'number' && typeof g.time_us === 'number' && typeof g.reason === 'string' && g.reason.length <= MAX_GAP_REASON;
}

function checkLimit(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`CaptureCheck: ${name} must be a non-negative integer, got ${String(v)}`);
  return v;
}

/**
 * Incremental capture-file check: push() each chunk as it arrives, finish() after the last.
 * Same verdicts, messages and result as the whole-buffer check, plus the maxRanges refusal and
 * the maxGaps cap (malformed GAP frames are not kept either; see droppedGaps). NaN seqs count as
 * readings but have no place in ranges. After a refusal every later call throws the same error.
 */
export class CaptureCheck {
  private readonly limits: CaptureCheckLimits;
  private readonly stream = new RecordStream(undefined, { seqOnly: true });
  private readonly runs = new SeqRuns();
  private header: Pick<CaptureFileHeader, 'id' | 'kind' | 'name' | 'method' | 'type' | 'mime_type' | 'part_id'> | undefined;
  private readings = 0;
  private readonly gaps: Gap[] = [];
  private dropped = 0;
  private problems = 0;
  private rejected: RequestRejected | undefined;
  private finished = false;
  private readonly onRecord = (ev: RecordEvent): void => this.record(ev);

  constructor(
    private readonly fileId: string,
    limits: Partial<CaptureCheckLimits> = {},
  ) {
    this.limits = {
      maxRanges: checkLimit('maxRanges', limits.maxRanges ?? DEFAULT_CAPTURE_CHECK_LIMITS.maxRanges),
      maxGaps: checkLimit('maxGaps', limits.maxGaps ?? DEFAULT_CAPTURE_CHECK_LIMITS.maxGaps),
    };
  }

  /** Bytes the checker holds between pushes: the part of a frame that straddles chunks. */
  get retainedBytes(): number {
    return this.stream.retainedBytes;
  }

  /** File bytes pushed so far. */
  get bytesSeen(): number {
    return this.stream.bytesSeen;
  }

  /** GAP frames not kept: beyond maxGaps, or malformed (fields not numbers, reason not a string of ≤ 64 chars). */
  get droppedGaps(): number {
    return this.dropped;
  }

  /** Feed the next chunk; throws RequestRejected (INVALID_ARGUMENT) as soon as the file is provably invalid. */
  push(chunk: Uint8Array): void {
    this.usable();
    this.run(() => this.stream.push(chunk, this.onRecord));
  }

  /** After the last chunk: the file's CaptureInfo and stream identity, or a refusal. */
  finish(): CaptureCheckResult {
    this.usable();
    this.run(() => this.stream.finish(this.onRecord));
    this.finished = true;
    const h = this.header;
    if (!h) throw this.reject('not a valid edgecap capture file: no header'); // unreachable: the stream reports a missing header
    const info: CaptureInfo = {
      readings: this.readings,
      first_seq: this.runs.first,
      last_seq: this.runs.last,
      ranges: this.runs.toArray(),
      gaps: this.gaps,
      problems: this.problems,
      header_type: h.type,
    };
    if (h.mime_type) info.mime_type = h.mime_type;
    const out: CaptureCheckResult = { info, kind: h.kind, name: h.name, method: h.method };
    if (h.part_id) out.part_id = h.part_id;
    return out;
  }

  private usable(): void {
    if (this.rejected) throw this.rejected;
    if (this.finished) throw new Error('CaptureCheck: already finished');
  }

  private run(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.finished = true;
      throw e;
    }
  }

  private reject(message: string): RequestRejected {
    this.rejected = invalid(message);
    return this.rejected;
  }

  private record(ev: RecordEvent): void {
    switch (ev.kind) {
      case 'header': {
        // only what the result needs: a header's params may hold views into the pushed chunk
        const { id, kind, name, method, type, mime_type, part_id } = ev.header;
        this.header = { id, kind, name, method, type, mime_type, part_id };
        if (ev.header.id !== this.fileId) {
          throw this.reject(`capture file header id ${JSON.stringify(ev.header.id)} does not match metadata.file_id ${JSON.stringify(this.fileId)}`);
        }
        break;
      }
      case 'seq':
        this.seq(ev.seq);
        break;
      case 'reading':
        this.seq(ev.reading.seq);
        break;
      case 'gap':
        if (this.gaps.length < this.limits.maxGaps && wellFormed(ev.gap)) this.gaps.push(ev.gap);
        else this.dropped++;
        break;
      case 'problem':
        this.problems++;
        if (ev.problem.kind === 'bad_magic' || ev.problem.kind === 'bad_header') throw this.reject(`not a valid edgecap capture file: ${ev.problem.reason}`);
        break;
    }
  }

  private seq(q: number): void {
    this.readings++;
    if (Number.isNaN(q)) return; // counted, but no place in a sorted range list
    if (this.runs.add(q) > 0 && this.runs.size > this.limits.maxRanges) {
      throw this.reject(
        `capture file seqs form more than ${this.limits.maxRanges} separate ranges (the ingest's maxRanges limit); ` +
          'a capture file normally holds one run of consecutive seqs',
      );
    }
  }
}

export interface CaptureScan {
  header: CaptureFileHeader | undefined;
  /** Reading seqs in file order. */
  seqs: number[];
  gaps: Gap[];
  problems: number;
  /** First fatal problem (bad magic, bad or missing header), as readRecords words it. */
  fatal?: string;
}

/**
 * Whole-buffer scan keeping every seq in file order (memory grows with the file).
 * @deprecated for received uploads: use CaptureCheck, fed as the bytes arrive.
 */
export function scanCapture(bytes: Uint8Array): CaptureScan {
  const out: CaptureScan = { header: undefined, seqs: [], gaps: [], problems: 0 };
  for (const ev of readRecords(bytes, undefined, { seqOnly: true })) {
    switch (ev.kind) {
      case 'header':
        out.header = ev.header;
        break;
      case 'seq':
        out.seqs.push(ev.seq);
        break;
      case 'reading':
        out.seqs.push(ev.reading.seq);
        break;
      case 'gap':
        out.gaps.push(ev.gap);
        break;
      case 'problem':
        out.problems++;
        if (ev.problem.kind === 'bad_magic' || ev.problem.kind === 'bad_header') out.fatal ??= ev.problem.reason;
        break;
    }
  }
  return out;
}
