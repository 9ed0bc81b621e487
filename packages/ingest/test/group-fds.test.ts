// A group commit opens a bounded number of files and folders at once, whatever its size: under
// a small fd limit (an ingest started with `ulimit -n 100`, as test/stampede.test.ts runs one) a
// group of 16 parts' small capture files (a pack and two folders each to fsync) and 200 small
// arbitrary files (each written in place) commits. Unbounded, it failed EMFILE as a whole; its
// folders went back to the next, larger group, and under a stampede no group committed again.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir } from './helpers.js';

const FIXTURE = path.join(import.meta.dirname, 'fixtures/group-fds.mjs');

describe('group commit under a small fd limit', () => {
  const dir = tmpDir('group-fds');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('16 parts × 25 small files (half capture files into packs, half arbitrary files) commit as one group with ulimit -n 100; every file reads back', () => {
    const dataDir = path.join(dir, 'data');
    const r = spawnSync('bash', ['-c', `ulimit -n 100 && exec '${process.execPath}' '${FIXTURE}' '${dataDir}' 16 400`], { encoding: 'utf8', env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' }, timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { error?: string; statuses?: string[]; readBack?: number };
    expect(out.error).toBeUndefined();
    expect(out.statuses).toHaveLength(400);
    expect(new Set(out.statuses)).toEqual(new Set(['committed']));
    expect(out.readBack).toBe(400);
  }, 90_000);
});
