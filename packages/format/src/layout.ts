/**
 * Capture file layout (all integers little-endian):
 *
 *   file    := FILE_MAGIC(8) header-frame frame*
 *   frame   := MAGIC u16 | type u8 | flags u8 | length u32 | crc32c u32 | payload[length]
 *              crc32c covers bytes [2, 8) of the frame header (type, flags, length) and the payload,
 *              so a flipped type or length is caught like a flipped payload byte.
 *   payload := msgpack
 *     HEADER  {v, id, kind, name, method, type, tags, start_us, part_id?, mime_type?, params?}
 *     READING [seq, time_requested_us, time_received_us, data, mime_type?, annotations?]
 *             annotations (viam image annotations, binary items): {bboxes: [{id, label,
 *             x_min_normalized, y_min_normalized, x_max_normalized, y_max_normalized,
 *             confidence?}], classifications: [{label, confidence?, id?}]}; mime_type is nil
 *             when annotations follow without one. Added in place of a version bump: files
 *             without the 6th element read as before, and readers that predate it ignore it.
 *     GAP     [from_seq, to_seq (inclusive), reason, time_us]   readings the edge knows it lost
 *
 * The frame magic lets a reader resynchronise after a corrupt frame by scanning forward.
 */
export const FILE_MAGIC = new Uint8Array([0x89, 0x45, 0x43, 0x41, 0x50, 0x0d, 0x0a, 0x01]); // \x89ECAP\r\n v1
export const FORMAT_VERSION = 1;

export const FRAME_MAGIC = 0xec5a;
export const FRAME_HEADER_BYTES = 12;
/** Offsets inside a frame header. */
export const FrameOff = { magic: 0, type: 2, flags: 3, length: 4, crc: 8 } as const;
/** Largest payload a reader accepts; anything bigger is a corrupt length field. */
export const MAX_FRAME_PAYLOAD = 256 * 1024 * 1024;

export const FrameType = { HEADER: 1, READING: 2, GAP: 3 } as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export function isFrameType(t: number): t is FrameTypeValue {
  return t === FrameType.HEADER || t === FrameType.READING || t === FrameType.GAP;
}

/**
 * Why a range of sequence numbers is missing, as recorded by the edge (docs/glossary.md):
 * ring_full, write_error, janitor (deleted by policy), too_large, capture_error; writer_crash /
 * collector_timeout (a thread died or hung with readings in hand); memory mode: memory_full
 * (dropped for the budget), memory_lost (an earlier run's unsynced memory), rejected (the
 * ingest refused the in-memory file's bytes: there is no failed/ to keep it in).
 */
export type GapReason =
  | 'ring_full'
  | 'write_error'
  | 'janitor'
  | 'too_large'
  | 'capture_error'
  | 'writer_crash'
  | 'collector_timeout'
  | 'memory_full'
  | 'memory_lost'
  | 'rejected';

/** One viam bounding box (coordinates normalized to [0, 1]; confidence absent when unknown). */
export interface BoundingBoxAnnotation {
  id: string;
  label: string;
  x_min_normalized: number;
  y_min_normalized: number;
  x_max_normalized: number;
  y_max_normalized: number;
  confidence?: number;
}

/** One viam classification of a whole image. */
export interface ClassificationAnnotation {
  label: string;
  confidence?: number;
  id?: string;
}

/** The annotations a READING may carry (the 6th tuple element). */
export interface ReadingAnnotations {
  bboxes: BoundingBoxAnnotation[];
  classifications: ClassificationAnnotation[];
}
