/**
 * Issue #12: readers that no input can crash. Each case is an input a client controls (a
 * reading's depth, a file's seq layout, the gaps it reports) that made `edgecap export` or
 * `export --gaps` die with "Maximum call stack size exceeded" (recursion or an array spread
 * into call arguments). Storage is a fake IngestStorage with generated records, so the
 * 10 M-gap case runs in seconds; the CLI code path is exportCmd itself.
 */
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { encodeFileStart, encodeFrame, FrameEncoder, FrameType } from '@edgecap/format';
import {
  exportReadings,
  gapReport,
  stringify,
  summarizeBinary,
  type CaptureInfo,
  type ExportedReading,
  type FileRecord,
  type IngestStorage,
  type ReportedGap,
} from '@edgecap/ingest';
// the export command as the CLI runs it (cli is built before these tests: tsc -b packages/cli)
import { exportCmd } from '../../cli/dist/ingest.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const STREAM = { part_id: 'robot-1', resource_kind: 'sensor', resource_name: 'temp', method: 'Readings' };

function record(file_id: string, ranges: [number, number][], extra: Partial<FileRecord> = {}, gaps: CaptureInfo['gaps'] = []): FileRecord {
  let readings = 0;
  for (const [a, b] of ranges) readings += b - a + 1;
  return {
    ...STREAM,
    file_id,
    data_type: 'tabular',
    tags: [],
    size: 0,
    sha256: '',
    mtime_ms: 0,
    source: 'capture',
    path: `blobs/${file_id}.capture`,
    received_at_ms: 0,
    capture: { readings, first_seq: ranges[0]?.[0], last_seq: ranges.at(-1)?.[1], ranges, gaps, problems: 0, header_type: 'tabular' },
    ...extra,
  };
}

/** An IngestStorage over generated records: files/gaps are lazy iterables (nothing is held). */
function fakeStorage(files: FileRecord[], gaps: () => Iterable<ReportedGap> = () => [], bytes = new Map<string, Uint8Array>()): IngestStorage {
  const s = {
    kind: 'fake',
    async *files() {
      yield* files;
    },
    async *gaps() {
      for (const g of gaps()) yield g;
    },
    async get(part: string, id: string) {
      return files.find((f) => f.part_id === part && f.file_id === id);
    },
    async readBytes(rec: FileRecord) {
      return bytes.get(rec.file_id)!;
    },
    async close() {},
  };
  return s as unknown as IngestStorage;
}

function* reported(n: number, at: (i: number) => [number, number], reason = 'janitor'): Generator<ReportedGap> {
  for (let i = 0; i < n; i++) {
    const [from_seq, to_seq] = at(i);
    // (no object spread: V8 takes microseconds per spread here, which would dominate the test)
    yield { part_id: STREAM.part_id, resource_kind: STREAM.resource_kind, resource_name: STREAM.resource_name, method: STREAM.method, from_seq, to_seq, reason, time_us: 0 };
  }
}

/** A capture file: a normal reading, one reading whose data is `deep` (raw msgpack), another normal one. */
function captureWith(deep: Uint8Array): { id: string; bytes: Uint8Array } {
  const { bytes: start, header } = encodeFileStart({ kind: 'sensor', name: 'temp', method: 'Readings', type: 'tabular', tags: [], start_us: 1 });
  const enc = new FrameEncoder();
  const buf = new Uint8Array(1 << 16);
  const normal = (seq: number): Uint8Array => buf.slice(0, enc.reading(buf, 0, seq, 10 + seq, 20 + seq, { v: seq, bin: new Uint8Array([1, 2, 3]) }));
  // READING tuple [seq=1, 11, 21, <deep>] by hand: the encoder refuses depth > 100, a hostile client does not
  const payload = new Uint8Array(4 + deep.length);
  payload.set([0x94, 1, 11, 21]);
  payload.set(deep, 4);
  const parts = [start, normal(0), encodeFrame(FrameType.READING, payload), normal(2)];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { id: header.id, bytes };
}

/** msgpack: `depth` nested one-element arrays (or one-key maps {"a": ...}) around bin [7, 7]. */
function nested(depth: number, map: boolean): Uint8Array {
  const unit = map ? [0x81, 0xa1, 0x61] : [0x91];
  const out = new Uint8Array(depth * unit.length + 4);
  for (let i = 0; i < depth; i++) out.set(unit, i * unit.length);
  out.set([0xc4, 2, 7, 7], depth * unit.length);
  return out;
}

/** Depth of a parsed value and what sits at the bottom, iteratively. */
function bottom(v: unknown): { depth: number; leaf: unknown } {
  let depth = 0;
  while (v !== null && typeof v === 'object' && !('binary' in v)) {
    v = Array.isArray(v) ? v[0] : (v as Record<string, unknown>).a;
    depth++;
  }
  return { depth, leaf: v };
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('iterative JSON', () => {
  it('stringify gives exactly JSON.stringify for ordinary values', () => {
    const proto = JSON.parse('{"__proto__": {"x": 1}, "y": [1]}') as unknown;
    const values: unknown[] = [
      null,
      0,
      -0,
      1.5e300,
      NaN,
      -Infinity,
      true,
      'a"\\\n\u2028\ud800',
      [],
      {},
      [undefined, () => 1, Symbol('s'), null],
      { a: undefined, b: () => 1, c: 1, d: [{}, []], e: { f: { g: 'h' } } },
      { t: new Date(0), n: new Number(3), s: new String('x'), b: new Boolean(false), j: { toJSON: (k: string) => `key:${k}` } },
      proto,
      [[[[1, [2, { x: [3] }]]]]],
    ];
    for (const v of values) {
      for (const space of [undefined, 2, '\t', 20, 'abcdefghijklmnop']) expect(stringify(v, space)).toBe(JSON.stringify(v, null, space));
    }
    expect(stringify(undefined)).toBe(undefined);
    expect(() => stringify({ n: 1n })).toThrow(TypeError);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(() => stringify(cyc)).toThrow(TypeError);
  });

  it('a value nested 100,000 deep converts and serializes', () => {
    let v: unknown = new Uint8Array([1]);
    for (let i = 0; i < 100_000; i++) v = i % 2 ? [v] : { a: v };
    const text = stringify(summarizeBinary(v))!;
    const b = bottom(JSON.parse(text));
    expect(b.depth).toBe(100_000);
    expect(b.leaf).toMatchObject({ binary: { size: 1 } });
  });
});

describe('export of a deeply nested reading (issue #12)', () => {
  for (const depth of [3_000, 100_000]) {
    for (const map of [false, true]) {
      it(`a reading nested ${depth} deep (${map ? 'maps' : 'arrays'}) exports as valid JSON; the other readings too`, async () => {
        const c = captureWith(nested(depth, map));
        const s = fakeStorage([record(c.id, [[0, 2]])], () => [], new Map([[c.id, c.bytes]]));
        const out = new Collect();
        expect(await exportCmd(s, {}, out)).toBe(0);
        const lines = out.text.trimEnd().split('\n');
        expect(lines).toHaveLength(3);
        const rs = lines.map((l) => JSON.parse(l) as ExportedReading);
        expect(rs.map((r) => r.seq)).toEqual([0, 1, 2]);
        expect(rs[0]!.data).toEqual({ v: 0, bin: { binary: { size: 3, sha256: '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81' } } });
        const b = bottom(rs[1]!.data);
        expect(b.depth).toBe(depth);
        expect(b.leaf).toEqual({ binary: { size: 2, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown } });
        // the library path as well
        const seqs: number[] = [];
        for await (const r of exportReadings(s)) seqs.push(r.seq);
        expect(seqs).toEqual([0, 1, 2]);
      });
    }
  }
});

describe('gap report on absurd input (issue #12)', () => {
  it('200k reported gaps: merged into one run per reason, counted', async () => {
    const s = fakeStorage([record('f1', [[400_000, 400_009]])], () => reported(200_000, (i) => [2 * i, 2 * i + 1]));
    const r = await gapReport(s);
    expect(r.unexplained_gaps).toBe(0);
    expect(r.streams).toHaveLength(1);
    expect(r.streams[0]).toMatchObject({
      readings: 10,
      received: [{ from_seq: 400_000, to_seq: 400_009 }],
      gaps: [{ from_seq: 0, to_seq: 399_999, explained: true, reasons: ['janitor'] }],
      unexplained_readings: 0,
      merged: { records: 200_000, runs: 1 },
    });
    expect(r.streams[0]!.truncated).toBeUndefined();
  });

  it('200k disjoint reported gaps: entries bounded per stream, totals exact', async () => {
    // gap i = [3i, 3i+1] explained, 3i+2 never explained
    const s = fakeStorage([], () => reported(200_000, (i) => [3 * i, 3 * i + 1]));
    const r = await gapReport(s, { maxEntries: 50 });
    const st = r.streams[0]!;
    expect(st.gaps).toHaveLength(50);
    expect(st.gaps.slice(0, 2)).toEqual([
      { from_seq: 0, to_seq: 1, explained: true, reasons: ['janitor'] },
      { from_seq: 2, to_seq: 2, explained: false, reasons: [] },
    ]);
    // the top is the last explained seq, so the last hole 599999 is not a gap
    expect(st.truncated).toEqual({ limit: 50, received: 0, gaps: 399_999, unexplained_gaps: 199_999 });
    expect(r.unexplained_gaps).toBe(199_999);
    expect(st.unexplained_readings).toBe(199_999);
  });

  it('10 M reported gaps (two reasons, overlapping, out of order at the end) make a bounded report', async () => {
    const N = 5_000_000;
    function* gaps(): Generator<ReportedGap> {
      // janitor [2i, 2i+1]: all of 0..9,999,999; ring_full [4k+1, 4k+4]: 1..19,999,996, overlapping it
      yield* reported(N, (i) => [2 * i, 2 * i + 1], 'janitor');
      yield* reported(N - 1, (i) => [4 * (N - 2 - i) + 1, 4 * (N - 2 - i) + 4], 'ring_full'); // descending
      yield { ...STREAM, from_seq: 30_000_000, to_seq: 30_000_000, reason: 'x'.repeat(10_000), time_us: 0 };
    }
    const s = fakeStorage([record('f1', [[10_000_000, 10_000_000]])], gaps);
    const r = await gapReport(s);
    const st = r.streams[0]!;
    expect(st.merged).toEqual({ records: 2 * N, runs: 3 });
    expect(st.gaps).toEqual([
      { from_seq: 0, to_seq: 0, explained: true, reasons: ['janitor'] },
      { from_seq: 1, to_seq: 9_999_999, explained: true, reasons: ['janitor', 'ring_full'] },
      { from_seq: 10_000_001, to_seq: 19_999_996, explained: true, reasons: ['ring_full'] },
      { from_seq: 19_999_997, to_seq: 29_999_999, explained: false, reasons: [] },
      { from_seq: 30_000_000, to_seq: 30_000_000, explained: true, reasons: ['x'.repeat(100)] },
    ]);
    expect(r.unexplained_gaps).toBe(1);
  }, 120_000);

  it('one capture file with alternating seqs (200k runs), and 20 files of 10k+ interleaved runs each', async () => {
    const evens: [number, number][] = [];
    const odds: [number, number][] = [];
    for (let i = 0; i < 200_000; i++) {
      evens.push([2 * i, 2 * i]);
      odds.push([2 * i + 1, 2 * i + 1]);
    }
    let r = await gapReport(fakeStorage([record('a', evens)]), { maxEntries: 10 });
    let st = r.streams[0]!;
    expect(st.readings).toBe(200_000);
    expect(st.received).toHaveLength(10);
    expect(st.gaps[0]).toEqual({ from_seq: 1, to_seq: 1, explained: false, reasons: [] });
    expect(st.truncated).toEqual({ limit: 10, received: 200_000, gaps: 199_999, unexplained_gaps: 199_999 });
    expect(r.unexplained_gaps).toBe(199_999);

    r = await gapReport(fakeStorage([record('a', evens), record('b', odds), record('c', evens)]));
    st = r.streams[0]!;
    expect(st).toMatchObject({ readings: 400_000, duplicates: 200_000, received: [{ from_seq: 0, to_seq: 399_999 }], gaps: [] });

    const files: FileRecord[] = [];
    for (let j = 0; j < 20; j++) {
      const runs: [number, number][] = [];
      for (let i = 0; i < 10_000; i++) runs.push([20 * i + j, 20 * i + j]);
      files.push(record(`f${j}`, runs, {}, [{ from_seq: 200_000 + j, to_seq: 200_000 + j, reason: 'ring_full', time_us: 0 }]));
    }
    r = await gapReport(fakeStorage(files));
    expect(r.streams[0]).toMatchObject({
      readings: 200_000,
      received: [{ from_seq: 0, to_seq: 199_999 }],
      gaps: [{ from_seq: 200_000, to_seq: 200_019, explained: true, reasons: ['ring_full'] }],
      merged: { records: 20, runs: 1 },
    });
  });

  it('export --gaps writes what JSON.stringify(report, null, 2) would, streaming per stream', async () => {
    const files = [record('a', [[0, 3], [9, 9]], {}, [{ from_seq: 4, to_seq: 5, reason: 'ring_full', time_us: 0 }]), record('b', [[2, 2]], { resource_name: 'other' })];
    const s = fakeStorage(files, () => reported(1, () => [7, 7]));
    const out = new Collect();
    await exportCmd(s, { gaps: true }, out);
    expect(out.text).toBe(JSON.stringify(await gapReport(s), null, 2) + '\n');
    const empty = new Collect();
    await exportCmd(fakeStorage([]), { gaps: true }, empty);
    expect(empty.text).toBe(JSON.stringify({ streams: [], unexplained_gaps: 0 }, null, 2) + '\n');
  });

  it('unusable ranges and gap records are skipped and counted, not trusted', async () => {
    const bad = record('a', [[0, 4]], {}, [
      { from_seq: 'x' as unknown as number, to_seq: 2, reason: 'ring_full', time_us: 0 },
      { from_seq: 9, to_seq: 3, reason: 'ring_full', time_us: 0 },
      { from_seq: 6, to_seq: 6, reason: 'ring_full', time_us: 0 },
    ]);
    bad.capture!.ranges.push([NaN, 1] as [number, number], null as unknown as [number, number]);
    const st = (await gapReport(fakeStorage([bad]))).streams[0]!;
    expect(st.ignored).toBe(4);
    expect(st.gaps).toEqual([
      { from_seq: 5, to_seq: 5, explained: false, reasons: [] },
      { from_seq: 6, to_seq: 6, explained: true, reasons: ['ring_full'] },
    ]);
  });
});
