/**
 * Shared-memory layouts of the capture package. Every slot is named here.
 *
 * Ring record (inside one ring record of @edgecap/ring):
 *   type u8 | flags u8 | stream u16 | count u32 | firstSeq f64 | body
 *     type FRAME:    body = a complete sealed frame (READING or GAP) covering seqs
 *                    [firstSeq, firstSeq + count)
 *     type OVERSIZE: body = token u32; the frame itself travels by postMessage (same token)
 */
export const RecOff = { type: 0, flags: 1, stream: 2, count: 4, firstSeq: 8, body: 16 } as const;
export const REC_PREFIX_BYTES = 16;
export const RecType = { FRAME: 1, OVERSIZE: 2 } as const;
export const RecFlag = { BINARY: 1, READING: 2 } as const;

/**
 * Per-stream stats (Float64, each slot written by exactly one thread).
 * collector/push side: CAPTURED, DROPPED, MISSED, NEXT_SEQ; writer side: the rest.
 * WRITTEN_SEQ outlives the writer thread (the engine owns the memory): after the writer died,
 * everything from it up was either re-read from the ring or lost with the thread. The engine
 * seeds it with the stream's persisted seq before any writer sees the stream.
 */
export const Stat = {
  CAPTURED: 0,
  DROPPED: 1,
  MISSED: 2,
  NEXT_SEQ: 3,
  BYTES: 4,
  WRITE_ERRORS: 5,
  DROPPED_ON_WRITE_ERROR: 6,
  PERSISTED_SEQ: 7,
  CAPTURE_ERRORS: 8,
  /** Seq after the last frame written to a file (or explained by a written GAP frame). */
  WRITTEN_SEQ: 9,
} as const;
export const STAT_SLOTS = 10;


/** Per-resource Int32 words. */
export const ResSlot = {
  /** -1 unknown, 0 false, 1 true: should_sync of the latest tabular reading. */
  SHOULD_SYNC: 0,
} as const;
export const RES_SLOTS = 2;

export function newStatsSab(): SharedArrayBuffer {
  return new SharedArrayBuffer(STAT_SLOTS * 8);
}
export function newResSab(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(RES_SLOTS * 4);
  Atomics.store(new Int32Array(sab), ResSlot.SHOULD_SYNC, -1);
  return sab;
}
