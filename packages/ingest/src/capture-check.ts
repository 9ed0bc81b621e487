/**
 * The server's capture-file check, in one pass over the bytes: every frame's CRC (scanFrames),
 * the header frame decoded and checked, GAP frames decoded, and of each READING frame only its
 * seq (the first element of the msgpack tuple) peeked, not the reading itself. Same outcome as
 * summarising `readCaptureBytes` (same fatal errors and messages, same readings, seqs, gaps and
 * problem count) for every file the edge writes; a READING whose tuple head cannot be peeked
 * falls back to the full decode, so odd encodings are judged exactly as before.
 */
import { Decoder } from '@msgpack/msgpack';
import { FILE_MAGIC, FrameType, checkHeader, scanFrames, type CaptureFileHeader, type Gap, type GapReason } from '@edgecap/format';

export interface CaptureScan {
  header: CaptureFileHeader | undefined;
  /** Reading seqs in file order. */
  seqs: number[];
  gaps: Gap[];
  problems: number;
  /** First fatal problem (bad magic, bad or missing header), as readRecords words it. */
  fatal?: string;
}

/** seq of a READING payload `[seq, ...]` when its head is a plain msgpack array + number; else undefined. */
function peekSeq(p: Uint8Array): number | undefined {
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

export function scanCapture(bytes: Uint8Array): CaptureScan {
  const out: CaptureScan = { header: undefined, seqs: [], gaps: [], problems: 0 };
  for (let i = 0; i < FILE_MAGIC.length; i++) {
    if (bytes[i] !== FILE_MAGIC[i]) {
      out.problems++;
      out.fatal = 'not an edgecap capture file';
      return out;
    }
  }
  const noHeader = (): CaptureScan => {
    out.problems++;
    out.fatal ??= 'file has no valid header frame';
    return out;
  };
  let dec: Decoder | undefined;
  const decode = (p: Uint8Array): { ok: true; value: unknown } | { ok: false } => {
    dec ??= new Decoder();
    try {
      return { ok: true, value: dec.decode(p) };
    } catch {
      return { ok: false };
    }
  };
  let sawHeader = false;
  for (const ev of scanFrames(bytes, FILE_MAGIC.length)) {
    if (ev.kind !== 'frame') {
      out.problems++;
      continue;
    }
    if (ev.type === FrameType.READING && sawHeader) {
      const seq = peekSeq(ev.payload);
      if (seq !== undefined) {
        out.seqs.push(seq);
        continue;
      }
    }
    const d = decode(ev.payload);
    if (!d.ok) {
      out.problems++;
      continue;
    }
    const value = d.value;
    if (ev.type === FrameType.HEADER) {
      if (sawHeader || ev.offset !== FILE_MAGIC.length) {
        out.problems++;
        continue;
      }
      try {
        out.header = checkHeader(value);
        sawHeader = true;
      } catch (e) {
        out.problems++;
        out.fatal = (e as Error).message;
        return out;
      }
      continue;
    }
    if (!sawHeader) return noHeader();
    if (!Array.isArray(value) || typeof value[0] !== 'number') {
      out.problems++;
      continue;
    }
    if (ev.type === FrameType.READING) out.seqs.push(value[0]);
    else out.gaps.push({ from_seq: value[0], to_seq: value[1] as number, reason: value[2] as GapReason, time_us: value[3] as number });
  }
  if (!sawHeader) return noHeader();
  return out;
}
