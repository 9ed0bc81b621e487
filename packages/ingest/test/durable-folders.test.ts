// A folder the store makes (a part's, a fan-out's, a user file's nested name) is durable only once
// the folder holding it is fsynced (POSIX; ext4's journal happens to cover it, XFS and btrfs need
// not). Each group commit must have fsynced those parents before it answers: an acknowledged file
// under a folder a power cut takes is lost, and the edge has deleted its copy.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { FileStorage, type NewFileRecord } from '@edgecap/ingest';
import { makeCapture, sha256, tmpDir } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const base = tmpDir('durable-folders');
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** Folders opened read-only (what fsyncDir does to fsync one), from now on. */
function watchDirFsyncs(): Set<string> {
  const seen = new Set<string>();
  const real = fsp.open.bind(fsp);
  vi.spyOn(fsp, 'open').mockImplementation(async (p, flags, mode) => {
    const fh = await real(p, flags, mode);
    if (flags === 'r' && fs.statSync(p as string).isDirectory()) {
      const sync = fh.sync.bind(fh);
      fh.sync = async () => {
        await sync();
        seen.add(path.resolve(p as string));
      };
    }
    return fh;
  });
  return seen;
}

/** Every folder under `root` (absolute). */
const foldersUnder = (root: string): string[] => (fs.readdirSync(root, { recursive: true }) as string[]).map((f) => path.join(root, f)).filter((f) => fs.statSync(f).isDirectory());

async function commit(s: FileStorage, bytes: Buffer, r: Omit<NewFileRecord, 'size' | 'sha256'>) {
  const st = await s.stage(bytes.length);
  await st.write(bytes);
  await st.finish();
  return s.commit(st, { ...r, size: bytes.length, sha256: sha256(bytes).toString('hex') });
}

describe('ingest storage: new folders are durable before the commit answers', () => {
  it('the parent of every folder made for a commit (pack fan-out, blob fan-out, a user file’s nested name) is fsynced before it resolves; a later group into the same folders fsyncs no parent again', async () => {
    const dataDir = path.join(base, 'one', 'data'); // the data dir and its parent are new too
    const s = new FileStorage(dataDir);
    try {
      const before = new Set(foldersUnder(dataDir));
      const synced = watchDirFsyncs();
      const small = makeCapture({ name: 'small', seqs: [1, 2, 3] }); // a pack
      const big = makeCapture({ name: 'big', binary: true, seqs: Array.from({ length: 100 }, (_, i) => i) }); // ~100 KB, staged on disk: a blob
      const file = Buffer.from('a log line\n');
      const common = { part_id: 'robot-7', tags: [], mtime_ms: 0 };
      const results = await Promise.all([
        commit(s, small.bytes, { ...common, file_id: small.id, data_type: 'tabular', resource_kind: small.kind, resource_name: small.name, method: small.method, source: '' }),
        commit(s, big.bytes, { ...common, file_id: big.id, data_type: 'binary', resource_kind: big.kind, resource_name: big.name, method: big.method, source: '' }),
        commit(s, file, { ...common, file_id: 'f-1', data_type: 'file', resource_kind: '', resource_name: '', method: '', source: 'logs', file_name: 'nested/deeper/app.log' }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['committed', 'committed', 'committed']);
      const made = foldersUnder(dataDir).filter((f) => !before.has(f));
      // packs/robot-7/xx, blobs/robot-7/xx, files/robot-7/logs/nested/deeper, and every folder between
      expect(made.length).toBeGreaterThanOrEqual(8);
      const missing = made.filter((f) => !synced.has(path.dirname(f))).map((f) => path.relative(dataDir, f));
      expect(missing).toEqual([]);

      // the same folders again: only the folders holding the new files are fsynced
      synced.clear();
      const small2 = makeCapture({ name: 'small2', seqs: [1] });
      const file2 = Buffer.from('another line\n');
      await Promise.all([
        commit(s, small2.bytes, { ...common, file_id: small2.id, data_type: 'tabular', resource_kind: small2.kind, resource_name: small2.name, method: small2.method, source: '' }),
        commit(s, file2, { ...common, file_id: 'f-2', data_type: 'file', resource_kind: '', resource_name: '', method: '', source: 'logs', file_name: 'nested/deeper/app2.log' }),
      ]);
      // (the new pack may get a new fan-out folder: packs/robot-7 then counts again)
      const unchanged = ['', 'files', 'files/robot-7', 'files/robot-7/logs', 'files/robot-7/logs/nested', 'blobs', 'blobs/robot-7'];
      expect(unchanged.filter((f) => synced.has(path.join(dataDir, f)))).toEqual([]);
      expect(synced.has(path.join(dataDir, 'files', 'robot-7', 'logs', 'nested', 'deeper'))).toBe(true);
    } finally {
      await s.close();
    }
  });
});
