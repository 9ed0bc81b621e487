import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Encoder } from '@msgpack/msgpack';
import { FrameEncoder, FrameType, scanFrames, FRAME_HEADER_BYTES } from '@edgecap/format';

// The oracle: what readings were encoded with before the hand-written READING tuple.
const msgpack = new Encoder({ ignoreUndefined: true });
const oracle = (seq: number, tReq: number, tRecv: number, data: unknown, mime?: string): Uint8Array =>
  msgpack.encode(mime === undefined ? [seq, tReq, tRecv, data] : [seq, tReq, tRecv, data, mime]);

// Strings that hit every branch: ASCII, 2/3/4-byte UTF-8, lone surrogates, both sides of the
// 31/32 (fixstr) and 50/51 (msgpack's TextEncoder threshold) boundaries.
const str = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '\ud800', '\udc00'), maxLength: 60 }),
  fc.constantFrom('x'.repeat(31), 'x'.repeat(32), 'x'.repeat(50), 'x'.repeat(51), 'x'.repeat(300), 'é'.repeat(20)),
);
const num = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.maxSafeInteger(),
  fc.constantFrom(0, -0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, NaN, Infinity),
);
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(num, str, fc.boolean(), fc.constant(null), fc.constant(undefined), fc.uint8Array({ maxLength: 300 }), fc.date({ noInvalidDate: true })),
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('leaf'), tie('arr'), tie('obj')),
  arr: fc.array(tie('node'), { maxLength: 20 }),
  obj: fc.dictionary(str, tie('node'), { maxKeys: 20 }),
}));

describe('READING tuple encoding', () => {
  it('is byte for byte what msgpack writes (fuzz)', () => {
    const enc = new FrameEncoder();
    fc.assert(
      fc.property(fc.nat(), num, num, value.node, fc.option(str, { nil: undefined }), (seq, a, b, data, mime) => {
        expect(Buffer.from(enc.readingPayload(seq, a, b, data, mime))).toEqual(Buffer.from(oracle(seq, a, b, data, mime)));
      }),
      { numRuns: 1000 },
    );
  });

  it('falls back to msgpack for what it does not write itself, with the same bytes', () => {
    const enc = new FrameEncoder();
    class Point {
      constructor(
        public x = 1,
        public y = 2,
      ) {}
    }
    const big = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i % 7 === 0 ? undefined : i]));
    const cases: unknown[] = [
      new Date(1_700_000_000_123),
      { when: new Date(0), p: new Point() },
      new Map([['a', 1]]),
      Object.create(null) as object,
      big,
      Array.from({ length: 70_000 }, (_, i) => i),
      Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i])),
      new Float32Array([1.5, 2.5]),
      Buffer.from('buffer bytes'),
      [undefined, { u: undefined, v: 1 }],
    ];
    for (const d of cases) expect(Buffer.from(enc.readingPayload(1, 2, 3, d, 'm/x'))).toEqual(Buffer.from(oracle(1, 2, 3, d, 'm/x')));
  });

  it('keeps msgpack`s own-keys rule when Object.prototype is polluted', () => {
    const enc = new FrameEncoder();
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = 1;
    try {
      expect(Buffer.from(enc.readingPayload(1, 2, 3, { a: 1 }))).toEqual(Buffer.from(oracle(1, 2, 3, { a: 1 })));
    } finally {
      delete proto.polluted;
    }
  });

  it('throws msgpack`s own errors (too deep, unencodable) and stays usable after', () => {
    const enc = new FrameEncoder();
    let deep: unknown = 1;
    for (let i = 0; i < 120; i++) deep = { d: deep };
    expect(() => enc.readingPayload(1, 2, 3, deep)).toThrow(/Too deep/);
    expect(() => enc.readingPayload(1, 2, 3, { f: () => 1 })).toThrow();
    expect(() => enc.readingPayload(1, 2, 3, 10n)).toThrow();
    expect(Buffer.from(enc.readingPayload(4, 5, 6, { ok: true }))).toEqual(Buffer.from(oracle(4, 5, 6, { ok: true })));
  });

  it('a sealed frame reads back (readingFrame), larger than the initial buffer too', () => {
    const enc = new FrameEncoder();
    for (const data of [{ a: 1, s: 'x'.repeat(10_000) }, new Uint8Array(100_000).fill(3)]) {
      const f = enc.readingFrame(9, 10, 11, data, data instanceof Uint8Array ? 'image/png' : undefined);
      expect(f.length - FRAME_HEADER_BYTES).toBe(oracle(9, 10, 11, data, data instanceof Uint8Array ? 'image/png' : undefined).length);
      const evs = [...scanFrames(f, 0)];
      expect(evs.map((e) => (e.kind === 'frame' ? e.type : e.kind))).toEqual([FrameType.READING]);
    }
  });
});
