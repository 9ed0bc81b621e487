/**
 * One stream's producer side: seq assignment, encoding straight into the ring, ring-full drops
 * explained in-band by a GAP frame, and the oversize fallback. Used by collectors (one per method)
 * and by the main-thread push path.
 *
 *   reading ─► FrameEncoder.readingFrame (sealed) ─► ring.reserve/commit(prefix + frame)
 *                                                 │ full: drop, count, remember [from,to]
 *                                                 └ next success: GAP(from,to,'ring_full') first
 */
import { nowMicros } from '@edgecap/core';
import type { FrameEncoder } from '@edgecap/format';
import type { RingProducer } from '@edgecap/ring';
import { REC_PREFIX_BYTES, RecFlag, RecOff, RecType, ResSlot, Stat } from './layout.js';

export type OversizeSender = (token: number, frame: Uint8Array) => void;

export interface EmitterShared {
  ring: RingProducer;
  enc: FrameEncoder;
  res?: Int32Array;
  sendOversize: OversizeSender;
  nextToken: { v: number };
}

export class StreamEmitter {
  readonly stats: Float64Array;
  /** Size of the last reading's frame (the collector re-reads its clock after a big one). */
  lastFrameBytes = 0;
  private pendingFrom = -1;
  private pendingTo = -1;

  constructor(
    private readonly sh: EmitterShared,
    readonly index: number,
    statsSab: SharedArrayBuffer,
    startSeq: number,
    readonly defaultMime: string | undefined,
  ) {
    this.stats = new Float64Array(statsSab);
    this.stats[Stat.NEXT_SEQ] = startSeq;
  }

  get nextSeq(): number {
    return this.stats[Stat.NEXT_SEQ]!;
  }

  /** Encode and enqueue one reading; false = dropped (counted, explained by a later GAP). */
  emit(value: unknown, tReqUs: number, tRecvUs: number, mimeOverride?: string): boolean {
    const st = this.stats;
    const seq = st[Stat.NEXT_SEQ]!;
    st[Stat.NEXT_SEQ] = seq + 1;
    let data = value;
    let mime: string | undefined;
    let flags: number = RecFlag.READING;
    if (data instanceof Uint8Array) {
      mime = mimeOverride ?? this.defaultMime ?? 'application/octet-stream';
      flags |= RecFlag.BINARY;
    } else if (data !== null && typeof data === 'object' && (data as { data?: unknown }).data instanceof Uint8Array) {
      const o = data as { data: Uint8Array; mime_type?: unknown };
      mime = typeof o.mime_type === 'string' ? o.mime_type : (mimeOverride ?? this.defaultMime ?? 'application/octet-stream');
      data = o.data;
      flags |= RecFlag.BINARY;
    } else if (this.sh.res && data !== null && typeof data === 'object') {
      const ss = (data as { should_sync?: unknown }).should_sync;
      if (typeof ss === 'boolean') Atomics.store(this.sh.res, ResSlot.SHOULD_SYNC, ss ? 1 : 0);
    }
    if (this.pendingFrom >= 0) {
      const gap = this.sh.enc.gap(this.pendingFrom, this.pendingTo, 'ring_full', tRecvUs);
      if (!this.pushFrame(gap, 0, this.pendingFrom, this.pendingTo - this.pendingFrom + 1)) return this.drop(seq);
      this.pendingFrom = -1;
    }
    // Buffer.from(Uint8Array) data: msgpack encodes Buffers as bin as well.
    const frame = this.sh.enc.readingFrame(seq, tReqUs, tRecvUs, data, mime);
    this.lastFrameBytes = frame.length;
    const ring = this.sh.ring;
    let ok: boolean;
    if (REC_PREFIX_BYTES + frame.length > ring.maxRecord) {
      ok = this.pushOversize(frame.slice(), flags, seq);
    } else {
      // no closure, no DataView per reading: reserve, write prefix + sealed frame in place, publish
      const at = ring.reserve(REC_PREFIX_BYTES + frame.length);
      ok = at >= 0;
      if (ok) {
        writePrefix(ring.data, ring.dv, at, RecType.FRAME, flags, this.index, 1, seq);
        ring.data.set(frame, at + REC_PREFIX_BYTES);
        ring.commit();
      }
    }
    if (!ok) return this.drop(seq);
    st[Stat.CAPTURED] = st[Stat.CAPTURED]! + 1;
    return true;
  }

  /**
   * Before the ring closes: write the GAP frame of readings dropped since the last successful
   * push, so a drop at the very end is explained too. The writer is still draining, so space
   * comes back quickly; bounded by `timeoutMs` (then the drops stay counted, unexplained).
   */
  async flushPendingGap(timeoutMs = 2000): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    while (this.pendingFrom >= 0) {
      const gap = this.sh.enc.gap(this.pendingFrom, this.pendingTo, 'ring_full', nowMicros());
      if (this.pushFrame(gap, 0, this.pendingFrom, this.pendingTo - this.pendingFrom + 1)) this.pendingFrom = -1;
      else if (performance.now() > end) return false;
      else await new Promise((r) => setTimeout(r, 2));
    }
    return true;
  }

  countMissed(n: number): void {
    this.stats[Stat.MISSED] = this.stats[Stat.MISSED]! + n;
  }
  countCaptureError(): void {
    this.stats[Stat.CAPTURE_ERRORS] = this.stats[Stat.CAPTURE_ERRORS]! + 1;
  }

  private drop(seq: number): false {
    if (this.pendingFrom < 0) this.pendingFrom = seq;
    this.pendingTo = seq;
    this.stats[Stat.DROPPED] = this.stats[Stat.DROPPED]! + 1;
    return false;
  }

  private pushFrame(frame: Uint8Array, flags: number, firstSeq: number, count: number): boolean {
    const idx = this.index;
    if (REC_PREFIX_BYTES + frame.length > this.sh.ring.maxRecord) return this.pushOversize(frame, flags, firstSeq);
    return this.sh.ring.tryPush(REC_PREFIX_BYTES + frame.length, (buf, off, dv) => {
      writePrefix(buf, dv, off, RecType.FRAME, flags, idx, count, firstSeq);
      buf.set(frame, off + REC_PREFIX_BYTES);
    });
  }

  /** Marker in the ring keeps the order; the bytes follow by message with the same token. */
  private pushOversize(frame: Uint8Array, flags: number, seq: number): boolean {
    const token = ++this.sh.nextToken.v >>> 0;
    const idx = this.index;
    const ok = this.sh.ring.tryPush(REC_PREFIX_BYTES + 4, (buf, off, dv) => {
      writePrefix(buf, dv, off, RecType.OVERSIZE, flags, idx, 1, seq);
      dv.setUint32(off + RecOff.body, token, true);
    });
    if (ok) this.sh.sendOversize(token, frame);
    return ok;
  }
}

/** The 16-byte ring record prefix (layout.ts), written in place. */
function writePrefix(buf: Uint8Array, dv: DataView, off: number, type: number, flags: number, stream: number, count: number, firstSeq: number): void {
  buf[off + RecOff.type] = type;
  buf[off + RecOff.flags] = flags;
  dv.setUint16(off + RecOff.stream, stream, true);
  dv.setUint32(off + RecOff.count, count, true);
  dv.setFloat64(off + RecOff.firstSeq, firstSeq, true);
}
