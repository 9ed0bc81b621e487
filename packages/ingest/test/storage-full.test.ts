import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileStorage, type NewFileRecord, type StagedUpload } from '@edgecap/ingest';
import { statusOfSystemError } from '../dist/limits.js';
import { tmpDir } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

// The ingest's data dir on a real, completely full filesystem (a 4 MiB tmpfs): the index
// commit fails inside lmdb-js. Before the fix that failure also rejected promises nobody
// awaited (an unhandled rejection: vitest fails the file, the ingest process died). Needs root
// for mount; CI runs as root.
const mnt = tmpDir('full');
let mountError: string | undefined;
beforeAll(() => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    mountError = `cannot mount tmpfs (${(e as Error).message.split('\n')[0]}); run as root to include this test`;
  }
});
afterAll(() => {
  if (!mountError) execFileSync('umount', ['-l', mnt]);
});

const rec = (id: string, bytes: number, sha256: string): NewFileRecord => ({
  file_id: id,
  part_id: 'robot-1',
  data_type: 'file',
  resource_kind: '',
  resource_name: '',
  method: '',
  tags: [],
  size: bytes,
  sha256,
  mtime_ms: 0,
  source: 'logs',
  file_name: `${id}.bin`,
});

async function stageOne(s: FileStorage, size: number): Promise<{ staged: StagedUpload; bytes: number; sha256: string }> {
  const staged = await s.stage();
  await staged.write(randomBytes(size));
  const { bytes, sha256 } = await staged.finish();
  return { staged, bytes, sha256 };
}

/** Fill the filesystem to the last byte; returns the ballast's path. */
function fill(dir: string): string {
  const ballast = path.join(dir, 'ballast');
  const fd = fs.openSync(ballast, 'w');
  const block = Buffer.alloc(65536);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    // the last partial block: byte by byte is too slow, 4 KiB is one tmpfs page
    const page = Buffer.alloc(4096);
    try {
      for (;;) fs.writeSync(fd, page);
    } catch {
      /* full */
    }
  } finally {
    fs.closeSync(fd);
  }
  return ballast;
}

describe('ingest storage on a full disk', () => {
  it('a failed index commit is a retryable error, not a crash; files placed for it are removed; it commits once space is back', async (ctx) => {
    if (mountError) ctx.skip(mountError);
    const dir = path.join(mnt, 'data');
    const s = new FileStorage(dir);
    try {
      // Staged before the disk fills: only the placement + index commit run on a full disk.
      const staged = [];
      for (let i = 0; i < 12; i++) staged.push({ id: `f${i}`, ...(await stageOne(s, 20_000)) });
      const ballast = fill(mnt);
      const outcomes = await Promise.allSettled(staged.map((x) => s.commit(x.staged, rec(x.id, x.bytes, x.sha256))));
      const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as Error);
      // The disk is full to the last page: at least the first index commit cannot grow the map.
      expect(failures.length).toBeGreaterThan(0);
      for (const err of failures) {
        expect(err.message).toMatch(/ENOSPC|No space/);
        // what the server answers: UNAVAILABLE (the edge waits and retries), never INTERNAL
        expect(statusOfSystemError(err) ?? statusOfSystemError(err.cause)).toBe(14);
      }
      // Nothing half-committed: every file is either in the index with its bytes, or nowhere.
      const indexed = new Map<string, string>();
      for await (const r of s.files()) indexed.set(r.file_id, r.path);
      for (const [id, rel] of indexed) expect(fs.existsSync(path.join(dir, rel)), id).toBe(true);
      const onDisk = fs.readdirSync(path.join(dir, 'files', 'robot-1', 'logs'));
      expect(onDisk.sort()).toEqual([...indexed.keys()].map((id) => `${id}.bin`).sort());
      expect(fs.readdirSync(path.join(dir, 'staging'))).toEqual([]);

      fs.rmSync(ballast);
      // Space is back: the refused files commit (the edge would re-send them), new ones too.
      for (const x of staged.filter((_, i) => outcomes[i]!.status === 'rejected')) {
        const again = await stageOne(s, 1000);
        const r = await s.commit(again.staged, rec(x.id, again.bytes, again.sha256));
        expect(r.status).toBe('committed');
      }
      const late = await stageOne(s, 1000);
      expect((await s.commit(late.staged, rec('late', late.bytes, late.sha256))).status).toBe('committed');
      let n = 0;
      for await (const _ of s.files()) n++;
      expect(n).toBe(13);
      // the key registry and gap writes take the same path
      await expect(s.createKey('robot-2')).resolves.toMatchObject({ part_id: 'robot-2' });
    } finally {
      await s.close();
    }
  });

  it('small capture files (packs) on a full disk: each commit a retryable error, no pack left behind, no fd kept; they commit once space is back', async (ctx) => {
    if (mountError) ctx.skip(mountError);
    const dir = path.join(mnt, 'packs');
    const s = new FileStorage(dir);
    const small = (id: string, b: Buffer): NewFileRecord => ({ ...rec(id, b.length, createHash('sha256').update(b).digest('hex')), data_type: 'tabular', source: '', file_name: undefined });
    const stageSmall = async (b: Buffer): Promise<StagedUpload> => {
      const st = await s.stage(b.length); // declared small: held in memory, written into a pack
      await st.write(b);
      await st.finish();
      return st;
    };
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const packsOnDisk = (): string[] => (fs.existsSync(path.join(dir, 'packs')) ? (fs.readdirSync(path.join(dir, 'packs'), { recursive: true }) as string[]).filter((f) => f.endsWith('.pack')) : []);
    const bodies = Array.from({ length: 20 }, () => randomBytes(30_000));
    try {
      const ballast = fill(mnt);
      const fdsBefore = fds();
      // One group each (committed one after another): every one fails on the full disk.
      for (let i = 0; i < bodies.length; i++) {
        const err = await s.commit(await stageSmall(bodies[i]!), small(`p${i}`, bodies[i]!)).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(err?.message, `p${i}`).toMatch(/ENOSPC|No space/);
        expect(statusOfSystemError(err) ?? statusOfSystemError(err!.cause)).toBe(14);
      }
      expect(packsOnDisk()).toEqual([]);
      expect(fds()).toBe(fdsBefore);
      fs.rmSync(ballast);
      const r = await Promise.all(bodies.map(async (b, i) => s.commit(await stageSmall(b), small(`p${i}`, b))));
      expect(r.map((x) => x.status)).toEqual(bodies.map(() => 'committed'));
      for (let i = 0; i < bodies.length; i++) expect(Buffer.from(await s.readBytes((await s.get('robot-1', `p${i}`))!)).equals(bodies[i]!)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('opening a new data dir on a full filesystem is an error naming the index; the process lives (lmdb-js crashed it)', async (ctx) => {
    if (mountError) ctx.skip(mountError);
    const dir = path.join(mnt, 'fresh');
    fs.mkdirSync(dir);
    const ballast = fill(mnt);
    try {
      expect(() => new FileStorage(dir)).toThrow(expect.objectContaining({ code: 'EDGECAP_ERR_STATE', message: expect.stringContaining(path.join(dir, 'index.lmdb')) }));
    } finally {
      fs.rmSync(ballast, { force: true });
    }
    const s = new FileStorage(dir);
    await s.close();
  });
});
