/**
 * A one-reading binary capture file (what readingsToCaptureBytes writes for a streamed viam
 * upload) produced without holding the binary in memory: the binary is read from a staged area
 * twice, once for its digest and the frame's CRC, once to copy it behind the frame header.
 *
 *   FILE_MAGIC | HEADER frame                                    (small: encodeFileStart)
 *   MAGIC u16 | READING u8 | 0 u8 | length u32 | crc32c u32      (frame header, 12 bytes)
 *   prefix   = msgpack [seq, time_requested_us, time_received_us,   (tuple head + 3 numbers)
 *   binHead  = bin8 | bin16 | bin32 length of the binary
 *   binary   ...                                                 (streamed from staging)
 *   suffix   = mime_type?, annotations?]                          (nothing; a msgpack string;
 *                                                                 or mime|nil and a map)
 *
 * prefix and suffix come from the same FrameEncoder as readingsToCaptureBytes (encoding an empty
 * binary and cutting out its `c4 00`), so the bytes are identical to the in-memory path.
 */
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameEncoder, FrameOff, FrameType, crc32c, encodeFileStart, writeU32, type ReadingAnnotations } from '@edgecap/format';
import { binaryItemHash, captureHeaderInit, dedupFileId, readingMime, viamDedupKey, type UploadMetadataLike } from './convert.js';
import type { SensorMetadata__Output } from './proto.js';

/** msgpack's header for a bin of `n` bytes (as @msgpack/msgpack and ReadingPacker write it). */
export function msgpackBinHead(n: number): Uint8Array {
  if (n < 0x100) return Uint8Array.of(0xc4, n);
  if (n < 0x10000) return Uint8Array.of(0xc5, n >>> 8, n & 0xff);
  return Uint8Array.of(0xc6, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** The READING payload around the binary: [prefix][binHead(n)][binary][suffix]. */
export function readingPayloadParts(seq: number, tReqUs: number, tRecvUs: number, mime: string | undefined, annotations?: ReadingAnnotations): { prefix: Uint8Array; suffix: Uint8Array } {
  const enc = new FrameEncoder();
  const empty = new Uint8Array(0);
  const withMime = enc.readingPayload(seq, tReqUs, tRecvUs, empty, mime, annotations).slice();
  // the same tuple without mime (or annotations) ends right after the empty bin: that is where
  // the bin sits (a fixarray head is one byte whatever the tuple's length)
  const at = enc.readingPayload(seq, tReqUs, tRecvUs, empty, undefined).length - 2;
  if (withMime[at] !== 0xc4 || withMime[at + 1] !== 0) throw new Error('READING payload layout changed: empty bin not where expected');
  return { prefix: withMime.subarray(0, at), suffix: withMime.subarray(at + 2) };
}

/** Where the bytes of a streamed binary upload are read back from. */
export interface ByteSource {
  chunks(): AsyncIterable<Uint8Array>;
}

/** Something that takes the capture file's bytes in order. */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
}

export interface BinaryCaptureInput {
  md: UploadMetadataLike;
  sensorMetadata: SensorMetadata__Output | null | undefined;
  time_requested_us: number;
  time_received_us: number;
  /** From the sensor metadata's mime enum, when set. */
  mime_type?: string;
  /** From the sensor metadata's annotations, when there are any (convert.ts annotationsOf). */
  annotations?: ReadingAnnotations;
  /** Length of the binary in `source`. */
  size: number;
}

/** Pass 1 over the staged binary: the dedup id and everything the capture file needs up front. */
export interface BinaryCapturePlan {
  file_id: string;
  /** FILE_MAGIC + HEADER frame, READING frame header, payload prefix and bin header. */
  head: Uint8Array;
  suffix: Uint8Array;
  /** Total length of the capture file. */
  total: number;
  /** CRC32C of the binary alone: the copy pass checks the staged bytes did not change. */
  binaryCrc: number;
}

/**
 * Read the binary once: its item digest (→ dedup key → file id) and the READING frame's CRC.
 * `check` runs between chunks (throw to stop: a cancelled call).
 */
export async function planBinaryCapture(input: BinaryCaptureInput, source: ByteSource, check: () => void = () => undefined): Promise<BinaryCapturePlan> {
  const { size } = input;
  const digest = binaryItemHash(input.sensorMetadata, size);
  const binHead = msgpackBinHead(size);
  // the reading carries a mime only when it differs from the header's (which the id does not change)
  const mime = readingMime(captureHeaderInit('', input.md, 'binary', input.time_requested_us), input.mime_type);
  const parts = readingPayloadParts(0, input.time_requested_us, input.time_received_us, mime, input.annotations);
  const payloadLength = parts.prefix.length + binHead.length + size + parts.suffix.length;
  const fh = new Uint8Array(FRAME_HEADER_BYTES);
  fh[FrameOff.magic] = FRAME_MAGIC & 0xff;
  fh[FrameOff.magic + 1] = FRAME_MAGIC >>> 8;
  fh[FrameOff.type] = FrameType.READING;
  fh[FrameOff.flags] = 0;
  writeU32(fh, FrameOff.length, payloadLength);
  let crc = crc32c(fh, FrameOff.type, FrameOff.crc);
  crc = crc32c(parts.prefix, 0, parts.prefix.length, crc);
  crc = crc32c(binHead, 0, binHead.length, crc);
  let binCrc = 0;
  let seen = 0;
  for await (const c of source.chunks()) {
    check();
    seen += c.length;
    if (seen > size) break;
    digest.update(c);
    crc = crc32c(c, 0, c.length, crc);
    binCrc = crc32c(c, 0, c.length, binCrc);
  }
  check();
  if (seen !== size) throw new Error(`staged binary reads back ${seen} bytes, ${size} were written`);
  crc = crc32c(parts.suffix, 0, parts.suffix.length, crc);
  writeU32(fh, FrameOff.crc, crc);
  const file_id = dedupFileId(viamDedupKey(input.md, [digest.digest()]));
  const start = encodeFileStart(captureHeaderInit(file_id, input.md, 'binary', input.time_requested_us)).bytes;
  const head = Buffer.concat([start, fh, parts.prefix, binHead]);
  return { file_id, head, suffix: parts.suffix, total: head.length + size + parts.suffix.length, binaryCrc: binCrc };
}

/** Pass 2: the capture file into `sink` — head, the binary read back from `source`, suffix. */
export async function writeBinaryCapture(plan: BinaryCapturePlan, size: number, source: ByteSource, sink: ByteSink, check: () => void = () => undefined): Promise<void> {
  await sink.write(plan.head);
  let crc = 0;
  let seen = 0;
  for await (const c of source.chunks()) {
    check();
    seen += c.length;
    if (seen > size) break;
    crc = crc32c(c, 0, c.length, crc);
    await sink.write(c);
  }
  check();
  if (seen !== size) throw new Error(`staged binary reads back ${seen} bytes, ${size} were written`);
  if (crc !== plan.binaryCrc) throw new Error('staged binary changed between its two reads (CRC32C differs)');
  if (plan.suffix.length > 0) await sink.write(plan.suffix);
}
