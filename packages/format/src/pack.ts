/**
 * The READING tuple `[seq, time_requested_us, time_received_us, data, mime_type?]` in msgpack,
 * byte for byte what `@msgpack/msgpack`'s Encoder ({ignoreUndefined: true}) writes, without its
 * per-value dispatch: the tuple head by hand, then numbers, strings, booleans, nil, plain objects,
 * plain arrays and Uint8Arrays of `data` written straight into one reused buffer (the collector
 * spent most of its time in the generic encoder). Anything else in `data` (Date and other
 * extensions, Map, class instances, nesting past msgpack's depth limit, a polluted
 * Object.prototype) makes the whole tuple go through the msgpack Encoder, so its rules and
 * errors stay the only ones.
 */
import { Encoder } from '@msgpack/msgpack';

/** msgpack's default maxDepth: deeper values fall back, so msgpack throws its own error. */
const MAX_DEPTH = 100;
/**
 * Up to msgpack's TextEncoder threshold it counts and writes UTF-8 in JS (a lone surrogate as its
 * own 3 bytes); above it TextEncoder writes U+FFFD. Short non-ASCII strings are copied from
 * msgpack's own encoding of them; long ones follow msgpack's TextEncoder path with a native count.
 */
const LONG_STRING = 50;
const textEncoder = new TextEncoder();

export class ReadingPacker {
  /** Output buffer; the tuple is written from the `start` given to tuple(). */
  bytes = new Uint8Array(4096);
  private view = new DataView(this.bytes.buffer);
  private pos = 0;
  private readonly msgpack = new Encoder({ ignoreUndefined: true, initialBufferSize: 4096 });
  private readonly tuple4: unknown[] = [0, 0, 0, null];
  private readonly tuple5: unknown[] = [0, 0, 0, null, ''];

  /** Write the tuple at bytes[start...]; returns the end offset (`bytes` may have been replaced). */
  tuple(start: number, seq: number, tReqUs: number, tRecvUs: number, data: unknown, mime: string | undefined): number {
    this.pos = start;
    this.ensure(1);
    this.bytes[this.pos++] = mime === undefined ? 0x94 : 0x95;
    this.number(seq);
    this.number(tReqUs);
    this.number(tRecvUs);
    // depth as msgpack counts it: the tuple is 1, data 2
    if (this.value(data, 2)) {
      if (mime !== undefined) this.string(mime);
      return this.pos;
    }
    this.pos = start;
    const t = mime === undefined ? this.tuple4 : this.tuple5;
    t[0] = seq;
    t[1] = tReqUs;
    t[2] = tRecvUs;
    t[3] = data;
    if (mime !== undefined) t[4] = mime;
    try {
      this.copy(this.msgpack.encodeSharedRef(t));
    } finally {
      t[3] = null; // do not keep the user's data alive
    }
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.bytes.length) return;
    const b = new Uint8Array(Math.max(this.bytes.length * 2, this.pos + n));
    b.set(this.bytes.subarray(0, this.pos));
    this.bytes = b;
    this.view = new DataView(b.buffer);
  }

  private copy(b: Uint8Array): void {
    this.ensure(b.length);
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }

  /** False: not a value this path writes (the caller falls back to msgpack for the tuple). */
  private value(v: unknown, depth: number): boolean {
    if (depth > MAX_DEPTH) return false; // msgpack checks every value, leaves too
    switch (typeof v) {
      case 'number':
        this.number(v);
        return true;
      case 'string':
        this.string(v);
        return true;
      case 'boolean':
        this.ensure(1);
        this.bytes[this.pos++] = v ? 0xc3 : 0xc2;
        return true;
      case 'undefined':
        this.ensure(1);
        this.bytes[this.pos++] = 0xc0;
        return true;
      case 'object': {
        if (v === null) {
          this.ensure(1);
          this.bytes[this.pos++] = 0xc0;
          return true;
        }
        // msgpack asks its extension codec first; only the timestamp extension (Date) is
        // registered, and it never claims a plain object, a plain array or a Uint8Array
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto === null || (proto === Object.prototype && !hasEnumerable(Object.prototype))) {
          return this.map(v as Record<string, unknown>, depth);
        }
        if (proto === Array.prototype) return this.array(v as unknown[], depth);
        if (v instanceof Uint8Array) {
          this.header(v.length, 0, 0, 0xc4, 0xc5, 0xc6);
          this.copy(v);
          return true;
        }
        return false;
      }
      default:
        return false;
    }
  }

  private number(v: number): void {
    this.ensure(9);
    const b = this.bytes;
    let p = this.pos;
    if (Number.isSafeInteger(v)) {
      if (v >= 0) {
        if (v < 0x80) b[p++] = v;
        else if (v < 0x100) {
          b[p++] = 0xcc;
          b[p++] = v;
        } else if (v < 0x10000) {
          b[p++] = 0xcd;
          b[p++] = v >>> 8;
          b[p++] = v;
        } else if (v < 0x100000000) {
          b[p++] = 0xce;
          this.view.setUint32(p, v);
          p += 4;
        } else {
          b[p++] = 0xcf;
          this.view.setUint32(p, v / 0x100000000);
          this.view.setUint32(p + 4, v);
          p += 8;
        }
      } else if (v >= -0x20) b[p++] = 0xe0 | (v + 0x20);
      else if (v >= -0x80) {
        b[p++] = 0xd0;
        b[p++] = v;
      } else if (v >= -0x8000) {
        b[p++] = 0xd1;
        this.view.setInt16(p, v);
        p += 2;
      } else if (v >= -0x80000000) {
        b[p++] = 0xd2;
        this.view.setInt32(p, v);
        p += 4;
      } else {
        b[p++] = 0xd3;
        this.view.setUint32(p, Math.floor(v / 0x100000000));
        this.view.setUint32(p + 4, v);
        p += 8;
      }
    } else {
      b[p++] = 0xcb;
      this.view.setFloat64(p, v);
      p += 8;
    }
    this.pos = p;
  }

  private string(s: string): void {
    const n = s.length;
    if (n > LONG_STRING) {
      const len = Buffer.byteLength(s, 'utf8');
      this.header(len, 0xa0, 32, 0xd9, 0xda, 0xdb);
      this.ensure(len);
      textEncoder.encodeInto(s, this.bytes.subarray(this.pos));
      this.pos += len;
      return;
    }
    this.ensure(2 + n);
    const b = this.bytes;
    let p = this.pos;
    if (n < 32) b[p++] = 0xa0 | n;
    else {
      b[p++] = 0xd9;
      b[p++] = n;
    }
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.copy(this.msgpack.encodeSharedRef(s));
        return;
      }
      b[p++] = c;
    }
    this.pos = p;
  }

  /**
   * A length header: the fix form below `fixLimit`, the 8-bit form when the type has one
   * (`h8` 0: none), then 16 and 32 bits.
   */
  private header(len: number, fix: number, fixLimit: number, h8: number, h16: number, h32: number): void {
    this.ensure(5);
    const b = this.bytes;
    if (len < fixLimit) b[this.pos++] = fix | len;
    else if (h8 !== 0 && len < 0x100) {
      b[this.pos++] = h8;
      b[this.pos++] = len;
    } else if (len < 0x10000) {
      b[this.pos++] = h16;
      this.view.setUint16(this.pos, len);
      this.pos += 2;
    } else {
      b[this.pos++] = h32;
      this.view.setUint32(this.pos, len);
      this.pos += 4;
    }
  }

  private array(a: unknown[], depth: number): boolean {
    const n = a.length;
    this.header(n, 0x90, 16, 0, 0xdc, 0xdd);
    for (let i = 0; i < n; i++) if (!this.value(a[i], depth + 1)) return false;
    return true;
  }

  /** for-in, not Object.keys: V8 reads each value through its enum cache (no megamorphic load). */
  private map(o: Record<string, unknown>, depth: number): boolean {
    this.ensure(1);
    const at = this.pos++;
    let count = 0;
    for (const k in o) {
      const v = o[k];
      if (v === undefined) continue; // ignoreUndefined
      count++;
      this.string(k);
      if (!this.value(v, depth + 1)) return false;
    }
    if (count < 16) {
      this.bytes[at] = 0x80 | count;
      return true;
    }
    // map 16/32: the header is wider than the fixmap byte reserved for it
    const wide = count < 0x10000 ? 3 : 5;
    this.ensure(wide - 1);
    this.bytes.copyWithin(at + wide, at + 1, this.pos);
    this.pos += wide - 1;
    const end = this.pos;
    this.pos = at;
    this.header(count, 0x80, 16, 0, 0xde, 0xdf);
    this.pos = end;
    return true;
  }
}

/** for-in also walks inherited enumerable keys, which Object.keys (msgpack) skips. */
function hasEnumerable(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
