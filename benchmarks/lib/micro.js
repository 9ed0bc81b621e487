// Micro benchmarks (tinybench), mirroring the source folders: format (encode, decode, crc),
// ring (push/pop), store (LMDB checkpoint writes). Each task does a batch per iteration so the
// harness overhead stays out of the per-item figure.
import path from 'node:path';
import { Bench } from 'tinybench';
import { FrameEncoder, crc32c, readCaptureBytes, encodeFileStart } from '@edgecap/format';
import { createRingBuffer, RingProducer, RingConsumer } from '@edgecap/ring';
import { openStateStore } from '@edgecap/store';
import { reading } from '../fixtures/reading.js';

export async function micro({ dir, timeMs = 600 }) {
  const bench = new Bench({ time: timeMs, warmupTime: 100 });
  const items = {}; // task name → { batch, bytesPerItem, unit }
  const add = (name, batch, bytesPerItem, fn, opts) => {
    items[name] = { batch, bytesPerItem };
    bench.add(name, fn, opts);
  };

  // format: encode
  const enc = new FrameEncoder();
  const out = new Uint8Array(4 << 20);
  for (const size of [64, 1024]) {
    const r = reading(size);
    const frame = enc.reading(out, 0, 1, 1_700_000_000_000_000, 1_700_000_000_000_100, r);
    const N = 1000;
    add(`format: FrameEncoder.reading ${size} B object`, N, frame, () => {
      let off = 0;
      for (let i = 0; i < N; i++) off += enc.reading(out, off, i, 1_700_000_000_000_000 + i, 1_700_000_000_000_100 + i, r);
    });
  }
  {
    const blob = new Uint8Array(65536).fill(7);
    const frame = enc.reading(out, 0, 1, 1, 2, blob, 'application/octet-stream');
    const N = 32;
    add('format: FrameEncoder.reading 64 KiB binary', N, frame, () => {
      let off = 0;
      for (let i = 0; i < N; i++) off += enc.reading(out, off, i, 1, 2, blob, 'application/octet-stream');
    });
  }

  // format: decode a whole file of 10,000 small readings
  {
    const { bytes: start } = encodeFileStart({ kind: 'bench', name: 'r', method: 'Readings', type: 'tabular', tags: [], start_us: 1 });
    const file = new Uint8Array(start.length + 10_000 * 200);
    file.set(start, 0);
    let off = start.length;
    const r = reading(64);
    for (let i = 0; i < 10_000; i++) off += enc.reading(file, off, i, i, i + 1, r);
    const bytes = file.subarray(0, off);
    const check = readCaptureBytes(bytes);
    if (check.readings.length !== 10_000 || check.problems.length) throw new Error(`decode fixture broken: ${check.readings.length} readings, ${check.problems.length} problems`);
    add('format: readCaptureBytes, 64 B readings', 10_000, off / 10_000, () => {
      readCaptureBytes(bytes);
    });
  }

  // format: CRC32C
  for (const size of [64, 1 << 20]) {
    const buf = new Uint8Array(size).map((_, i) => i * 31);
    const N = size === 64 ? 1000 : 1;
    add(`format: crc32c ${size === 64 ? '64 B' : '1 MiB'}`, N, size, () => {
      let c = 0;
      for (let i = 0; i < N; i++) c = crc32c(buf, 0, size, c);
      if (c === 0.5) throw new Error('unreachable');
    });
  }

  // ring: push+pop on one thread (the cross-thread path is what the capture section measures)
  for (const size of [64, 1024]) {
    const sab = createRingBuffer(1 << 20);
    const prod = new RingProducer(sab);
    const cons = new RingConsumer(sab);
    const src = new Uint8Array(size).fill(1);
    const N = 256;
    let sink = 0;
    const fill = (buf, off) => buf.set(src, off);
    const onRec = (_buf, _off, len) => {
      sink += len;
    };
    add(`ring: tryPush+drain ${size} B`, N, size, () => {
      for (let i = 0; i < N; i++) if (!prod.tryPush(size, fill)) throw new Error('ring full');
      if (cons.drain(onRec) !== N) throw new Error('ring lost records');
    });
  }

  // store: LMDB checkpoint writes (each a synchronous write transaction, as sync and janitor do them)
  const store = openStateStore(path.join(dir, 'micro-state'));
  let k = 0;
  add('store: claimUpload (1 sync txn)', 1, 0, () => {
    store.claimUpload(`/capture/f${k++}.capture`, 'run', { id: `id${k}`, source: 'capture', size: 1000 });
  });
  let u = 0;
  add('store: releaseUploads (1 sync txn)', 1, 0, () => {
    store.releaseUploads([`/capture/f${u++ % Math.max(1, k)}.capture`], 'run');
  });
  const key = { kind: 'bench', name: 'r', method: 'Readings' };
  let seq = 0;
  if (typeof store.advanceSeqSync === 'function') {
    add('store: advanceSeqSync (1 sync txn)', 1, 0, () => store.advanceSeqSync(key, ++seq));
  } else if (typeof store.advanceSeq === 'function') {
    add('store: advanceSeq x100 (async, batched)', 100, 0, async () => {
      const ps = [];
      for (let i = 0; i < 100; i++) ps.push(store.advanceSeq(key, ++seq));
      await Promise.all(ps);
    });
  }

  await bench.run();
  const rows = bench.tasks.map((t) => {
    const res = t.result;
    const meta = items[t.name];
    if (!res || res.error) return { name: t.name, error: String(res?.error ?? 'no result') };
    const perSec = (1e3 / res.latency.mean) * meta.batch; // latency in ms per batch
    return {
      name: t.name,
      perSec,
      mbps: meta.bytesPerItem ? (perSec * meta.bytesPerItem) / 1e6 : undefined,
      bytesPerItem: meta.bytesPerItem || undefined,
      nsPerItem: (res.latency.mean * 1e6) / meta.batch,
      rme: res.latency.rme,
      samples: res.latency.samples?.length ?? res.samples?.length,
    };
  });
  await store.close();
  return { rows };
}
