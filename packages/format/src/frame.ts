import { Encoder } from '@msgpack/msgpack';
import { crc32c } from './crc32c.js';
import { ReadingPacker } from './pack.js';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameOff, FrameType, type FrameTypeValue, type GapReason, type ReadingAnnotations } from './layout.js';

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
 * Encodes readings into one reused buffer (ReadingPacker) and seals them there: the hot path
 * allocates nothing per reading but the returned view.
 */
export class FrameEncoder {
  private readonly packer = new ReadingPacker();
  private readonly enc = new Encoder();
  /** Annotated READING tuples (undefined optional fields left out, as ReadingPacker does). */
  private readonly annotated = new Encoder({ ignoreUndefined: true });

  /**
   * Encode the READING payload and return it (a view valid until the next call). With
   * `annotations` (viam image annotations, a cold path) the 6-element tuple goes through the
   * msgpack Encoder, which writes the numbers and bytes exactly as ReadingPacker does.
   */
  readingPayload(seq: number, tReqUs: number, tRecvUs: number, data: unknown, mime?: string, annotations?: ReadingAnnotations): Uint8Array {
    if (annotations !== undefined) return this.annotated.encodeSharedRef([seq, tReqUs, tRecvUs, data, mime ?? null, annotations]);
    const end = this.packer.tuple(FRAME_HEADER_BYTES, seq, tReqUs, tRecvUs, data, mime);
    return this.packer.bytes.subarray(FRAME_HEADER_BYTES, end);
  }

  /** Encode a sealed READING frame and return it (a view valid until the next call). */
  readingFrame(seq: number, tReqUs: number, tRecvUs: number, data: unknown, mime?: string, annotations?: ReadingAnnotations): Uint8Array {
    if (annotations !== undefined) return encodeFrame(FrameType.READING, this.readingPayload(seq, tReqUs, tRecvUs, data, mime, annotations));
    const end = this.packer.tuple(FRAME_HEADER_BYTES, seq, tReqUs, tRecvUs, data, mime);
    const b = this.packer.bytes;
    sealFrame(b, 0, FrameType.READING, end - FRAME_HEADER_BYTES);
    return b.subarray(0, end);
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
    annotations?: ReadingAnnotations,
  ): number {
    const frame = this.readingFrame(seq, tReqUs, tRecvUs, data, mime, annotations);
    if (offset + frame.length > target.length) return -1;
    target.set(frame, offset);
    return frame.length;
  }

  /** A GAP frame as a standalone buffer. */
  gap(fromSeq: number, toSeq: number, reason: GapReason, timeUs: number): Uint8Array {
    return encodeFrame(FrameType.GAP, this.enc.encode([fromSeq, toSeq, reason, timeUs]));
  }
}
