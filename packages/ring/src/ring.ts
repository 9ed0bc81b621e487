/**
 * Single-producer / single-consumer ring of variable-length records over a SharedArrayBuffer.
 *
 *   producer thread                         consumer thread (the writer)
 *   tryPush(len, fill) ──► data[head..] ──► drain(cb) reads data[tail..]
 *        │ Atomics.store(HEAD)                  │ Atomics.store(TAIL)
 *        └─ doorbell.ring() if consumer sleeps ◄┘ doorbell.wait() (waitAsync + timeout)
 *
 * A record is written contiguously (the producer fills it in place); when it does not fit before
 * the end of the data area, a PAD marker sends the reader back to offset 0. One byte-group of
 * space always stays free so head === tail means "empty". Full → tryPush returns false and the
 * shared DROPPED counter is bumped: the caller drops, it never blocks.
 */
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import {
  Bell,
  BELL_SLOTS,
  COUNTER_SLOTS,
  CTRL_BYTES,
  CTRL_SLOTS,
  Counter,
  Ctrl,
  DATA_OFFSET,
  PAD_MARKER,
  RECORD_HEADER_BYTES,
  RingState,
  Sleep,
  align4,
} from './layout.js';

export const MIN_RING_BYTES = 64;
/** The consumer gives space back to the producer at least every this many records. */
const RELEASE_EVERY = 64;

interface AtomicsWithWaitAsync {
  waitAsync(
    a: Int32Array,
    index: number,
    value: number,
    timeout?: number,
  ): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}

/** Allocate the shared memory for a ring whose data area holds `capacity` bytes. */
export function createRingBuffer(capacity: number): SharedArrayBuffer {
  const cap = align4(Math.max(MIN_RING_BYTES, Math.floor(capacity)));
  const sab = new SharedArrayBuffer(DATA_OFFSET + cap);
  const ctrl = new Int32Array(sab, 0, CTRL_SLOTS);
  Atomics.store(ctrl, Ctrl.CAPACITY, cap);
  return sab;
}

/** Largest payload a ring of this capacity always accepts once drained. */
export function maxRecordBytes(capacity: number): number {
  return Math.floor(align4(capacity) / 2) - RECORD_HEADER_BYTES - 4;
}

class RingView {
  readonly sab: SharedArrayBuffer;
  readonly ctrl: Int32Array;
  readonly counters: Float64Array;
  readonly data: Uint8Array;
  readonly dv: DataView;
  readonly capacity: number;
  /** Largest record payload accepted by tryPush. */
  readonly maxRecord: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.ctrl = new Int32Array(sab, 0, CTRL_SLOTS);
    this.counters = new Float64Array(sab, CTRL_BYTES, COUNTER_SLOTS);
    this.capacity = Atomics.load(this.ctrl, Ctrl.CAPACITY);
    if (this.capacity <= 0 || DATA_OFFSET + this.capacity !== sab.byteLength) {
      throw new EdgecapError(ErrorCodes.PROTOCOL, 'not a ring buffer (bad capacity word)');
    }
    this.data = new Uint8Array(sab, DATA_OFFSET, this.capacity);
    this.dv = new DataView(sab, DATA_OFFSET, this.capacity);
    this.maxRecord = maxRecordBytes(this.capacity);
  }

  get closed(): boolean {
    return Atomics.load(this.ctrl, Ctrl.STATE) === RingState.CLOSED;
  }
  get dropped(): number {
    return Atomics.load(this.ctrl, Ctrl.DROPPED) >>> 0;
  }
  get pushed(): number {
    return this.counters[Counter.PUSHED]!;
  }
  get consumed(): number {
    return this.counters[Counter.CONSUMED]!;
  }
  /** Bytes currently queued (approximate from the other side). */
  used(): number {
    const h = Atomics.load(this.ctrl, Ctrl.HEAD);
    const t = Atomics.load(this.ctrl, Ctrl.TAIL);
    return h >= t ? h - t : this.capacity - t + h;
  }
  isEmpty(): boolean {
    return Atomics.load(this.ctrl, Ctrl.HEAD) === Atomics.load(this.ctrl, Ctrl.TAIL);
  }
}

export type Fill = (buf: Uint8Array, offset: number, dv: DataView) => void;

export class RingProducer extends RingView {
  private head: number;
  private resAt = 0;
  private resLen = -1;
  private resTail = 0;
  /**
   * `wakeAtBytes` > 0: ring the doorbell only once at least that many bytes are queued, for a
   * consumer that also wakes on its own timer (the capture writer wakes every flush tick), so
   * small pushes do not cost a futex wake each; a consumer in deep sleep (no timer) is rung by
   * every push. 0 (default): ring on every push.
   */
  constructor(
    sab: SharedArrayBuffer,
    private readonly bell?: Doorbell,
    private readonly wakeAtBytes = 0,
  ) {
    super(sab);
    this.head = Atomics.load(this.ctrl, Ctrl.HEAD);
  }

  /**
   * Reserve `len` bytes, let `fill(buf, offset)` write the record in place, publish it.
   * Returns false (and bumps the shared DROPPED counter) when the ring is full or closed.
   * Throws RECORD_TOO_LARGE when len can never fit (use the caller's oversize fallback).
   */
  tryPush(len: number, fill: Fill): boolean {
    const at = this.reserve(len);
    if (at < 0) return false;
    fill(this.data, at, this.dv);
    this.commit();
    return true;
  }

  /**
   * Two-step push without a closure: reserve `len` bytes and get the payload offset into
   * `data` (or -1 when full/closed: the shared DROPPED counter is bumped), write the record
   * there, then `commit()` to publish it. Nothing is visible to the consumer before commit();
   * a reservation not committed is simply overwritten by the next one.
   * Throws RECORD_TOO_LARGE when len can never fit (use the caller's oversize fallback).
   */
  reserve(len: number): number {
    if (len > this.maxRecord || len < 0) {
      throw new EdgecapError(ErrorCodes.RECORD_TOO_LARGE, `record of ${len} bytes exceeds ring limit ${this.maxRecord}`);
    }
    const cap = this.capacity;
    const need = align4(RECORD_HEADER_BYTES + len);
    const tail = Atomics.load(this.ctrl, Ctrl.TAIL);
    const head = this.head;
    let at: number;
    if (Atomics.load(this.ctrl, Ctrl.STATE) === RingState.CLOSED) {
      Atomics.add(this.ctrl, Ctrl.DROPPED, 1);
      return -1;
    }
    if (head >= tail) {
      const end = cap - head;
      if (need < end || (need === end && tail !== 0)) {
        at = head;
      } else if (need < tail) {
        // does not fit before the end: pad marker, restart at 0 (published with the record)
        this.dv.setInt32(head, PAD_MARKER, true);
        at = 0;
      } else {
        Atomics.add(this.ctrl, Ctrl.DROPPED, 1);
        return -1;
      }
    } else if (need < tail - head) {
      at = head;
    } else {
      Atomics.add(this.ctrl, Ctrl.DROPPED, 1);
      return -1;
    }
    this.dv.setInt32(at, len, true);
    this.resTail = tail;
    this.resAt = at;
    this.resLen = len;
    return at + RECORD_HEADER_BYTES;
  }

  /** Publish the record of the last successful reserve(). */
  commit(): void {
    const len = this.resLen;
    if (len < 0) throw new EdgecapError(ErrorCodes.STATE, 'ring commit() without a reservation');
    let next = this.resAt + align4(RECORD_HEADER_BYTES + len);
    if (next === this.capacity) next = 0;
    this.head = next;
    this.resLen = -1;
    const c = this.counters;
    c[Counter.PUSHED] = c[Counter.PUSHED]! + 1;
    c[Counter.PUSHED_BYTES] = c[Counter.PUSHED_BYTES]! + len;
    Atomics.store(this.ctrl, Ctrl.HEAD, next);
    if (this.bell) {
      const w = this.wakeAtBytes;
      if (w === 0) this.bell.ring();
      else {
        const t = this.resTail;
        if ((next >= t ? next - t : this.capacity - t + next) >= w) this.bell.ring();
        // below the threshold: a consumer in deep sleep has no timer to find this record by
        else this.bell.ringIfDeep();
      }
    }
  }

  /** Convenience: copy bytes in as one record. */
  pushBytes(bytes: Uint8Array): boolean {
    return this.tryPush(bytes.length, (buf, off) => buf.set(bytes, off));
  }

  /** Terminal: no more records. The consumer drains what is left and then sees `ended`. */
  close(): void {
    Atomics.store(this.ctrl, Ctrl.STATE, RingState.CLOSED);
    this.bell?.ring(true);
  }
}

export type RecordHandler = (buf: Uint8Array, offset: number, len: number, dv: DataView) => boolean | void;

export class RingConsumer extends RingView {
  private tail: number;
  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.tail = Atomics.load(this.ctrl, Ctrl.TAIL);
  }

  /**
   * Hand up to `max` records to `cb` (views into shared memory, valid only during the call:
   * copy what you keep). `cb` returning false leaves that record in the ring and stops the drain.
   * Returns the number of records consumed.
   */
  drain(cb: RecordHandler, max = Infinity): number {
    let n = 0;
    let tail = this.tail;
    const published = tail;
    const head = Atomics.load(this.ctrl, Ctrl.HEAD);
    try {
      while (tail !== head && n < max) {
        const len = this.dv.getInt32(tail, true);
        if (len === PAD_MARKER) {
          tail = 0;
          continue;
        }
        if (cb(this.data, tail + RECORD_HEADER_BYTES, len, this.dv) === false) break;
        tail += align4(RECORD_HEADER_BYTES + len);
        if (tail === this.capacity) tail = 0;
        n++;
        this.tail = tail;
        // TAIL is published every RELEASE_EVERY records (and at the end), not per record: one
        // seq-cst store per small record was a visible share of the writer's time
        if (n % RELEASE_EVERY === 0) Atomics.store(this.ctrl, Ctrl.TAIL, tail);
      }
      if (tail === 0 && this.tail !== 0 && n === 0) this.tail = tail; // only a pad marker was skipped
    } finally {
      if (this.tail !== published) Atomics.store(this.ctrl, Ctrl.TAIL, this.tail);
      if (n > 0) this.counters[Counter.CONSUMED] = this.counters[Counter.CONSUMED]! + n;
    }
    return n;
  }

  /** True once the producer closed the ring and everything was consumed. */
  get ended(): boolean {
    return this.closed && this.isEmpty();
  }
}

/**
 * One Int32 word many producers ring and one consumer sleeps on. Producers pay one
 * Atomics.load per push; they only bump + notify while the consumer declared itself asleep.
 */
export class Doorbell {
  readonly sab: SharedArrayBuffer;
  readonly words: Int32Array;
  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(BELL_SLOTS * 4);
    this.words = new Int32Array(this.sab, 0, BELL_SLOTS);
  }

  ring(force = false): void {
    if (force) this.wake();
    else {
      const s = Atomics.load(this.words, Bell.SLEEPING);
      if (s !== Sleep.AWAKE) this.wakeFrom(s);
    }
  }

  /** ring(), but only for a consumer in deep sleep (one with no timer of its own to wake it). */
  ringIfDeep(): void {
    if (Atomics.load(this.words, Bell.SLEEPING) === Sleep.DEEP) this.wakeFrom(Sleep.DEEP);
  }

  /**
   * Only the producer that flips SLEEPING from `s` to AWAKE wakes the consumer: one futex wake
   * per sleep, not one per push while the woken consumer is still on its way back to drain.
   */
  private wakeFrom(s: number): void {
    if (Atomics.compareExchange(this.words, Bell.SLEEPING, s, Sleep.AWAKE) === s) this.wake();
  }

  private wake(): void {
    Atomics.add(this.words, Bell.SEQ, 1);
    Atomics.notify(this.words, Bell.SEQ);
  }

  /**
   * Consumer: sleep until a producer rings or `timeoutMs` passes. `hasWork` is re-checked after
   * declaring sleep (so a push racing with falling asleep is never missed: the producer's
   * Atomics.store of its head and its Atomics.load of SLEEPING are ordered against ours).
   * `deep`: the consumer has nothing timed to do, so every push must ring (Sleep.DEEP), not only
   * one past a producer's threshold. Non-blocking for the event loop (Atomics.waitAsync).
   * Resolves true when woken, false on timeout / work found.
   */
  async wait(timeoutMs: number, hasWork: () => boolean, deep = false): Promise<boolean> {
    const seq = Atomics.load(this.words, Bell.SEQ);
    Atomics.store(this.words, Bell.SLEEPING, deep ? Sleep.DEEP : Sleep.TIMED);
    try {
      if (hasWork()) return false;
      const r = (Atomics as unknown as AtomicsWithWaitAsync).waitAsync(this.words, Bell.SEQ, seq, Math.max(0, timeoutMs));
      const v = r.async ? await r.value : r.value;
      return v === 'ok' || v === 'not-equal';
    } finally {
      Atomics.store(this.words, Bell.SLEEPING, Sleep.AWAKE);
    }
  }

  /** Blocking variant for threads without an event loop to keep free. */
  waitSync(timeoutMs: number, hasWork: () => boolean): boolean {
    const seq = Atomics.load(this.words, Bell.SEQ);
    Atomics.store(this.words, Bell.SLEEPING, Sleep.TIMED);
    try {
      if (hasWork()) return false;
      return Atomics.wait(this.words, Bell.SEQ, seq, Math.max(0, timeoutMs)) !== 'timed-out';
    } finally {
      Atomics.store(this.words, Bell.SLEEPING, Sleep.AWAKE);
    }
  }
}
