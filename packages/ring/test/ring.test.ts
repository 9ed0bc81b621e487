import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Bell, createRingBuffer, Doorbell, RingConsumer, RingProducer, Ctrl, Sleep } from '@edgecap/ring';

const producerUrl = new URL('./fixtures/producer.mjs', import.meta.url);

function checkRecord(buf: Uint8Array, off: number, len: number, dv: DataView): number {
  const seq = dv.getUint32(off, true);
  if (len < 4) throw new Error(`short record ${len}`);
  for (let j = 4; j < len; j++) {
    if (buf[off + j] !== ((seq + j) & 0xff)) throw new Error(`record ${seq} corrupt at byte ${j}`);
  }
  return seq;
}

/** Drain a ring fed by a worker until it is closed and empty; returns the seqs seen in order. */
async function consumeAll(sab: SharedArrayBuffer, bell: Doorbell, slow = false): Promise<number[]> {
  const c = new RingConsumer(sab);
  const seen: number[] = [];
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const n = c.drain((buf, off, len, dv) => {
      seen.push(checkRecord(buf, off, len, dv));
    }, slow ? 3 : Infinity);
    if (c.ended) break;
    if (slow) {
      Atomics.wait(nap, 0, 0, 1);
      await new Promise((r) => setImmediate(r));
    }
    else if (n === 0) await bell.wait(1000, () => !c.isEmpty() || c.closed);
  }
  return seen;
}

function runProducer(workerData: Record<string, unknown>): Promise<{ dropped: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(producerUrl, { workerData });
    let msg: { dropped: number } | undefined;
    w.on('message', (m) => (msg = m));
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 && msg ? resolve(msg) : reject(new Error(`producer exited ${code}`))));
  });
}

describe('SPSC ring across worker threads', () => {
  it('delivers every record in order, intact, through many wrap-arounds (blocking producer)', async () => {
    const sab = createRingBuffer(256);
    const bell = new Doorbell();
    const n = 20_000;
    const [seen] = await Promise.all([consumeAll(sab, bell), runProducer({ sab, bellSab: bell.sab, n, mode: 'retry', maxExtra: 60 })]);
    expect(seen.length).toBe(n);
    for (let i = 0; i < n; i++) if (seen[i] !== i) throw new Error(`out of order at ${i}: ${seen[i]}`);
  });

  it('producer faster than consumer: no loss, no duplicate, produced = consumed + dropped', async () => {
    const sab = createRingBuffer(512);
    const bell = new Doorbell();
    const n = 50_000;
    const producer = runProducer({ sab, bellSab: bell.sab, n, mode: 'drop', maxExtra: 40 });
    const [seen, res] = await Promise.all([consumeAll(sab, bell, true), producer]);
    const c = new RingConsumer(sab);
    expect(res.dropped).toBeGreaterThan(0); // the consumer really was slower
    expect(c.dropped).toBe(res.dropped); // the shared counter counts exactly
    expect(seen.length + c.dropped).toBe(n);
    expect(c.pushed).toBe(seen.length);
    for (let i = 1; i < seen.length; i++) if (!(seen[i]! > seen[i - 1]!)) throw new Error(`not strictly increasing at ${i}`);
  });

  it('doorbell wakes a sleeping consumer and the closed state ends it', async () => {
    const sab = createRingBuffer(1024);
    const bell = new Doorbell();
    const c = new RingConsumer(sab);
    const p = runProducer({ sab, bellSab: bell.sab, n: 1, mode: 'retry', maxExtra: 0, delayMs: 50 });
    // a timeout far beyond the test's budget: only a notify can make this resolve in time
    const woke = await bell.wait(60_000, () => !c.isEmpty() || c.closed);
    expect(woke || !c.isEmpty() || c.closed).toBe(true);
    await p;
    const seen: number[] = [];
    c.drain((b, o, l, dv) => void seen.push(checkRecord(b, o, l, dv)));
    expect(seen).toEqual([0]);
    expect(c.ended).toBe(true);
  });
});

describe('SPSC ring, single thread', () => {
  it('wraps correctly starting at every offset', () => {
    const cap = 128;
    for (let start = 0; start < cap; start += 4) {
      for (const len of [1, 4, 5, 13, 27, 52]) {
        const sab = createRingBuffer(cap);
        const p = new RingProducer(sab);
        const c = new RingConsumer(sab);
        // move head and tail to `start`
        for (let k = 0; k < start; k += 4) {
          expect(p.tryPush(0, () => {})).toBe(true);
          expect(c.drain(() => {})).toBe(1);
        }
        expect(Atomics.load(c.ctrl, Ctrl.HEAD)).toBe(start % cap);
        let next = 0;
        let got = 0;
        for (let round = 0; round < 20; round++) {
          while (
            p.tryPush(len, (buf, off) => {
              for (let j = 0; j < len; j++) buf[off + j] = (next + j) & 0xff;
            })
          )
            next++;
          got += c.drain((buf, off, l) => {
            expect(l).toBe(len);
            for (let j = 0; j < len; j++) if (buf[off + j] !== ((got + j) & 0xff)) throw new Error(`start ${start} len ${len}: bad byte`);
            got++;
          });
          expect(got).toBe(next);
        }
        expect(next).toBeGreaterThanOrEqual(20);
      }
    }
  });

  it('rejects records that can never fit and refuses pushes after close', () => {
    const sab = createRingBuffer(128);
    const p = new RingProducer(sab);
    expect(() => p.tryPush(p.maxRecord + 1, () => {})).toThrow(/exceeds ring limit/);
    expect(p.tryPush(p.maxRecord, () => {})).toBe(true);
    p.close();
    expect(p.tryPush(1, () => {})).toBe(false);
    const c = new RingConsumer(sab);
    expect(c.ended).toBe(false);
    expect(c.drain(() => {})).toBe(1);
    expect(c.ended).toBe(true);
    expect(c.dropped).toBe(1);
  });
});

describe('doorbell with a wake threshold', () => {
  // A producer with wakeAtBytes rings a consumer that sleeps with a timer of its own (TIMED)
  // only past the threshold, and one that sleeps deep (no timer) on every push.
  const setup = () => {
    const sab = createRingBuffer(4096);
    const bell = new Doorbell();
    const p = new RingProducer(sab, bell, 1024);
    const c = new RingConsumer(sab);
    return { bell, p, c };
  };
  const push = (p: RingProducer, n: number) => expect(p.tryPush(n, (buf, off) => buf.fill(1, off, off + n))).toBe(true);

  it('a small push does not wake a timed sleeper; one past the threshold does', async () => {
    const { bell, p, c } = setup();
    const t0 = performance.now();
    const woke = bell.wait(300, () => !c.isEmpty());
    push(p, 16); // below 1024 bytes queued: the sleeper's own timer finds it
    expect(await woke).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(bell.words[Bell.SLEEPING]).toBe(Sleep.AWAKE);
    const woke2 = bell.wait(5_000, () => false);
    push(p, 1100); // past the threshold: rung
    expect(await woke2).toBe(true);
  });

  it('a small push wakes a deep sleeper at once', async () => {
    const { bell, p } = setup();
    const woke = bell.wait(5_000, () => false, true);
    expect(bell.words[Bell.SLEEPING]).toBe(Sleep.DEEP);
    push(p, 16);
    expect(await woke).toBe(true); // rung: a timeout would resolve false
    expect(bell.words[Bell.SLEEPING]).toBe(Sleep.AWAKE);
  });

  it('a push that lands while the consumer is falling asleep deep is found, not slept through', async () => {
    const { bell, p, c } = setup();
    // the push happens between the consumer's last drain and its wait: hasWork sees it
    push(p, 16);
    expect(await bell.wait(5_000, () => !c.isEmpty(), true)).toBe(false);
  });
});
