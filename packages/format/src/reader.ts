import { Decoder } from '@msgpack/msgpack';
import { crc32c } from './crc32c.js';
import { readU32 } from './frame.js';
import { checkHeader, type CaptureFileHeader } from './header.js';
import {
  FILE_MAGIC,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameOff,
  FrameType,
  MAX_FRAME_PAYLOAD,
  isFrameType,
  type FrameTypeValue,
  type GapReason,
} from './layout.js';

/**
 * Streaming frame scanner. It never throws on bad bytes: a CRC mismatch is reported as
 * `corrupt` and the scan resynchronises on the next frame magic whose CRC checks out; a
 * frame running past the end is a `truncated` tail (the normal state after a crash).
 */
export type ScanEvent =
  | { kind: 'frame'; type: FrameTypeValue; offset: number; end: number; payload: Uint8Array }
  | { kind: 'corrupt'; offset: number; end: number; reason: string }
  | { kind: 'truncated'; offset: number; reason: string };

/** Check the frame at `o`: 'ok' | 'short' (runs past end) | reason string for corrupt. */
function probe(b: Uint8Array, o: number): { ok: true; type: FrameTypeValue; len: number } | { ok: false; short: boolean; reason: string } {
  if (o + FRAME_HEADER_BYTES > b.length) return { ok: false, short: true, reason: 'frame header cut off' };
  if ((b[o]! | (b[o + 1]! << 8)) !== FRAME_MAGIC) return { ok: false, short: false, reason: 'bad frame magic' };
  const type = b[o + FrameOff.type]!;
  const len = readU32(b, o + FrameOff.length);
  if (len > MAX_FRAME_PAYLOAD) return { ok: false, short: false, reason: `frame length ${len} exceeds limit` };
  if (o + FRAME_HEADER_BYTES + len > b.length) return { ok: false, short: true, reason: `frame of ${len} bytes runs past end of file` };
  let c = crc32c(b, o + FrameOff.type, o + FrameOff.crc);
  c = crc32c(b, o + FRAME_HEADER_BYTES, o + FRAME_HEADER_BYTES + len, c);
  if (c !== readU32(b, o + FrameOff.crc)) return { ok: false, short: false, reason: 'checksum mismatch' };
  if (!isFrameType(type)) return { ok: false, short: false, reason: `unknown frame type ${type}` };
  return { ok: true, type, len };
}

/** Next offset > from where a frame with a valid CRC starts, or -1. */
function resync(b: Uint8Array, from: number): number {
  const lo = FRAME_MAGIC & 0xff;
  const hi = FRAME_MAGIC >>> 8;
  for (let i = from; i + FRAME_HEADER_BYTES <= b.length; i++) {
    i = b.indexOf(lo, i);
    if (i < 0) return -1;
    if (b[i + 1] === hi && probe(b, i).ok) return i;
  }
  return -1;
}

export function* scanFrames(b: Uint8Array, start: number): Generator<ScanEvent> {
  let o = start;
  while (o < b.length) {
    const p = probe(b, o);
    if (p.ok) {
      const end = o + FRAME_HEADER_BYTES + p.len;
      yield { kind: 'frame', type: p.type, offset: o, end, payload: b.subarray(o + FRAME_HEADER_BYTES, end) };
      o = end;
      continue;
    }
    const next = resync(b, o + 1);
    if (next < 0) {
      // Nothing valid follows. A frame that runs past EOF is a torn tail; garbage is corruption.
      if (p.short) yield { kind: 'truncated', offset: o, reason: p.reason };
      else yield { kind: 'corrupt', offset: o, end: b.length, reason: p.reason };
      return;
    }
    yield { kind: 'corrupt', offset: o, end: next, reason: p.reason };
    o = next;
  }
}

export interface Reading {
  seq: number;
  time_requested_us: number;
  time_received_us: number;
  data: unknown;
  mime_type?: string;
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

/**
 * Decode a capture file's bytes into a stream of header/reading/gap/problem events.
 * Never throws for bad input; `file` only names the source in problem reasons. With `seqOnly`,
 * READING frames (CRC still checked) yield only their seq when it can be peeked from the tuple
 * head, and are fully decoded otherwise — for checks that need seqs, not readings.
 */
export function* readRecords(bytes: Uint8Array, file?: string, opts: { seqOnly?: boolean } = {}): Generator<RecordEvent> {
  for (let i = 0; i < FILE_MAGIC.length; i++) {
    if (bytes[i] !== FILE_MAGIC[i]) {
      yield { kind: 'problem', problem: { kind: 'bad_magic', offset: 0, length: bytes.length, reason: `not an edgecap capture file${file ? `: ${file}` : ''}` } };
      return;
    }
  }
  const dec = new Decoder();
  let sawHeader = false;
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) {
    if (ev.kind === 'corrupt') {
      yield { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: ev.reason } };
      continue;
    }
    if (ev.kind === 'truncated') {
      yield { kind: 'problem', problem: { kind: 'truncated', offset: ev.offset, length: bytes.length - ev.offset, reason: ev.reason } };
      continue;
    }
    if (opts.seqOnly && sawHeader && ev.type === FrameType.READING) {
      const seq = peekSeq(ev.payload);
      if (seq !== undefined) {
        yield { kind: 'seq', seq, offset: ev.offset };
        continue;
      }
    }
    let value: unknown;
    try {
      value = dec.decode(ev.payload);
    } catch (e) {
      yield { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: `payload is not msgpack: ${(e as Error).message}` } };
      continue;
    }
    if (ev.type === FrameType.HEADER) {
      if (sawHeader || ev.offset !== FILE_MAGIC.length) {
        yield { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: 'unexpected second header' } };
        continue;
      }
      try {
        yield { kind: 'header', header: checkHeader(value, file) };
        sawHeader = true;
      } catch (e) {
        yield { kind: 'problem', problem: { kind: 'bad_header', offset: ev.offset, length: ev.end - ev.offset, reason: (e as Error).message } };
        return;
      }
      continue;
    }
    if (!sawHeader) {
      yield { kind: 'problem', problem: { kind: 'bad_header', offset: FILE_MAGIC.length, length: 0, reason: 'file has no valid header frame' } };
      return;
    }
    if (!Array.isArray(value) || typeof value[0] !== 'number') {
      yield { kind: 'problem', problem: { kind: 'corrupt', offset: ev.offset, length: ev.end - ev.offset, reason: 'record is not a tuple' } };
      continue;
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
      yield { kind: 'reading', reading: r };
    } else {
      yield { kind: 'gap', gap: { from_seq: value[0] as number, to_seq: value[1] as number, reason: value[2] as GapReason, time_us: value[3] as number } };
    }
  }
  if (!sawHeader) yield { kind: 'problem', problem: { kind: 'bad_header', offset: FILE_MAGIC.length, length: 0, reason: 'file has no valid header frame' } };
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
  for (let i = 0; i < FILE_MAGIC.length; i++) if (bytes[i] !== FILE_MAGIC[i]) return 0;
  let end = FILE_MAGIC.length;
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) if (ev.kind === 'frame') end = ev.end;
  return end;
}
