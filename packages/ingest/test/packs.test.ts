// Small capture files of one group commit share a pack (issue #16: one create and one fsync for
// many files). Each must read back byte for byte (storage, export, UI download), a re-upload
// must still be ALREADY_HAVE, an orphan pack must go at recovery, and an older layout's server
// must not serve a pack whole.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { open } from 'lmdb';
import { FileStorage, exportReadings, startIngestUi, type NewFileRecord } from '@edgecap/ingest';
import { collect, makeCapture, sha256, tmpDir } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

type Capture = ReturnType<typeof makeCapture>;

function rec(c: Capture, part: string, dataType: NewFileRecord['data_type'] = 'tabular'): NewFileRecord {
  return {
    file_id: c.id,
    part_id: part,
    data_type: dataType,
    resource_kind: c.kind,
    resource_name: c.name,
    method: c.method,
    tags: [],
    size: c.bytes.length,
    sha256: sha256(c.bytes).toString('hex'),
    mtime_ms: 0,
    source: dataType === 'file' ? 'logs' : '',
    ...(dataType === 'file' && { file_name: `${c.name}.bin` }),
  };
}

/** Stage every file (held in memory: declared small), then commit them all at once: one group. */
async function commitTogether(s: FileStorage, files: { c: Capture; part: string; dataType?: NewFileRecord['data_type'] }[]) {
  const staged: Awaited<ReturnType<FileStorage['stage']>>[] = [];
  for (const f of files) {
    const st = await s.stage(f.c.bytes.length);
    await st.write(f.c.bytes);
    await st.finish();
    staged.push(st);
  }
  return Promise.all(files.map((f, i) => s.commit(staged[i]!, rec(f.c, f.part, f.dataType))));
}

const walk = (dir: string): string[] => (fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort() : []);

describe('packs: small capture files of a group commit share one file', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpDir('packs');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('one pack per part per group; every file reads back byte for byte; a re-upload is ALREADY_HAVE', async () => {
    const dataDir = path.join(dir, 'one');
    const s = new FileStorage(dataDir);
    try {
      const a = Array.from({ length: 20 }, (_, i) => makeCapture({ name: `a${i}`, seqs: Array.from({ length: 5 + i }, (_, k) => k) }));
      const b = Array.from({ length: 5 }, (_, i) => makeCapture({ name: `b${i}`, seqs: [i, i + 1] }));
      const arbitrary = makeCapture({ name: 'notes', seqs: [0] });
      const results = await commitTogether(s, [...a.map((c) => ({ c, part: 'robot-a' })), ...b.map((c) => ({ c, part: 'robot-b' })), { c: arbitrary, part: 'robot-a', dataType: 'file' }]);
      expect(results.map((r) => r.status)).toEqual(results.map(() => 'committed'));

      // One pack for each part; the arbitrary file keeps its own name.
      const packs = walk(path.join(dataDir, 'packs'));
      expect(packs.map((p) => p.split(path.sep)[0])).toEqual(['robot-a', 'robot-b']);
      expect(walk(path.join(dataDir, 'files'))).toEqual([path.join('robot-a', 'logs', 'notes.bin')]);
      expect(walk(path.join(dataDir, 'blobs'))).toEqual([]);
      const packA = fs.statSync(path.join(dataDir, 'packs', packs[0]!)).size;
      expect(packA).toBe(a.reduce((n, c) => n + c.bytes.length, 0));

      // Records name their pack and a distinct offset; bytes come back exactly.
      const offsets = new Set<number>();
      for (const [c, part] of [...a.map((c) => [c, 'robot-a'] as const), ...b.map((c) => [c, 'robot-b'] as const)]) {
        const r = (await s.get(part, c.id))!;
        expect(r.path.startsWith(`packs/${part}/`)).toBe(true);
        expect(typeof r.offset).toBe('number');
        if (part === 'robot-a') offsets.add(r.offset!);
        expect(Buffer.from(await s.readBytes(r)).equals(c.bytes)).toBe(true);
      }
      expect(offsets.size).toBe(a.length);
      const notes = (await s.get('robot-a', arbitrary.id))!;
      expect(notes.offset).toBeUndefined();
      expect(Buffer.from(await s.readBytes(notes)).equals(arbitrary.bytes)).toBe(true);

      // The same files again: ALREADY_HAVE, no new pack.
      const again = await commitTogether(s, a.slice(0, 3).map((c) => ({ c, part: 'robot-a' })));
      expect(again.map((r) => r.status)).toEqual(['already_have', 'already_have', 'already_have']);
      expect(walk(path.join(dataDir, 'packs'))).toEqual(packs);
    } finally {
      await s.close();
    }

    // The export reads every reading out of the packs.
    const rows = await collect(exportReadings(dataDir));
    expect(rows.filter((r) => r.resource.startsWith('a')).length).toBe(Array.from({ length: 20 }, (_, i) => 5 + i).reduce((x, y) => x + y, 0));
    expect(rows.filter((r) => r.resource.startsWith('b')).length).toBe(10);
  });

  it('the UI download of a packed file is that file alone', async () => {
    const dataDir = path.join(dir, 'ui');
    const s = new FileStorage(dataDir);
    const files = Array.from({ length: 3 }, (_, i) => makeCapture({ name: `u${i}`, seqs: Array.from({ length: 10 * (i + 1) }, (_, k) => k) }));
    await commitTogether(s, files.map((c) => ({ c, part: 'robot-u' })));
    const ui = await startIngestUi({ listen: '127.0.0.1:0', storage: s, token: 'pack-test-token' });
    try {
      for (const c of files) {
        const res = await fetch(`${ui.url}/api/download?part=robot-u&file=${encodeURIComponent(c.id)}`, { headers: { 'x-edgecap-token': 'pack-test-token' } });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-length')).toBe(String(c.bytes.length));
        expect(Buffer.from(await res.arrayBuffer()).equals(c.bytes)).toBe(true);
      }
      // The pack damaged on disk (cut short): the last file's download is an error, not a hang.
      const last = (await s.get('robot-u', files[2]!.id))!;
      fs.truncateSync(path.join(dataDir, last.path), last.offset! + 10);
      const cut = await fetch(`${ui.url}/api/download?part=robot-u&file=${encodeURIComponent(files[2]!.id)}`, { headers: { 'x-edgecap-token': 'pack-test-token' } });
      expect(cut.status).toBe(500);
      await expect(s.readBytes(last)).rejects.toThrow(/ends before file/);
    } finally {
      await ui.close();
      await s.close();
    }
  });

  it('recovery removes a pack no record names and keeps the others', async () => {
    const dataDir = path.join(dir, 'recover');
    let s = new FileStorage(dataDir);
    const kept = makeCapture({ name: 'kept', seqs: [1, 2, 3] });
    await commitTogether(s, [{ c: kept, part: 'robot-r' }]);
    await s.close();
    // The crash window: a pack written and fsynced, the index put never made.
    const orphan = path.join(dataDir, 'packs', 'robot-r', '2026-01-01T00', 'dead.pack');
    fs.mkdirSync(path.dirname(orphan), { recursive: true });
    fs.writeFileSync(orphan, makeCapture({ name: 'lost', seqs: [9] }).bytes);
    s = new FileStorage(dataDir);
    try {
      expect(s.recover()).toEqual({ staged: 0, orphans: 1 });
      expect(fs.existsSync(orphan)).toBe(false);
      expect(Buffer.from(await s.readBytes((await s.get('robot-r', kept.id))!)).equals(kept.bytes)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('an index of a newer layout is refused, naming the file', async () => {
    const dataDir = path.join(dir, 'newer');
    await new FileStorage(dataDir).close();
    const env = open({ path: path.join(dataDir, 'index.lmdb'), maxDbs: 6, compression: false });
    await env.openDB({ name: 'meta' }).put('schema', 99);
    await env.close();
    expect(() => new FileStorage(dataDir)).toThrow(/index\.lmdb has index layout 99; this ingest reads up to 3/);
  });
});
