// The writer body runs in-process here, with an injected fs that fails on command.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ledgerReserve, realFs, StreamEmitter, Writer, newStatsSab, Stat, type SeqSink, type WriterEvent, type WriterFs } from '@edgecap/capture';
import { FrameEncoder, listFiles } from '@edgecap/format';
import { createRingBuffer, Doorbell, RingProducer } from '@edgecap/ring';
import { Headroom } from '../dist/writer-stream.js';
import { readBack, sleep, tmpDir } from './helpers.js';

function faultyFs(mode: { fail: 'none' | 'enospc' | 'short' }): WriterFs & { errors: number } {
  const f: WriterFs & { errors: number } = {
    ...realFs,
    errors: 0,
    writeSync(fd, buf, off, len, pos) {
      if (mode.fail === 'enospc') {
        f.errors++;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      if (mode.fail === 'short' && len > 8) {
        // write part of the buffer, then fail the rest: a torn frame on disk unless cut back
        realFs.writeSync(fd, buf, off, Math.floor(len / 2), pos);
        f.errors++;
        mode.fail = 'enospc';
        return Math.floor(len / 2);
      }
      return realFs.writeSync(fd, buf, off, len, pos);
    },
  };
  return f;
}

/** A Writer (in-process, on `fs`) draining one sensor stream, and the emitter that feeds it. */
function oneStreamWriter(dir: string, fs: WriterFs, store: SeqSink, o: { maxFileBytes: number; fsyncIntervalMs: number; ringBytes: number }) {
  const bell = new Doorbell();
  const events: WriterEvent[] = [];
  const w = new Writer(
    { captureDir: dir, partId: 'p', tags: [], maxFileBytes: o.maxFileBytes, maxFileAgeMs: 60_000, flushIntervalMs: 20, fsyncIntervalMs: o.fsyncIntervalMs, bellSab: bell.sab },
    { fs, store, emit: (e) => events.push(e) },
  );
  const ringSab = createRingBuffer(o.ringBytes);
  const statsSab = newStatsSab();
  w.addRing(1, ringSab, [{ index: 0, key: { kind: 'sensor', name: 'x', method: 'Readings' }, statsSab }]);
  w.start();
  const ring = new RingProducer(ringSab, bell);
  const em = new StreamEmitter({ ring, enc: new FrameEncoder(), sendOversize: () => {}, nextToken: { v: 0 } }, 0, statsSab, 0, undefined);
  return { w, ring, em, events, stats: new Float64Array(statsSab) };
}

describe('writer under write errors (injected fs)', () => {
  it('keeps capturing through ENOSPC and short writes, counts drops, files read back clean, gaps explain the loss', async () => {
    const dir = tmpDir('faults');
    const mode: { fail: 'none' | 'enospc' | 'short' } = { fail: 'none' };
    const ffs = faultyFs(mode);
    const persisted: number[] = [];
    const store = { advanceSeq: (_k: unknown, n: number) => void persisted.push(n), advanceSeqSync: (_k: unknown, n: number) => void persisted.push(n) };
    const { w, ring, em, events, stats } = oneStreamWriter(dir, ffs, store, { maxFileBytes: 32 * 1024, fsyncIntervalMs: 100, ringBytes: 1 << 20 });
    let produced = 0;
    const phase = async (fail: typeof mode.fail, n: number) => {
      mode.fail = fail;
      for (let i = 0; i < n; i++) {
        expect(em.emit({ i: produced, pad: 'y'.repeat(100) }, 1, 2)).toBe(true);
        produced++;
        if (i % 50 === 0) await sleep(10);
      }
      await sleep(80);
    };
    await phase('none', 300);
    await phase('short', 300);
    await phase('enospc', 300);
    await phase('none', 300);
    await phase('enospc', 200);
    await phase('none', 300);
    ring.close();
    await w.stop();

    expect(ffs.errors).toBeGreaterThan(0);
    expect(stats[Stat.WRITE_ERRORS]).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'write-error' && e.code === 'ENOSPC')).toBe(true);
    const d = readBack(dir).get('sensor/x/Readings')!; // throws on any corrupt / torn frame
    expect(readBack(dir, '.prog').size).toBe(0);
    const onDisk = d.readings.map((r) => r.seq);
    const lost = stats[Stat.DROPPED_ON_WRITE_ERROR]!;
    expect(lost).toBeGreaterThan(0);
    expect(onDisk.length + lost).toBe(produced);
    // every missing seq is explained by a write_error GAP, and nothing is duplicated
    expect(new Set(onDisk).size).toBe(onDisk.length);
    const explained = new Set<number>();
    for (const g of d.gaps) {
      expect(g.reason).toBe('write_error');
      for (let s = g.from_seq; s <= g.to_seq; s++) explained.add(s);
    }
    for (let s = 0; s < produced; s++) expect(onDisk.includes(s) !== explained.has(s)).toBe(true);
    // writing resumed after the last failure: the final readings are on disk
    expect(onDisk.at(-1)).toBe(produced - 1);
    expect(Math.max(...persisted)).toBe(produced);
    for (const f of d.files) expect(fs.statSync(f).size).toBeGreaterThan(0);
  });
});

describe('free space kept for the ledger', () => {
  it('ledgerReserve is 2 % of the filesystem, at least 256 KiB, at most 16 MiB, and below the janitor threshold', () => {
    expect(ledgerReserve(10 * 1024 * 1024)).toBe(256 * 1024);
    expect(ledgerReserve(100 * 1024 * 1024)).toBe(Math.floor(100 * 1024 * 1024 * 0.02));
    expect(ledgerReserve(64 * 1024 ** 3)).toBe(16 * 1024 * 1024);
    // a janitor that deletes only at 99 %: capture stops at 99.5 %, above it
    expect(ledgerReserve(100 * 1024 * 1024, 0.99)).toBe(Math.floor(100 * 1024 * 1024 * 0.005));
    expect(ledgerReserve(100 * 1024 * 1024, 1)).toBe(0);
  });

  it('a batch larger than the room above the janitor threshold still goes once the disk is under the threshold (else it would wait forever)', async () => {
    const bsize = 4096;
    const blocks = 6144; // 24 MiB: threshold 0.9 leaves 2.4 MiB, reserve 491 KiB
    const space = { bavail: blocks };
    const h = new Headroom('/x', (_p, cb) => setImmediate(() => cb(null, { bsize, blocks, bavail: space.bavail })), 0.9);
    const probe = (): void => {
      try {
        h.take(0); // asks statfs (at most every 100 ms)
      } catch {
        // short of space: it asks all the same
      }
    };
    const asked = async (bavail: number): Promise<void> => {
      space.bavail = bavail;
      probe();
      await sleep(120);
      probe();
      await sleep(5);
    };
    const frame = 3 * 1024 * 1024; // bigger than the 2.4 MiB above the threshold
    await asked(Math.floor((blocks * 0.12)));  // 88 % used: under the threshold
    expect(() => h.take(frame)).not.toThrow();
    await asked(Math.floor(blocks * 0.08)); // 92 % used: the janitor's turn
    expect(() => h.take(frame)).toThrow(/for the ledger/);
    expect(() => h.take(64 * 1024)).not.toThrow(); // a small batch still fits above the reserve
    await asked(100); // 400 KiB free: under the reserve
    expect(() => h.take(1)).toThrow(/for the ledger/);
  });

  it('capture stops short of the reserve (ENOSPC, drops explained by gaps), writes nothing into it, and resumes when space is back', async () => {
    const dir = tmpDir('headroom');
    const bsize = 4096;
    const blocks = 25_600; // a 100 MiB filesystem: reserve 2 MiB
    const reserve = ledgerReserve(blocks * bsize);
    const space = { bavail: blocks };
    /** bavail of the writer's last statfs answer: what it knows */
    let known = blocks;
    let written = 0;
    let writtenWhileShort = 0;
    const ffs: WriterFs = {
      ...realFs,
      statfs: (_p, cb) =>
        setImmediate(() => {
          known = space.bavail;
          cb(null, { bsize, blocks, bavail: known });
        }),
      writeSync(fd, buf, off, len, pos) {
        written += len;
        if (known * bsize < reserve) writtenWhileShort += len;
        return realFs.writeSync(fd, buf, off, len, pos);
      },
    };
    const { w, ring, em, events, stats } = oneStreamWriter(dir, ffs, { advanceSeqSync: () => undefined }, { maxFileBytes: 32 * 1024, fsyncIntervalMs: 100, ringBytes: 1 << 20 });
    let produced = 0;
    const phase = async (bavail: number, n: number) => {
      space.bavail = bavail;
      await sleep(150); // past the writer's statfs interval
      for (let i = 0; i < n; i++) {
        expect(em.emit({ i: produced, pad: 'y'.repeat(100) }, 1, 2)).toBe(true);
        produced++;
        if (i % 50 === 0) await sleep(10);
      }
      await sleep(150);
    };
    await phase(blocks, 300);
    const before = written;
    await phase(Math.floor(reserve / bsize) - 1, 300); // under the reserve
    // at most the one batch flushed before the statfs it asked for answered (async, every 100 ms)
    expect(written - before).toBeLessThan(4096);
    await phase(blocks, 300);
    ring.close();
    await w.stop();

    expect(writtenWhileShort).toBe(0);
    expect(events.some((e) => e.type === 'write-error' && e.code === 'ENOSPC' && /for the ledger/.test(e.message))).toBe(true);
    const lost = stats[Stat.DROPPED_ON_WRITE_ERROR]!;
    expect(lost).toBeGreaterThan(250);
    const d = readBack(dir).get('sensor/x/Readings')!;
    const onDisk = d.readings.map((r) => r.seq);
    expect(onDisk.length + lost).toBe(produced);
    const explained = new Set<number>();
    for (const g of d.gaps) for (let s = g.from_seq; s <= g.to_seq; s++) explained.add(s);
    for (let s = 0; s < produced; s++) expect(onDisk.includes(s) !== explained.has(s)).toBe(true);
    expect(onDisk.at(-1)).toBe(produced - 1);
  });
});

describe('a file abandoned after a write error', () => {
  it('is cut back, closed, and finished (seq persisted, renamed) while the writer keeps running: syncable without a restart', async () => {
    const dir = tmpDir('abandon');
    const open = new Set<number>();
    let failSyncs = 1;
    const ffs: WriterFs = {
      ...realFs,
      openSync(p, f, m) {
        const fd = realFs.openSync(p, f, m);
        open.add(fd);
        return fd;
      },
      closeSync(fd) {
        open.delete(fd);
        realFs.closeSync(fd);
      },
      fdatasyncSync(fd) {
        if (failSyncs-- > 0) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        realFs.fdatasyncSync(fd);
      },
    };
    const persisted: number[] = [];
    const store = { advanceSeqSync: (_k: unknown, n: number) => void persisted.push(n) };
    const { w, ring, em, events } = oneStreamWriter(dir, ffs, store, { maxFileBytes: 1 << 20, fsyncIntervalMs: 50, ringBytes: 1 << 16 });
    for (let i = 0; i < 100; i++) expect(em.emit({ i }, 1, 2)).toBe(true);
    // the periodic fdatasync fails: the file is given up ... and finished at a later tick
    for (let i = 0; i < 50 && listFiles(dir, '.capture').length === 0; i++) await sleep(20);
    expect(events.some((e) => e.type === 'write-error' && e.code === 'EIO')).toBe(true);
    expect(listFiles(dir, '.prog')).toEqual([]);
    const done = listFiles(dir, '.capture');
    expect(done).toHaveLength(1);
    expect(events.filter((e) => e.type === 'file-finished').map((e) => (e as { path: string }).path)).toEqual(done);
    expect(open.size).toBe(0); // its descriptor was closed
    expect(persisted.at(-1)).toBe(100); // seq persisted before the rename
    const d = readBack(dir).get('sensor/x/Readings')!;
    expect(d.readings.map((r) => r.seq)).toEqual([...Array(100).keys()]);
    ring.close();
    await w.stop();
    expect(listFiles(dir, '.prog')).toEqual([]);
  });
});

// A new stream's folders are durable only once their parents are fsynced (POSIX; ext4's journal
// happens to cover it). A seq persisted for a file whose folder a power cut then takes is data
// lost with nothing to explain it. (A new file's own name is persisted by its fdatasync on ext4,
// XFS, btrfs and f2fs; committer.ts says why the folder is not synced for every file.)
describe('writer: a new stream\'s folders are durable before its seq is persisted', () => {
  /** realFs, logging opens, renames, folder fsyncs (on and off the thread) and seq persists in order. */
  function loggingFs(): { fs: WriterFs; log: string[] } {
    const log: string[] = [];
    const f: WriterFs = {
      ...realFs,
      openSync(p, flags, mode) {
        const fd = realFs.openSync(p, flags, mode);
        if (flags === 'wx') log.push(`open ${p}`);
        return fd;
      },
      renameSync(a, b) {
        realFs.renameSync(a, b);
        log.push(`rename ${a}`);
      },
      fsyncDirSync(d) {
        realFs.fsyncDirSync!(d);
        log.push(`dirsync ${d}`);
      },
      fsyncDir(d, cb) {
        realFs.fsyncDir!(d, (e) => {
          if (!e) log.push(`dirsync ${d}`);
          cb(e);
        });
      },
    };
    return { fs: f, log };
  }

  /** The folders whose entries making capture/sensor/x/Readings changed. */
  const parentsOf = (dir: string): string[] => [path.join(dir, 'sensor', 'x'), path.join(dir, 'sensor'), dir];

  it('periodic sync: the first fdatasync of a new stream\'s first file also fsyncs the parents of the folders made for it (up to the capture dir), once', async () => {
    const dir = path.join(tmpDir('names'), 'capture'); // the capture dir is new too
    const { fs: lfs, log } = loggingFs();
    const store = { advanceSeqSync: () => void log.push('seq') };
    const { w, ring, em } = oneStreamWriter(dir, lfs, store, { maxFileBytes: 1 << 20, fsyncIntervalMs: 30, ringBytes: 1 << 16 });
    for (let i = 0; i < 50; i++) expect(em.emit({ i }, 1, 2)).toBe(true);
    for (let i = 0; i < 100 && !log.some((l) => l.startsWith('dirsync')); i++) await sleep(10);
    const opened = log.findIndex((l) => l.startsWith('open '));
    expect(opened).toBeGreaterThanOrEqual(0);
    expect(new Set(log.filter((l) => l.startsWith('dirsync')))).toEqual(new Set(parentsOf(dir).map((d) => `dirsync ${d}`)));
    expect(log.findIndex((l) => l.startsWith('dirsync'))).toBeGreaterThan(opened);
    const before = log.length;
    await sleep(150); // more periodic syncs of the same file: no folder again
    for (let i = 0; i < 20; i++) expect(em.emit({ i }, 1, 2)).toBe(true);
    await sleep(100);
    ring.close();
    await w.stop();
    expect(log.slice(before).filter((l) => l.startsWith('dirsync'))).toEqual([]);
    expect(log).toContain('seq');
  });

  it.each([
    ['off the thread', false],
    ['on the thread (an fs without the async call)', true],
  ])('rotation before any periodic sync (%s): the folders are fsynced before the first file\'s seq and rename, once for all its files', async (_how, syncOnly) => {
    const dir = path.join(tmpDir('names-rotate'), 'capture');
    const { fs: logged, log } = loggingFs();
    const lfs: WriterFs = syncOnly ? { ...logged, fsyncDir: undefined } : logged;
    const store = { advanceSeqSync: () => void log.push('seq'), advanceSeqsSync: () => void log.push('seq') };
    const { w, ring, em, events } = oneStreamWriter(dir, lfs, store, { maxFileBytes: 4 * 1024, fsyncIntervalMs: 600_000, ringBytes: 1 << 20 });
    for (let i = 0; i < 400; i++) {
      expect(em.emit({ i, pad: 'z'.repeat(100) }, 1, 2)).toBe(true);
      if (i % 50 === 0) await sleep(10);
    }
    for (let i = 0; i < 100 && events.filter((e) => e.type === 'file-finished').length < 5; i++) await sleep(10);
    ring.close();
    await w.stop();
    const finished = events.flatMap((e) => (e.type === 'file-finished' ? [e.path] : []));
    expect(finished.length).toBeGreaterThanOrEqual(5);
    const first = finished[0]!.replace(/\.capture$/, '.prog');
    const opened = log.indexOf(`open ${first}`);
    const seq = log.lastIndexOf('seq', log.indexOf(`rename ${first}`)); // the persist covering it
    expect(opened).toBeGreaterThanOrEqual(0);
    expect(seq).toBeGreaterThan(opened);
    for (const d of parentsOf(dir)) {
      const synced = log.indexOf(`dirsync ${d}`);
      expect(synced, `${d} fsynced after the file was opened`).toBeGreaterThan(opened);
      expect(synced, `${d} fsynced before the seq covering the file`).toBeLessThan(seq);
    }
    expect(log.filter((l) => l.startsWith('dirsync'))).toHaveLength(parentsOf(dir).length); // not once per file
  });
});
