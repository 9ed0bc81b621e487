import fs from 'node:fs';
import path from 'node:path';
import { FINISHED_EXT, STATE_DIR_NAME } from '@edgecap/core';

/**
 * One walk of the capture dir, never following symlinks (lstat semantics via Dirent):
 *
 *   <capture_dir>/
 *     .edgecap/            state dir: neither counted as a candidate nor entered
 *     .anything/           dot entries skipped (edgecap's own or hidden)
 *     kind/name/method/
 *       *.capture          regular file        -> candidate (after a realpath check)
 *       *.prog             being written       -> counted in bytes, never a candidate
 *       link -> elsewhere  symlink             -> neither counted nor followed
 */
export interface Candidate {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface ScanResult {
  /** Bytes of regular files under the capture dir (logical size, state dir included). */
  totalBytes: number;
  /** Finished capture files eligible for deletion, oldest first. */
  candidates: Candidate[];
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function dirBytes(dir: string): number {
  let n = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) n += dirBytes(p);
      else if (e.isFile()) n += fs.lstatSync(p).size;
    } catch {
      /* vanished */
    }
  }
  return n;
}

/** Oldest first: mtime, then file name (names start with the capture start time), then path. */
export function byAge(a: Candidate, b: Candidate): number {
  if (a.mtimeMs !== b.mtimeMs) return a.mtimeMs - b.mtimeMs;
  const an = path.basename(a.path);
  const bn = path.basename(b.path);
  if (an !== bn) return an < bn ? -1 : 1;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

export function scanCaptureDir(captureDir: string, excludePaths: readonly string[] = []): ScanResult {
  let root: string;
  try {
    root = fs.realpathSync(captureDir);
  } catch {
    return { totalBytes: 0, candidates: [] };
  }
  const excluded = excludePaths.map((p) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  });
  const out: Candidate[] = [];
  let total = 0;
  // Paths are reported under the capture dir as configured (the key the sync worker uses in
  // LMDB); containment is checked on the realpath.
  const base = path.resolve(captureDir);
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.name.startsWith('.')) {
        // The state dir and hidden entries: count real bytes, never candidates.
        if (dir === base && e.name === STATE_DIR_NAME && e.isDirectory()) total += dirBytes(p);
        continue;
      }
      if (e.isSymbolicLink()) continue;
      if (e.isDirectory()) {
        walk(p);
        continue;
      }
      if (!e.isFile()) continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (!st.isFile()) continue;
      total += st.size;
      if (!e.name.endsWith(FINISHED_EXT)) continue;
      let real: string;
      try {
        real = fs.realpathSync(p);
      } catch {
        continue;
      }
      // Exclusions are realpaths: compare the file's realpath too (a symlinked parent of the
      // capture dir must not hide an additional_sync_paths file from the check).
      if (excluded.some((x) => x === real || inside(x, real))) continue;
      if (!inside(root, real) || inside(path.join(root, STATE_DIR_NAME), real)) continue;
      out.push({ path: p, size: st.size, mtimeMs: st.mtimeMs });
    }
  };
  walk(base);
  out.sort(byAge);
  return { totalBytes: total, candidates: out };
}

/** Indices 0, n, 2n, ... : the 1st, (n+1)th, (2n+1)th ... oldest files. */
export function everyNth<T>(items: readonly T[], n: number): T[] {
  const step = Math.max(1, Math.floor(n));
  const out: T[] = [];
  for (let i = 0; i < items.length; i += step) out.push(items[i]!);
  return out;
}
