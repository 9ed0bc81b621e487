import { Encoder } from '@msgpack/msgpack';
import { crc32c } from './crc32c.js';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameOff, FrameType, type FrameTypeValue, type GapReason } from './layout.js';

/** Write a frame header for `payloadLength` bytes already at target[offset+12...], and its CRC. */
export function sealFrame(target: Uint8Array, offset: number, type: FrameTypeValue, payloadLength: number): number {
  target[offset + FrameOff.magic] = FRAME_MAGIC & 0xff;
  target[offset + FrameOff.magic + 1] = FRAME_MAGIC >>> 8;
  target[offset + FrameOff.type] = type;
  target[offset + FrameOff.flags] = 0;
  writeU32(target, offset + FrameOff.length, payloadLength);
  let c = crc32c(target, offset + FrameOff.type, offset + FrameOff.crc);
  const p = offset + FRAME_HEADER_BYTES;
  c = crc32c(target, p, p + payloadLength, c);
  writeU32(target, offset + FrameOff.crc, c);
  return FRAME_HEADER_BYTES + payloadLength;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

export function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** A frame as a standalone buffer (cold paths: headers, gaps). */
export function encodeFrame(type: FrameTypeValue, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  sealFrame(out, 0, type, payload.length);
  return out;
}

/**
 * The msgpack Encoder, byte for byte, with one change of method: for strings longer than
 * msgpack's own TextEncoder threshold the UTF-8 length comes from the native Buffer.byteLength
 * (msgpack counts it in a JS loop over every char, a third of the collector's time at 1 KiB
 * readings). Both count a lone surrogate as 3 bytes (it is written as U+FFFD), so the header
 * and the bytes are unchanged; shorter strings keep msgpack's own path.
 */
const LONG_STRING = 50;
const sharedTextEncoder = new TextEncoder();
interface EncoderInternals {
  bytes: Uint8Array;
  pos: number;
  ensureBufferSizeToWrite(n: number): void;
  writeStringHeader(n: number): void;
  encodeString(s: string): void;
}
class ReadingEncoder extends Encoder {}
{
  const proto = ReadingEncoder.prototype as unknown as EncoderInternals;
  const base = (Encoder.prototype as unknown as EncoderInternals).encodeString;
  proto.encodeString = function (this: EncoderInternals, s: string): void {
    if (s.length <= LONG_STRING) return base.call(this, s);
    const byteLength = Buffer.byteLength(s, 'utf8');
    this.ensureBufferSizeToWrite(1 + 4 + byteLength);
    this.writeStringHeader(byteLength);
    sharedTextEncoder.encodeInto(s, this.bytes.subarray(this.pos));
    this.pos += byteLength;
  };
}

/**
 * Encodes readings straight into a caller's buffer (a ring slot, a batch buffer) with one
 * reused msgpack Encoder and one reused tuple: the hot path allocates nothing per reading
 * beyond what msgpack needs for the user's data.
 */
export class FrameEncoder {
  private readonly enc = new ReadingEncoder({ ignoreUndefined: true, initialBufferSize: 4096 });
  private readonly tuple: unknown[] = [0, 0, 0, null];
  private readonly tupleMime: unknown[] = [0, 0, 0, null, ''];

  /** Encode the READING payload and return it (a view valid until the next call). */
  readingPayload(seq: number, tReqUs: number, tRecvUs: number, data: unknown, mime?: string): Uint8Array {
    const t = mime === undefined ? this.tuple : this.tupleMime;
    t[0] = seq;
    t[1] = tReqUs;
    t[2] = tRecvUs;
    t[3] = data;
    if (mime !== undefined) t[4] = mime;
    const out = this.enc.encodeSharedRef(t);
    t[3] = null; // do not keep the user's data alive
    return out;
  }

  /** Size a READING frame will take (header + payload) for a payload from readingPayload(). */
  static frameSize(payload: Uint8Array): number {
    return FRAME_HEADER_BYTES + payload.length;
  }

  /** Copy a payload into target at offset as a sealed frame; returns bytes written. */
  static put(target: Uint8Array, offset: number, type: FrameTypeValue, payload: Uint8Array): number {
    target.set(payload, offset + FRAME_HEADER_BYTES);
    return sealFrame(target, offset, type, payload.length);
  }

  /** Encode a complete READING frame into target; returns bytes written, or -1 if it does not fit. */
  reading(
    target: Uint8Array,
    offset: number,
    seq: number,
    tReqUs: number,
    tRecvUs: number,
    data: unknown,
    mime?: string,
  ): number {
    const payload = this.readingPayload(seq, tReqUs, tRecvUs, data, mime);
    if (offset + FRAME_HEADER_BYTES + payload.length > target.length) return -1;
    return FrameEncoder.put(target, offset, FrameType.READING, payload);
  }

  /** A GAP frame as a standalone buffer. */
  gap(fromSeq: number, toSeq: number, reason: GapReason, timeUs: number): Uint8Array {
    return encodeFrame(FrameType.GAP, this.enc.encode([fromSeq, toSeq, reason, timeUs]));
  }
}
