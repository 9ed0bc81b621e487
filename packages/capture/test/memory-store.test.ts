import { describe, expect, it } from 'vitest';
import { encodeFileStart, FrameEncoder, type CaptureFileHeader } from '@edgecap/format';
import { MemoryStore } from '@edgecap/capture';

const key = { kind: 'sensor', name: 'temp', method: 'Readings' };

/** A real sealed capture file holding seqs [from, to]. */
function sealed(from: number, to: number): { id: string; path: string; header: CaptureFileHeader; bytes: Uint8Array; readings: number; sealedAtMs: number } {
  const { bytes: start, header } = encodeFileStart({ ...key, type: 'tabular', tags: [], start_us: 1 });
  const enc = new FrameEncoder();
  const buf = new Uint8Array(1 << 16);
  const parts = [start];
  for (let seq = from; seq <= to; seq++) {
    const n = enc.reading(buf, 0, seq, seq, seq, { v: seq });
    parts.push(buf.slice(0, n));
  }
  const bytes = Buffer.concat(parts);
  return { id: header.id, path: `${header.id}.capture`, header, bytes, readings: to - from + 1, sealedAtMs: Date.now() };
}

describe('MemoryStore', () => {
  it('drop_oldest over budget: consecutive drops of a stream become one memory_full range', () => {
    const [a, b, c, d] = [sealed(100, 199), sealed(200, 299), sealed(300, 399), sealed(400, 499)];
    // room for the two newest (the larger: bigger seqs encode longer), not for three
    const store = new MemoryStore({ budgetBytes: c.bytes.length + d.bytes.length, policy: 'drop_oldest', epochBase: 100 });
    store.nextSeq(key); // first sight: [0, 99] memory_lost
    store.add(a);
    store.add(b);
    store.add(c); // drops 100..199
    store.add(d); // drops 200..299
    const gaps = store.unreportedGaps().map((g) => [g.reason, g.from_seq, g.to_seq]);
    expect(gaps).toEqual([
      ['memory_lost', 0, 99],
      ['memory_full', 100, 299],
    ]);
    expect(store.stats()).toMatchObject({ droppedFiles: 2, droppedReadings: 200, heldFiles: 2 });
  });

  it('a file the ingest rejects is released and its range becomes a rejected gap', () => {
    const store = new MemoryStore({ budgetBytes: 1 << 20, policy: 'drop_oldest', epochBase: 0 });
    const f = sealed(0, 9);
    store.add(f);
    expect(store.take(f.id)).toBe(true);
    store.reject(f.id);
    expect(store.pending()).toEqual([]);
    expect(store.stats()).toMatchObject({ heldFiles: 0, heldBytes: 0, rejectedFiles: 1, droppedFiles: 0 });
    expect(store.unreportedGaps().map((g) => [g.reason, g.from_seq, g.to_seq])).toEqual([['rejected', 0, 9]]);
  });

  it('streams continue after what sealed files cover (a new engine or a replacement writer never reuses a seq)', () => {
    const store = new MemoryStore({ budgetBytes: 1 << 20, policy: 'drop_oldest', epochBase: 5000 });
    expect(store.nextSeq(key)).toBe(5000);
    store.advanceSeqsSync([{ key, next: 5120 }]);
    store.advanceSeqSync(key, 5100); // never backwards
    expect(store.nextSeq(key)).toBe(5120);
    expect(store.nextSeq({ ...key, name: 'other' })).toBe(5000);
  });
});
