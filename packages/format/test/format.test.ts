import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FILE_MAGIC,
  FRAME_HEADER_BYTES,
  FrameEncoder,
  crc32c,
  encodeFileStart,
  inProgressPath,
  listFiles,
  readCaptureBytes,
  readRecords,
  recoverInProgress,
  timeStamp,
  type CaptureFileHeader,
} from '@edgecap/format';

function makeFile(n: number, dataOf: (i: number) => unknown = (i) => ({ i, v: i * 1.5, s: `r${i}` })): { bytes: Uint8Array; header: CaptureFileHeader; ends: number[] } {
  const { bytes: start, header } = encodeFileStart({ kind: 'sensor', name: 'temp', method: 'Readings', type: 'tabular', tags: ['a'], start_us: 1_700_000_000_000_000 });
  const buf = new Uint8Array(start.length + n * 256 + 1024);
  buf.set(start);
  let off = start.length;
  const ends: number[] = [];
  const enc = new FrameEncoder();
  for (let i = 0; i < n; i++) {
    const w = enc.reading(buf, off, i, 1_700_000_000_000_000 + i, 1_700_000_000_000_100 + i, dataOf(i));
    expect(w).toBeGreaterThan(0);
    off += w;
    ends.push(off);
  }
  return { bytes: buf.subarray(0, off), header, ends };
}

describe('crc32c', () => {
  it('matches the published check value and chains', () => {
    const s = new TextEncoder().encode('123456789');
    expect(crc32c(s)).toBe(0xe3069283);
    expect(crc32c(s, 4, 9, crc32c(s, 0, 4))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  });
});

describe('capture file round trip', () => {
  it('reads back header, readings, binary items and gaps exactly', () => {
    const { bytes: start } = encodeFileStart({ kind: 'camera', name: 'cam', method: 'ReadImage', type: 'binary', tags: [], start_us: 1, mime_type: 'image/jpeg' });
    const enc = new FrameEncoder();
    const img = new Uint8Array(5000).map((_, i) => i & 0xff);
    const buf = new Uint8Array(20000);
    buf.set(start);
    let off = start.length;
    off += enc.reading(buf, off, 7, 10, 20, img, 'image/png');
    const gap = enc.gap(8, 9, 'ring_full', 30);
    buf.set(gap, off);
    off += gap.length;
    off += enc.reading(buf, off, 10, 40, 50, img);
    const s = readCaptureBytes(buf.subarray(0, off));
    expect(s.problems).toEqual([]);
    expect(s.header?.mime_type).toBe('image/jpeg');
    expect(s.readings.map((r) => r.seq)).toEqual([7, 10]);
    expect(s.readings[0]!.mime_type).toBe('image/png');
    expect(Buffer.from(s.readings[1]!.data as Uint8Array).equals(Buffer.from(img))).toBe(true);
    expect(s.gaps).toEqual([{ from_seq: 8, to_seq: 9, reason: 'ring_full', time_us: 30 }]);
    expect(s.goodEnd).toBe(off);
  });

  it('reports a frame too large for the target instead of overrunning', () => {
    const enc = new FrameEncoder();
    expect(enc.reading(new Uint8Array(16), 0, 0, 0, 0, { big: 'x'.repeat(100) })).toBe(-1);
  });

  it('names files by time and id, sortable and collision free', () => {
    expect(timeStamp(1_764_052_500_123_456)).toBe('20251125T063500.123456Z');
    const k = { kind: 'sensor', name: 'temp', method: 'Readings' };
    const a = inProgressPath('/c', k, 1, 'id-a');
    const b = inProgressPath('/c', k, 1, 'id-b');
    expect(a).not.toBe(b);
    expect(a.startsWith(path.join('/c', 'sensor', 'temp', 'Readings'))).toBe(true);
    expect(() => inProgressPath('/c', { ...k, name: '../etc' }, 1, 'x')).toThrow(/name/);
  });
});

describe('damaged files', () => {
  it('a truncated tail is reported as truncated, every complete record before it survives', () => {
    const { bytes, ends } = makeFile(50);
    for (let cut = FILE_MAGIC.length + 1; cut < bytes.length; cut += 7) {
      const s = readCaptureBytes(bytes.subarray(0, cut));
      const complete = ends.filter((e) => e <= cut).length;
      expect(s.readings.length).toBe(complete);
      s.readings.forEach((r, i) => expect(r.seq).toBe(i));
      for (const p of s.problems) expect(['truncated', 'bad_header', 'corrupt']).toContain(p.kind);
    }
  });

  it('a bit flip in a record is reported as corrupt with its offset, and reading resyncs after it', () => {
    const { bytes, ends } = makeFile(20);
    const copy = Uint8Array.from(bytes);
    const victim = 10; // flip a payload byte inside record 10
    const at = ends[victim - 1]! + FRAME_HEADER_BYTES + 3;
    copy[at]! ^= 0x10;
    const s = readCaptureBytes(copy);
    expect(s.problems).toHaveLength(1);
    expect(s.problems[0]!.kind).toBe('corrupt');
    expect(s.problems[0]!.offset).toBe(ends[victim - 1]);
    expect(s.readings.map((r) => r.seq)).toEqual([...Array(20).keys()].filter((i) => i !== victim));
  });

  it('fuzz: random truncation, bit flips and random bytes never throw and never yield a corrupted record as good', () => {
    const { bytes } = makeFile(30);
    const good = new Map(readCaptureBytes(bytes).readings.map((r) => [r.seq, JSON.stringify(r.data)]));
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 8 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 64 }),
        (flips, cutRaw, junk) => {
          const b = Uint8Array.from(bytes);
          for (const f of flips) b[f.at % b.length]! ^= 1 << f.bit;
          const cut = cutRaw % (b.length + 1);
          const mutated = new Uint8Array(cut + junk.length);
          mutated.set(b.subarray(0, cut));
          mutated.set(junk, cut);
          const s = readCaptureBytes(mutated);
          // The seq-only mode (the ingest's check) agrees with the full read on seqs and problems.
          const fast = [...readRecords(mutated, undefined, { seqOnly: true })];
          expect(fast.flatMap((e) => (e.kind === 'seq' ? [e.seq] : e.kind === 'reading' ? [e.reading.seq] : []))).toEqual(s.readings.map((r) => r.seq));
          expect(fast.filter((e) => e.kind === 'problem').length).toBe(s.problems.length);
          for (const r of s.readings) {
            // Anything yielded as good must be exactly a record that was written.
            expect(good.get(r.seq)).toBe(JSON.stringify(r.data));
          }
        },
      ),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (rand) => {
        const s = readCaptureBytes(rand);
        expect(s.readings.length).toBe(0);
        expect(s.problems.length).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('start-up recovery of .prog files', () => {
  it('cuts a torn tail, finalizes to .capture and keeps every complete record', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-fmt-'));
    const { bytes, ends } = makeFile(40);
    const p = inProgressPath(dir, { kind: 'sensor', name: 'temp', method: 'Readings' }, 5, 'abc');
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const cut = ends[29]! + 5; // 30 complete records and 5 bytes of the 31st
    fs.writeFileSync(p, bytes.subarray(0, cut));
    const r = recoverInProgress(p);
    expect(r.readings).toBe(30);
    expect(r.lastSeq).toBe(29);
    expect(r.cutBytes).toBe(5);
    expect(r.finished).toBeDefined();
    expect(fs.existsSync(p)).toBe(false);
    const again = readCaptureBytes(fs.readFileSync(r.finished!));
    expect(again.problems).toEqual([]);
    expect(again.readings).toHaveLength(30);
    expect(listFiles(dir, '.capture')).toEqual([r.finished]);
  });

  it('removes a .prog that never got a complete header', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-fmt-'));
    const p = path.join(dir, 'x.prog');
    fs.writeFileSync(p, FILE_MAGIC.subarray(0, 5));
    const r = recoverInProgress(p);
    expect(r.finished).toBeUndefined();
    expect(fs.existsSync(p)).toBe(false);
  });
});
