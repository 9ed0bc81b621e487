import { describe, expect, it } from 'vitest';
import type { CaptureFileHeader, Reading } from '@edgecap/format';
import { MongoSink, toDocument, type InsertManyTarget, type ReadingDocument } from '@edgecap/mongo';

const header: CaptureFileHeader = {
  v: 1,
  id: 'file-1',
  kind: 'sensor',
  name: 'temp',
  method: 'Readings',
  type: 'tabular',
  tags: ['lab', 'edge'],
  start_us: 1_700_000_000_000_000,
};

function readings(n: number, from = 0): Reading[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: from + i,
    time_requested_us: 1_700_000_000_123_456 + i,
    time_received_us: 1_700_000_000_124_789 + i,
    data: { readings: { t: 20 + i } },
    offset: 0,
  }));
}

/** Records every insertMany; behaviour per call is scripted. */
class FakeCollection implements InsertManyTarget {
  calls: ReadingDocument[][] = [];
  constructor(private readonly behave: (docs: ReadingDocument[], call: number) => Promise<{ insertedCount: number }> = (d) => Promise.resolve({ insertedCount: d.length })) {}
  insertMany(docs: ReadingDocument[], options: { ordered: false }): Promise<{ insertedCount: number }> {
    expect(options).toEqual({ ordered: false });
    this.calls.push(docs);
    return this.behave(docs, this.calls.length);
  }
}

const base = { uri: 'mongodb://unused', partId: 'part-7', tags: ['fleet-a', 'lab'] };

describe('toDocument', () => {
  it('shapes a reading with its metadata, Dates and µs times, merged tags', () => {
    const d = toDocument(header, readings(1, 41)[0]!, { partId: 'part-7', tags: ['fleet-a', 'lab'] });
    expect(d).toEqual({
      part_id: 'part-7',
      resource_kind: 'sensor',
      resource: 'temp',
      method: 'Readings',
      seq: 41,
      time_requested: new Date(1_700_000_000_123),
      time_received: new Date(1_700_000_000_124),
      time_requested_us: 1_700_000_000_123_456,
      time_received_us: 1_700_000_000_124_789,
      tags: ['fleet-a', 'lab', 'edge'],
      data: { readings: { t: 20 } },
    });
  });

  it('falls back to the file header part id', () => {
    expect(toDocument({ ...header, part_id: 'hdr-part' }, readings(1)[0]!, { partId: '', tags: [] }).part_id).toBe('hdr-part');
  });
});

describe('MongoSink batching and failure isolation (injected collection)', () => {
  it('N readings become ceil(N/batch) insertMany calls, in order, all counted inserted', async () => {
    const coll = new FakeCollection();
    const sink = new MongoSink({ ...base, batchSize: 100, flushIntervalMs: 60_000, target: coll });
    sink.add(header, readings(1000));
    sink.add(header, readings(234, 1000));
    await sink.flush();
    expect(coll.calls.map((c) => c.length)).toEqual([...Array(12).fill(100), 34]);
    expect(coll.calls.flat().map((d) => d.seq)).toEqual(Array.from({ length: 1234 }, (_, i) => i));
    expect(sink.stats()).toMatchObject({ inserted: 1234, failed: 0, dropped: 0, batches: 13, queued: 0 });
    await sink.close();
  });

  it('a partial batch is sent by the flush timer', async () => {
    const coll = new FakeCollection();
    const sink = new MongoSink({ ...base, batchSize: 100, flushIntervalMs: 10, target: coll });
    sink.add(header, readings(7));
    await new Promise<void>((resolve) => {
      const poll = (): void => (sink.stats().inserted === 7 ? resolve() : void setTimeout(poll, 5));
      poll();
    });
    expect(coll.calls.map((c) => c.length)).toEqual([7]);
    await sink.close();
  });

  it('ignores binary readings', async () => {
    const coll = new FakeCollection();
    const sink = new MongoSink({ ...base, target: coll });
    expect(sink.add({ ...header, type: 'binary' }, readings(3))).toBe(0);
    await sink.flush();
    expect(coll.calls).toHaveLength(0);
    expect(sink.stats().skippedBinary).toBe(3);
    await sink.close();
  });

  it('a failing collection: add() returns at once, failures (and partial bulk successes) are counted', async () => {
    const coll = new FakeCollection((docs, call) => {
      if (call === 2) return Promise.reject(Object.assign(new Error('E11000 partial'), { insertedCount: 3 }));
      return Promise.reject(new Error('connection refused'));
    });
    const sink = new MongoSink({ ...base, batchSize: 10, flushIntervalMs: 60_000, target: coll });
    expect(sink.add(header, readings(30))).toBe(30);
    await sink.flush();
    expect(coll.calls).toHaveLength(3);
    expect(sink.stats()).toMatchObject({ inserted: 3, failed: 27, failedBatches: 3, dropped: 0 });
    expect(sink.stats().lastError).toBeDefined();
    await sink.close();
  });

  it('a hanging collection never blocks add(): the queue is bounded, overflow dropped, the stuck batch times out as failed', async () => {
    const coll = new FakeCollection(() => new Promise<never>(() => undefined));
    const sink = new MongoSink({ ...base, batchSize: 10, maxQueue: 50, flushIntervalMs: 60_000, insertTimeoutMs: 50, target: coll });
    let accepted = 0;
    for (let i = 0; i < 20; i++) accepted += sink.add(header, readings(10, i * 10));
    // First batch (10) went in flight at once, 50 wait in the queue, the rest was dropped.
    expect(accepted).toBe(60);
    expect(sink.stats()).toMatchObject({ inFlight: 10, queued: 50, dropped: 140, inserted: 0 });
    await sink.close({ timeoutMs: 10_000 });
    // Every batch timed out: counted failed, nothing silently lost.
    const s = sink.stats();
    expect(s.failed + s.inserted + s.dropped).toBe(200);
    expect(s.failed).toBe(60);
    expect(sink.add(header, readings(1))).toBe(0); // closed: dropped, not thrown
  });
});

describe('MongoSink with the real driver and no server', () => {
  it('an unreachable MongoDB: add() still returns at once and the batch is counted failed', async () => {
    const sink = new MongoSink({ ...base, uri: 'mongodb://127.0.0.1:1/?directConnection=true', serverSelectionTimeoutMs: 200, batchSize: 5 });
    expect(sink.add(header, readings(5))).toBe(5);
    await sink.flush();
    expect(sink.stats()).toMatchObject({ inserted: 0, failed: 5, failedBatches: 1 });
    await sink.close();
  });
});

const uri = process.env.MONGODB_URI;
if (!uri) {
  // eslint-disable-next-line no-console -- test-only notice
  console.warn('[mongo integration] skipped: set MONGODB_URI (e.g. mongodb://127.0.0.1:27017) to run it; no MongoDB server is installable from this machine\'s registries.');
}

describe.skipIf(!uri)('MongoSink against a real MongoDB (MONGODB_URI)', () => {
  it('inserts batched documents that read back with their metadata', async () => {
    const { MongoClient } = await import('mongodb');
    const collection = `readings_test_${process.pid}_${Date.now()}`;
    const sink = new MongoSink({ uri: uri!, database: 'edgecap_test', collection, partId: 'it-part', tags: ['it'], batchSize: 50 });
    sink.add(header, readings(120));
    await sink.flush();
    await sink.close();
    expect(sink.stats()).toMatchObject({ inserted: 120, failed: 0 });
    const client = new MongoClient(uri!);
    try {
      const coll = client.db('edgecap_test').collection<ReadingDocument>(collection);
      const docs = await coll.find({ part_id: 'it-part' }).sort({ seq: 1 }).toArray();
      expect(docs).toHaveLength(120);
      expect(docs[5]).toMatchObject({ resource: 'temp', method: 'Readings', seq: 5, tags: ['it', 'lab', 'edge'] });
      expect(docs[5]!.time_requested).toBeInstanceOf(Date);
      await coll.drop();
    } finally {
      await client.close();
    }
  });
});
