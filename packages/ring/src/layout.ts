/**
 * Shared-memory layout of one SPSC ring and of the doorbell. Every slot has a name here;
 * nothing indexes the control words with a bare number.
 *
 *   SharedArrayBuffer := control Int32[CTRL_SLOTS] | counters Float64[COUNTER_SLOTS] | data[capacity]
 *
 *   data: records, each  len:i32 (little-endian, 4-aligned) | payload[len] | pad to 4
 *         len === PAD_MARKER means "skip to offset 0" (the record did not fit before the end).
 */
export const Ctrl = {
  /** Producer's write offset into data (bytes, 0 <= head < capacity). Producer-owned. */
  HEAD: 0,
  /** Consumer's read offset into data. Consumer-owned. */
  TAIL: 1,
  /** RingState: OPEN or CLOSED (terminal, set by the producer, travels with the positions). */
  STATE: 2,
  /** Data capacity in bytes (multiple of 4), written once at creation. */
  CAPACITY: 3,
  /** Records refused because the ring was full (producer-owned, Atomics.add). */
  DROPPED: 4,
} as const;
export const CTRL_SLOTS = 8;

/** Float64 counters written by one thread only (never torn on 64-bit platforms we run on). */
export const Counter = {
  /** Records pushed (producer). */
  PUSHED: 0,
  /** Records consumed (consumer). */
  CONSUMED: 1,
  /** Payload bytes pushed (producer). */
  PUSHED_BYTES: 2,
} as const;
export const COUNTER_SLOTS = 4;

export const RingState = { OPEN: 0, CLOSED: 1 } as const;

export const CTRL_BYTES = CTRL_SLOTS * 4;
export const COUNTER_BYTES = COUNTER_SLOTS * 8;
export const DATA_OFFSET = CTRL_BYTES + COUNTER_BYTES;
/** Length prefix of every record. */
export const RECORD_HEADER_BYTES = 4;
export const PAD_MARKER = -1;

/** Doorbell: one Int32 pair shared by many rings and one consumer. */
export const Bell = {
  /** Bumped by producers (only while the consumer sleeps); the consumer waits on it. */
  SEQ: 0,
  /**
   * 0 awake; 1 (about to be) asleep with a timer of its own (producers with a wake threshold
   * ring only past it); 2 asleep with nothing to wake it but the bell (every push rings).
   */
  SLEEPING: 1,
} as const;
/** Values of Bell.SLEEPING. */
export const Sleep = { AWAKE: 0, TIMED: 1, DEEP: 2 } as const;
export const BELL_SLOTS = 4;

export const align4 = (n: number): number => (n + 3) & ~3;
