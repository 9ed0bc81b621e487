import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FILE_MAGIC,
  FRAME_MAGIC,
  FrameEncoder,
  FrameStream,
  RecordStream,
  encodeFileStart,
  readRecords,
  scanFrames,
  type RecordEvent,
  type ScanEvent,
} from '@edgecap/format';

/** A capture file: header, then readings (tabular or binary, small to a few KiB) and GAP frames. */
type Item = { seq: number; size: number } | { gap: [number, number] };

function buildFile(items: Item[], binary: boolean): Uint8Array {
  const { bytes: start } = encodeFileStart({ kind: 'sensor', name: 'temp', method: 'Readings', type: binary ? 'binary' : 'tabular', tags: [], start_us: 1 });
  const enc = new FrameEncoder();
  const parts: Uint8Array[] = [start];
  for (const it of items) {
    if ('gap' in it) parts.push(enc.gap(it.gap[0], it.gap[1], 'ring_full', 7));
    else {
      const data = binary ? new Uint8Array(it.size).fill(it.seq & 0xff) : { v: it.seq * 1.5, s: 'x'.repeat(it.size) };
      parts.push(enc.readingFrame(it.seq, 10 + it.seq, 20 + it.seq, data, binary ? 'image/png' : undefined).slice());
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

const seqArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -5, max: 2 ** 40 }), fc.constantFrom(2 ** 53 - 1, 0.5, -1.25));
const itemArb: fc.Arbitrary<Item> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ seq: seqArb, size: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 5000 })) }) },
  { weight: 1, arbitrary: fc.record({ gap: fc.tuple(fc.nat(1000), fc.nat(1000)) }) },
);

/** Damage to a good file: flipped bytes, a cut tail, inserted garbage (with frame-magic look-alikes), a lost prefix. */
type Damage = { flip: [number, number] } | { cut: number } | { insert: [number, number[]] } | { drop: [number, number] };
const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ flip: fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })) }),
  fc.record({ cut: fc.nat() }),
  fc.record({ insert: fc.tuple(fc.nat(), fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(FRAME_MAGIC & 0xff, FRAME_MAGIC >>> 8)), { maxLength: 40 })) }),
  fc.record({ drop: fc.tuple(fc.nat(), fc.integer({ min: 1, max: 30 })) }),
);

function damage(b: Uint8Array, ds: Damage[]): Uint8Array {
  let out = Buffer.from(b);
  for (const d of ds) {
    if (out.length === 0) break;
    if ('flip' in d) {
      const i = d.flip[0] % out.length;
      out[i] = out[i]! ^ d.flip[1];
    } else if ('cut' in d) out = out.subarray(0, d.cut % (out.length + 1));
    else if ('insert' in d) {
      const i = d.insert[0] % (out.length + 1);
      out = Buffer.concat([out.subarray(0, i), Buffer.from(d.insert[1]), out.subarray(i)]);
    } else {
      const i = d.drop[0] % out.length;
      out = Buffer.concat([out.subarray(0, i), out.subarray(i + d.drop[1])]);
    }
  }
  return new Uint8Array(out);
}

/** Split b at the given cut points (fractions of its length), or into 1-byte chunks. */
function split(b: Uint8Array, cuts: number[] | 'bytes'): Uint8Array[] {
  if (cuts === 'bytes') return Array.from(b, (_, i) => b.subarray(i, i + 1));
  const at = [...new Set(cuts.map((c) => Math.floor(c * b.length)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, b.length]) {
    out.push(b.subarray(prev, c)); // empty chunks included on purpose
    prev = c;
  }
  return out;
}
const cutsArb = fc.oneof({ weight: 4, arbitrary: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 }) }, { weight: 1, arbitrary: fc.constant('bytes' as const) });

function streamRecords(chunks: Uint8Array[], seqOnly: boolean): { events: RecordEvent[]; maxRetained: number } {
  const rs = new RecordStream('f.capture', { seqOnly });
  const events: RecordEvent[] = [];
  let maxRetained = 0;
  for (const c of chunks) {
    rs.push(c, (e) => events.push(e));
    maxRetained = Math.max(maxRetained, rs.retainedBytes);
  }
  rs.finish((e) => events.push(e));
  expect(rs.retainedBytes).toBe(0);
  return { events, maxRetained };
}

/** bad_magic's length is the whole file for readRecords, the bytes seen when it was proved for the stream. */
const sameButMagicLength = (evs: RecordEvent[]): RecordEvent[] =>
  evs.map((e) => (e.kind === 'problem' && e.problem.kind === 'bad_magic' ? { ...e, problem: { ...e.problem, length: -1 } } : e));

/** Largest frame the whole-buffer scan sees, and the largest region a frame header claims (corrupt lengths included). */
function largestFrame(b: Uint8Array): number {
  let m = 0;
  for (const ev of scanFrames(b, FILE_MAGIC.length)) if (ev.kind === 'frame') m = Math.max(m, ev.end - ev.offset);
  return m;
}

describe('RecordStream (chunked) = readRecords (whole buffer)', () => {
  it('gives the same events for valid files, however they are split', () => {
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: 60 }), fc.boolean(), fc.boolean(), cutsArb, (items, binary, seqOnly, cuts) => {
        const file = buildFile(items, binary);
        const whole = [...readRecords(file, 'f.capture', { seqOnly })];
        const { events, maxRetained } = streamRecords(split(file, cuts), seqOnly);
        expect(events).toEqual(whole);
        expect(whole.filter((e) => e.kind === 'problem')).toEqual([]);
        // only a frame straddling chunks is held, never more than the largest frame
        expect(maxRetained).toBeLessThanOrEqual(Math.max(largestFrame(file), 0));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same events (problems, offsets, reasons) for damaged files, however they are split', () => {
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: 40 }), fc.boolean(), fc.array(damageArb, { minLength: 1, maxLength: 4 }), fc.boolean(), cutsArb, (items, binary, ds, seqOnly, cuts) => {
        const file = damage(buildFile(items, binary), ds);
        const whole = [...readRecords(file, 'f.capture', { seqOnly })];
        const { events } = streamRecords(split(file, cuts), seqOnly);
        expect(sameButMagicLength(events)).toEqual(sameButMagicLength(whole));
      }),
      { numRuns: 1000 },
    );
  });

  it('FrameStream gives scanFrames\' events (frames, corrupt regions, torn tail) for arbitrary bytes', () => {
    const magicish = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(FRAME_MAGIC & 0xff, FRAME_MAGIC >>> 8, 0, 1, 2, 3));
    fc.assert(
      fc.property(fc.array(itemArb, { maxLength: 20 }), fc.array(magicish, { maxLength: 64 }), fc.array(damageArb, { maxLength: 3 }), cutsArb, (items, junk, ds, cuts) => {
        const file = damage(new Uint8Array(Buffer.concat([buildFile(items, false), Buffer.from(junk)])), ds);
        const whole = [...scanFrames(file, FILE_MAGIC.length)];
        const got: ScanEvent[] = [];
        const fs = new FrameStream(FILE_MAGIC.length);
        for (const c of split(file, cuts)) fs.push(c, (e) => got.push(e));
        fs.finish((e) => got.push(e));
        expect(got).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });

  it('a frame header whose length runs past the end is a torn tail, in both readers', () => {
    const file = buildFile([{ seq: 1, size: 10 }], false);
    const torn = file.subarray(0, file.length - 5);
    const whole = [...readRecords(torn)];
    expect(whole.at(-1)).toMatchObject({ kind: 'problem', problem: { kind: 'truncated' } });
    expect(streamRecords(split(torn, 'bytes'), false).events).toEqual(whole);
  });

  it('reports bad magic at the first chunk that disagrees with it, and reads no further', () => {
    const rs = new RecordStream();
    const events: RecordEvent[] = [];
    rs.push(FILE_MAGIC.subarray(0, 3), (e) => events.push(e));
    expect(events).toEqual([]);
    rs.push(Uint8Array.of(FILE_MAGIC[3]! ^ 1, 0, 0), (e) => events.push(e));
    expect(events).toEqual([{ kind: 'problem', problem: { kind: 'bad_magic', offset: 0, length: 6, reason: 'not an edgecap capture file' } }]);
    expect(rs.stopped).toBe(true);
    rs.push(buildFile([], false), (e) => events.push(e));
    rs.finish((e) => events.push(e));
    expect(events).toHaveLength(1);
  });

  it('a file shorter than the magic is bad magic at finish', () => {
    const events: RecordEvent[] = [];
    const rs = new RecordStream();
    rs.push(FILE_MAGIC.subarray(0, 5), (e) => events.push(e));
    expect(events).toEqual([]);
    rs.finish((e) => events.push(e));
    expect(sameButMagicLength(events)).toEqual(sameButMagicLength([...readRecords(FILE_MAGIC.subarray(0, 5))]));
    expect(events).toHaveLength(1);
  });

  it('a frame bigger than the chunks is allocated once, at its size, and copied once', () => {
    const file = buildFile([{ seq: 0, size: 3_000_000 }, { seq: 1, size: 10 }], true);
    const bigFrame = [...scanFrames(file, FILE_MAGIC.length)].find((e) => e.kind === 'frame' && e.end - e.offset > 3_000_000)!;
    const big = bigFrame.end - bigFrame.offset;
    const rs = new RecordStream(undefined, { seqOnly: true });
    const seqs: number[] = [];
    const CH = 65_536;
    for (let o = 0; o < file.length; o += CH) {
      rs.push(file.subarray(o, o + CH), (e) => e.kind === 'seq' && seqs.push(e.seq));
      // while the big frame is arriving, the carry is exactly that frame's size (no regrowth, no re-copying)
      if (o + CH > bigFrame.offset && o + CH < bigFrame.end) expect(rs.retainedBytes).toBe(big);
      else expect(rs.retainedBytes).toBeLessThan(1000);
    }
    rs.finish(() => {});
    expect(seqs).toEqual([0, 1]);
  });

  it('keeps views in earlier events intact while later chunks arrive (the carry is never overwritten)', () => {
    const file = buildFile(
      Array.from({ length: 50 }, (_, i) => ({ seq: i, size: 100 + i })),
      true,
    );
    const datas: Uint8Array[] = [];
    const rs = new RecordStream();
    for (let o = 0; o < file.length; o += 77) rs.push(Uint8Array.from(file.subarray(o, o + 77)), (e) => e.kind === 'reading' && datas.push(e.reading.data as Uint8Array));
    rs.finish(() => {});
    expect(datas).toHaveLength(50);
    datas.forEach((d, i) => expect(d).toEqual(new Uint8Array(100 + i).fill(i)));
  });

});
