/**
 * Frame parsing, one piece of code for both ways of reading a capture file:
 *
 *   whole buffer   scanFrames(bytes)      ─► FrameScanner.window(bytes, 0, eof=true) ─► next() … next()
 *   chunk by chunk FrameStream.push(chunk) ─► carry (only the undecided frame) + chunk ─► FrameScanner
 *                  FrameStream.finish()    ─► FrameScanner.window(carry, base, eof=true)
 *
 * The scanner is a resumable state machine over a *window* of the file (bytes [base, base+n)).
 * It never throws on bad bytes: a frame whose CRC fails is reported as `corrupt` and the scan
 * resynchronises on the next frame magic whose CRC checks out; a frame running past the end of
 * the file is a `truncated` tail (the normal state after a crash). Until the end of the file is
 * known (`eof`), a frame that runs past the window is undecided: the scanner stops and says how
 * many more bytes decide it (`need`) and which bytes it still needs (`retainFrom`), so a chunked
 * reader keeps only those bytes — at most one frame (the largest is MAX_FRAME_PAYLOAD) — and
 * reports exactly what the whole-buffer reader reports for the same bytes, however they are split.
 */
import { crc32c } from './crc32c.js';
import { readU32 } from './frame.js';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameOff, MAX_FRAME_PAYLOAD, isFrameType, type FrameTypeValue } from './layout.js';

export type ScanEvent =
  | { kind: 'frame'; type: FrameTypeValue; offset: number; end: number; payload: Uint8Array }
  | { kind: 'corrupt'; offset: number; end: number; reason: string }
  /** `end` is the end of the file. */
  | { kind: 'truncated'; offset: number; end: number; reason: string };

type Probe = { ok: true; type: FrameTypeValue; len: number } | { ok: false; short: boolean; need: number; reason: string };

const MAGIC_LO = FRAME_MAGIC & 0xff;
const MAGIC_HI = FRAME_MAGIC >>> 8;
const EMPTY = new Uint8Array(0);

/** CRC of a frame's first bytes, kept while the rest has not arrived (file offsets). */
interface CrcMemo {
  at: number;
  to: number;
  crc: number;
}

/**
 * Check the frame at b[o...]: ok, corrupt, or short (runs past the end of b; `need` more bytes
 * decide it). With `memo` (b starts at file offset `base`), a CRC already summed over the frame's
 * first bytes is resumed, and — unless b ends the file (`eof`) — a short frame's CRC so far is
 * remembered: each byte of a frame split across chunks is summed once.
 */
function probe(b: Uint8Array, o: number, base = 0, memo?: CrcMemo, eof = true): Probe {
  if (o + FRAME_HEADER_BYTES > b.length) return { ok: false, short: true, need: o + FRAME_HEADER_BYTES - b.length, reason: 'frame header cut off' };
  if ((b[o]! | (b[o + 1]! << 8)) !== FRAME_MAGIC) return { ok: false, short: false, need: 0, reason: 'bad frame magic' };
  const type = b[o + FrameOff.type]!;
  const len = readU32(b, o + FrameOff.length);
  if (len > MAX_FRAME_PAYLOAD) return { ok: false, short: false, need: 0, reason: `frame length ${len} exceeds limit` };
  const end = o + FRAME_HEADER_BYTES + len;
  let from = o + FRAME_HEADER_BYTES;
  let c: number;
  if (memo && memo.at === base + o) {
    from = memo.to - base;
    c = memo.crc;
  } else c = crc32c(b, o + FrameOff.type, o + FrameOff.crc);
  if (end > b.length) {
    if (memo && !eof) {
      memo.at = base + o;
      memo.to = base + b.length;
      memo.crc = crc32c(b, from, b.length, c);
    }
    return { ok: false, short: true, need: end - b.length, reason: `frame of ${len} bytes runs past end of file` };
  }
  c = crc32c(b, from, end, c);
  if (c !== readU32(b, o + FrameOff.crc)) return { ok: false, short: false, need: 0, reason: 'checksum mismatch' };
  if (!isFrameType(type)) return { ok: false, short: false, need: 0, reason: `unknown frame type ${type}` };
  return { ok: true, type, len };
}

/**
 * Resumable frame scanner. Give it a window of the file, pull events with `next()` until it
 * returns undefined, then give it the next window: one that starts at or before `retainFrom`
 * and continues the bytes seen so far. A `frame` event's payload is a view into the window.
 */
export class FrameScanner {
  private b: Uint8Array = EMPTY;
  private base = 0;
  private eof = false;
  /** Scan mode: file offset of the next frame. Resync mode: start of the corrupt region. */
  private o: number;
  /** Resync mode: file offset where the search for the next good frame continues; -1 in scan mode. */
  private from = -1;
  /** Resync mode: why the frame at `o` failed (short ⇔ it ran past the end). */
  private fail: { short: boolean; reason: string } = { short: false, reason: '' };
  private want = 1;
  private over = false;
  /** Partial CRC of the undecided frame, until the end of the file is known. */
  private readonly memo: CrcMemo = { at: -1, to: 0, crc: 0 };

  constructor(start: number) {
    this.o = start;
  }

  /** Bytes [base, base + bytes.length) of the file; `eof` ⇔ they end the file. */
  window(bytes: Uint8Array, base: number, eof: boolean): void {
    if (base > this.retainFrom) throw new RangeError(`FrameScanner: window starts at ${base}, past the bytes still needed (${this.retainFrom})`);
    this.b = bytes;
    this.base = base;
    this.eof = eof;
  }

  /** Lowest file offset the scanner may still read: a caller may drop every byte before it. */
  get retainFrom(): number {
    if (this.over) return this.base + this.b.length;
    return this.from >= 0 ? this.from : this.o;
  }

  /** After next() returned undefined: how many bytes past the window's end make progress possible (0 once done). */
  get need(): number {
    return this.over ? 0 : this.want;
  }

  /** True once the end of the file was scanned (or `stop()` was called). */
  get done(): boolean {
    return this.over;
  }

  /** Stop scanning: every later next() returns undefined. */
  stop(): void {
    this.over = true;
    this.b = EMPTY;
  }

  next(): ScanEvent | undefined {
    if (this.over) return undefined;
    const end = this.base + this.b.length;
    if (this.from < 0) {
      const o = this.o;
      if (o >= end) {
        if (this.eof) this.over = true;
        this.want = 1;
        return undefined;
      }
      const p = this.probeAt(o - this.base);
      if (p.ok) {
        const s = o - this.base + FRAME_HEADER_BYTES;
        const fe = o + FRAME_HEADER_BYTES + p.len;
        this.o = fe;
        return { kind: 'frame', type: p.type, offset: o, end: fe, payload: this.b.subarray(s, s + p.len) };
      }
      if (p.short && !this.eof) {
        this.want = p.need;
        return undefined;
      }
      this.fail = { short: p.short, reason: p.reason };
      this.from = o + 1;
    }
    const next = this.resync();
    if (next >= 0) {
      const ev: ScanEvent = { kind: 'corrupt', offset: this.o, end: next, reason: this.fail.reason };
      this.o = next;
      this.from = -1;
      return ev;
    }
    if (!this.eof) return undefined;
    // Nothing valid follows. A frame that runs past EOF is a torn tail; garbage is corruption.
    this.over = true;
    const o = this.o;
    this.o = end;
    this.from = -1;
    return this.fail.short ? { kind: 'truncated', offset: o, end, reason: this.fail.reason } : { kind: 'corrupt', offset: o, end, reason: this.fail.reason };
  }

  private probeAt(i: number): Probe {
    return probe(this.b, i, this.base, this.memo, this.eof);
  }

  /** File offset ≥ `from` where a frame with a valid CRC starts, or -1 (none in the window; `from`/`want` say where to resume). */
  private resync(): number {
    const b = this.b;
    let i = this.from - this.base;
    for (;;) {
      i = b.indexOf(MAGIC_LO, i);
      if (i < 0) {
        this.from = this.base + b.length;
        this.want = 1;
        return -1;
      }
      if (i + 1 < b.length && b[i + 1] !== MAGIC_HI) {
        i++;
        continue;
      }
      const p = this.probeAt(i);
      if (p.ok) return this.base + i;
      if (p.short && !this.eof) {
        this.from = this.base + i;
        this.want = p.need;
        return -1;
      }
      i++;
    }
  }
}

/**
 * Bytes kept between chunks: file bytes [base, base + length). Bytes once handed out in a view
 * are never overwritten (appending past the capacity moves the live bytes to a new buffer), so
 * views in earlier events stay valid.
 */
class Carry {
  private buf: Uint8Array = EMPTY;
  private start = 0;
  length = 0;
  base = 0;

  get capacity(): number {
    return this.buf.byteLength;
  }

  view(): Uint8Array {
    return this.buf.subarray(this.start, this.start + this.length);
  }

  /**
   * Append src; `hint` = bytes the undecided frame needs past what is held (src included): room for all of
   * them is made at once, so a frame arriving over many chunks is allocated and copied once (a
   * large allocation is zero pages until written, so a frame header claiming more bytes than are
   * ever sent does not cost that memory).
   */
  append(src: Uint8Array, hint: number): void {
    const n = src.length;
    if (this.start + this.length + n > this.buf.length) {
      const cap = this.length + Math.max(n, hint);
      const next = new Uint8Array(cap);
      next.set(this.view());
      this.buf = next;
      this.start = 0;
    }
    this.buf.set(src, this.start + this.length);
    this.length += n;
  }

  /** Drop the bytes before file offset `at` (clamped to what is held). */
  dropBefore(at: number): void {
    const k = Math.min(Math.max(at - this.base, 0), this.length);
    this.start += k;
    this.length -= k;
    this.base += k;
    if (this.length === 0) this.clear(this.base);
  }

  /** Hold a copy of `tail` (file offset `base`) and nothing else; `need` = bytes the undecided frame needs past the tail. */
  reset(tail: Uint8Array, base: number, need: number): void {
    this.clear(base);
    if (tail.length > 0) this.append(tail, tail.length + need);
  }

  clear(base: number): void {
    this.buf = EMPTY;
    this.start = 0;
    this.length = 0;
    this.base = base;
  }
}

/**
 * Chunked frame scanning: push the file's bytes in pieces of any size, then finish(). Events are
 * the ones scanFrames gives for the whole file, in order, delivered to `on` while the call runs
 * (payload views point into the pushed chunk or the carry). A chunk is scanned in place; only
 * the bytes of a frame still undecided at its end are copied, and the next chunk tops up that
 * carry with just the bytes the frame needs before being scanned in place again. Work per push
 * is proportional to the chunk (plus the CRC of a frame completed by it).
 */
export class FrameStream {
  private readonly sc: FrameScanner;
  private readonly carry = new Carry();
  private total = 0;

  constructor(start: number) {
    this.sc = new FrameScanner(start);
  }

  /** Bytes held between pushes (the carry buffer's allocation). */
  get retainedBytes(): number {
    return this.carry.capacity;
  }

  get done(): boolean {
    return this.sc.done;
  }

  push(chunk: Uint8Array, on: (ev: ScanEvent) => void): void {
    let pos = 0;
    while (this.carry.length > 0 && pos < chunk.length && !this.sc.done) {
      const need = this.sc.need;
      const take = Math.min(need, chunk.length - pos);
      this.carry.append(chunk.subarray(pos, pos + take), need);
      pos += take;
      this.total += take;
      this.sc.window(this.carry.view(), this.carry.base, false);
      this.drain(on);
      this.carry.dropBefore(this.sc.retainFrom);
    }
    if (pos >= chunk.length || this.sc.done) {
      if (this.sc.done) this.carry.clear(this.total);
      return;
    }
    const rest = chunk.subarray(pos);
    const base = this.total;
    this.total += rest.length;
    this.sc.window(rest, base, false);
    this.drain(on);
    if (this.sc.done) this.carry.clear(this.total);
    else {
      const k = Math.min(Math.max(this.sc.retainFrom - base, 0), rest.length);
      this.carry.reset(rest.subarray(k), base + k, this.sc.need);
    }
  }

  finish(on: (ev: ScanEvent) => void): void {
    if (!this.sc.done) {
      this.sc.window(this.carry.view(), this.carry.base, true);
      this.drain(on);
    }
    this.carry.clear(this.total);
  }

  /** Stop: later pushes are ignored, the carry is released. */
  stop(): void {
    this.sc.stop();
    this.carry.clear(this.total);
  }

  private drain(on: (ev: ScanEvent) => void): void {
    for (let ev = this.sc.next(); ev; ev = this.sc.next()) on(ev);
  }
}
