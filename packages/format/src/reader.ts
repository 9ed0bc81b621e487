import { Decoder } from '@msgpack/msgpack';
import { checkHeader, type CaptureFileHeader } from './header.js';
import { FILE_MAGIC, FrameType, type GapReason, type ReadingAnnotations } from './layout.js';
import { FrameScanner, FrameStream, type ScanEvent } from './scan.js';

export type { ScanEvent } from './scan.js';

/**
 * Frames of the whole buffer `b` from offset `start`. Never throws on bad bytes: a CRC mismatch
 * is reported as `corrupt` and the scan resynchronises on the next frame magic whose CRC checks
 * out; a frame running past the end is a `truncated` tail (the normal state after a crash).
 * The chunked twin is FrameStream (same scanner, same events).
 */
export function* scanFrames(b: Uint8Array, start: number): Generator<ScanEvent> {
  const sc = new FrameScanner(start);
  sc.window(b, 0, true);
  for (let ev = sc.next(); ev; ev = sc.next()) yield ev;
}

export interface Reading {
  seq: number;
  time_requested_us: number;
  time_received_us: number;
  data: unknown;
  mime_type?: string;
  /** viam image annotations (READING's 6th element), when the writer stored any. */
  annotations?: ReadingAnnotations;
  /** Byte offset of the frame in the file. */
  offset: number;
}

export interface Gap {
  from_seq: number;
  to_seq: number;
  reason: GapReason;
  time_us: number;
}

export interface Problem {
  kind: 'corrupt' | 'truncated' | 'bad_magic' | 'bad_header';
  offset: number;
  /** Bytes skipped (corrupt) or cut (truncated). */
  length: number;
  reason: string;
}

export type RecordEvent =
  | { kind: 'header'; header: CaptureFileHeader }
  | { kind: 'reading'; reading: Reading }
  /** With `seqOnly`: a READING whose seq was read without decoding the reading itself. */
  | { kind: 'seq'; seq: number; offset: number }
  | { kind: 'gap'; gap: Gap }
  | { kind: 'problem'; problem: Problem };

/** seq of a READING payload `[seq, ...]` when its head is a plain msgpack array + number; else undefined. */
export function peekSeq(p: Uint8Array): number | undefined {
  if (p.length < 2) return undefined;
  const a = p[0]!;
  let o: number;
  if (a >= 0x91 && a <= 0x9f) o = 1;
  else if (a === 0xdc && p.length > 3 && (p[1]! | p[2]!) !== 0) o = 3;
  else if (a === 0xdd && p.length > 5 && (p[1]! | p[2]! | p[3]! | p[4]!) !== 0) o = 5;
  else return undefined;
  if (o >= p.length) return undefined;
  const t = p[o]!;
  if (t <= 0x7f) return t;
  if (t >= 0xe0) return t - 0x100;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const need = (n: number): boolean => o + 1 + n <= p.length;
  switch (t) {
    case 0xcc:
      return need(1) ? dv.getUint8(o + 1) : undefined;
    case 0xcd:
      return need(2) ? dv.getUint16(o + 1) : undefined;
    case 0xce:
      return need(4) ? dv.getUint32(o + 1) : undefined;
    case 0xcf:
      return need(8) ? dv.getUint32(o + 1) * 4294967296 + dv.getUint32(o + 5) : undefined;
    case 0xd0:
      return need(1) ? dv.getInt8(o + 1) : undefined;
    case 0xd1:
      return need(2) ? dv.getInt16(o + 1) : undefined;
    case 0xd2:
      return need(4) ? dv.getInt32(o + 1) : undefined;
    case 0xd3:
      return need(8) ? dv.getInt32(o + 1) * 4294967296 + dv.getUint32(o + 5) : undefined;
    case 0xca:
      return need(4) ? dv.getFloat32(o + 1) : undefined;
    case 0xcb:
      return need(8) ? dv.getFloat64(o + 1) : undefined;
    default:
      return undefined;
  }
}

/** Do the file bytes b (at file offset `at`) disagree with FILE_MAGIC where they overlap it? */
function magicMismatch(b: Uint8Array, at: number): boolean {
  for (let i = at; i < FILE_MAGIC.length && i - at < b.length; i++) if (b[i - at] !== FILE_MAGIC[i]) return true;
  return false;
}

function badMagic(length: number, file: string | undefined): RecordEvent {
  return { kind: 'problem', problem: { kind: 'bad_magic', offset: 0, length, reason: `not an edgecap capture file${file ? `: ${file}` : ''}` } };
}

const NO_HEADER: Problem = { kind: 'bad_header', offset: FILE_MAGIC.length, length: 0, reason: 'file has no valid header frame' };

/**
 * The record layer, one frame at a time: turns each ScanEvent into at most one RecordEvent.
 * `stopped` turns true after a fatal problem (bad or missing header): the caller reads no further.
 */
class RecordDecoder {
  private readonly dec = new Decoder();
  private sawHeader = false;
  stopped = false;

  constructor(
    private readonly file: string | undefined,
    private readonly seqOnly: boolean,
  ) {}

  record(ev: ScanEvent): RecordEvent | undefined {
    if (ev.kind === 'corrupt') return { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: ev.reason } };
    if (ev.kind === 'truncated') return { kind: 'problem', problem: { kind: 'truncated', offset: ev.offset, length: ev.end - ev.offset, reason: ev.reason } };
    if (this.seqOnly && this.sawHeader && ev.type === FrameType.READING) {
      const seq = peekSeq(ev.payload);
      if (seq !== undefined) return { kind: 'seq', seq, offset: ev.offset };
    }
    let value: unknown;
    try {
      value = this.dec.decode(ev.payload);
    } catch (e) {
      return { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: `payload is not msgpack: ${(e as Error).message}` } };
    }
    if (ev.type === FrameType.HEADER) {
      if (this.sawHeader || ev.offset !== FILE_MAGIC.length) {
        return { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: 'unexpected second header' } };
      }
      try {
        const header = checkHeader(value, this.file);
        this.sawHeader = true;
        return { kind: 'header', header };
      } catch (e) {
        this.stopped = true;
        return { kind: 'problem', problem: { kind: 'bad_header', offset: ev.offset, length: ev.end - ev.offset, reason: (e as Error).message } };
      }
    }
    if (!this.sawHeader) return this.end();
    if (!Array.isArray(value) || typeof value[0] !== 'number') {
      return { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: 'record is not a tuple' } };
    }
    if (ev.type === FrameType.READING) {
      const r: Reading = {
        seq: value[0] as number,
        time_requested_us: value[1] as number,
        time_received_us: value[2] as number,
        data: value[3],
        offset: ev.offset,
      };
      if (typeof value[4] === 'string') r.mime_type = value[4];
      // only a plain map: anything else in that slot is not annotations (passed on as data, never executed)
      const ann = value[5] as unknown;
      if (ann !== null && typeof ann === 'object' && !Array.isArray(ann) && !(ann instanceof Uint8Array)) r.annotations = ann as ReadingAnnotations;
      return { kind: 'reading', reading: r };
    }
    return { kind: 'gap', gap: { from_seq: value[0] as number, to_seq: value[1] as number, reason: value[2] as GapReason, time_us: value[3] as number } };
  }

  /** At the end of the frames (or at a record before any header): the missing-header problem, if any. */
  end(): RecordEvent | undefined {
    if (this.sawHeader) return undefined;
    this.stopped = true;
    return { kind: 'problem', problem: { ...NO_HEADER } };
  }
}

/**
 * Decode a capture file's bytes into a stream of header/reading/gap/problem events.
 * Never throws for bad input; `file` only names the source in problem reasons. With `seqOnly`,
 * READING frames (CRC still checked) yield only their seq when it can be peeked from the tuple
 * head, and are fully decoded otherwise — for checks that need seqs, not readings.
 * The chunked twin is RecordStream (same decoder, same events).
 */
export function* readRecords(bytes: Uint8Array, file?: string, opts: { seqOnly?: boolean } = {}): Generator<RecordEvent> {
  if (bytes.length < FILE_MAGIC.length || magicMismatch(bytes, 0)) {
    yield badMagic(bytes.length, file);
    return;
  }
  const rd = new RecordDecoder(file, opts.seqOnly === true);
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) {
    const r = rd.record(ev);
    if (r) yield r;
    if (rd.stopped) return;
  }
  const r = rd.end();
  if (r) yield r;
}

/**
 * readRecords fed chunk by chunk, as bytes arrive: push() each chunk, then finish(). The events
 * passed to `on` are the ones readRecords gives for the concatenated bytes, in the same order,
 * each as soon as the bytes decide it — except a bad_magic problem, which comes at the first
 * chunk that disagrees with the file magic and whose `length` is the bytes seen so far.
 * Never throws for bad input. Memory held between pushes: the bytes of one undecided frame
 * (`retainedBytes`). Events hold views into the pushed chunks (binary data, `frame` payloads):
 * copy what must outlive the chunk. If `on` throws, the exception propagates and the stream stops.
 */
export class RecordStream {
  private readonly frames = new FrameStream(FILE_MAGIC.length);
  private readonly rd: RecordDecoder;
  private seen = 0;
  private over = false;

  constructor(
    private readonly file?: string,
    opts: { seqOnly?: boolean } = {},
  ) {
    this.rd = new RecordDecoder(file, opts.seqOnly === true);
  }

  /** Bytes pushed so far. */
  get bytesSeen(): number {
    return this.seen;
  }

  /** Bytes held between pushes (a frame that straddles chunks). */
  get retainedBytes(): number {
    return this.frames.retainedBytes;
  }

  /** True after a fatal problem (bad magic, bad or missing header) or finish(): later input is ignored. */
  get stopped(): boolean {
    return this.over;
  }

  push(chunk: Uint8Array, on: (ev: RecordEvent) => void): void {
    if (this.over || chunk.length === 0) return;
    const at = this.seen;
    this.seen += chunk.length;
    if (at < FILE_MAGIC.length && magicMismatch(chunk, at)) {
      this.halt();
      on(badMagic(this.seen, this.file));
      return;
    }
    this.guard(() => this.frames.push(chunk, (ev) => this.onFrame(ev, on)));
  }

  finish(on: (ev: RecordEvent) => void): void {
    if (this.over) return;
    if (this.seen < FILE_MAGIC.length) {
      this.halt();
      on(badMagic(this.seen, this.file));
      return;
    }
    this.guard(() => this.frames.finish((ev) => this.onFrame(ev, on)));
    if (this.over) return;
    this.halt();
    const r = this.rd.end();
    if (r) on(r);
  }

  private onFrame(ev: ScanEvent, on: (ev: RecordEvent) => void): void {
    if (this.over) return;
    const r = this.rd.record(ev);
    if (this.rd.stopped) this.halt();
    if (r) on(r);
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.halt();
      throw e;
    }
  }

  private halt(): void {
    this.over = true;
    this.frames.stop();
  }
}

export interface CaptureFileSummary {
  header: CaptureFileHeader | undefined;
  readings: Reading[];
  gaps: Gap[];
  problems: Problem[];
  /** Offset just past the last good frame: where a torn file is cut on recovery. */
  goodEnd: number;
}

/** Read a whole capture file into memory. `clean` ⇔ no problems. */
export function readCaptureBytes(bytes: Uint8Array, file?: string): CaptureFileSummary {
  const s: CaptureFileSummary = { header: undefined, readings: [], gaps: [], problems: [], goodEnd: 0 };
  for (const ev of readRecords(bytes, file)) {
    switch (ev.kind) {
      case 'header':
        s.header = ev.header;
        break;
      case 'reading':
        s.readings.push(ev.reading);
        break;
      case 'gap':
        s.gaps.push(ev.gap);
        break;
      case 'problem':
        s.problems.push(ev.problem);
        break;
      case 'seq':
        break; // only with seqOnly, which this full read does not ask for
    }
  }
  s.goodEnd = lastGoodEnd(bytes);
  return s;
}

/** End offset of the last frame with a valid CRC (0 when the magic is wrong). */
export function lastGoodEnd(bytes: Uint8Array): number {
  if (bytes.length < FILE_MAGIC.length || magicMismatch(bytes, 0)) return 0;
  let end = FILE_MAGIC.length;
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) if (ev.kind === 'frame') end = ev.end;
  return end;
}
