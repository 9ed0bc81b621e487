/**
 * What a sync round looks at. Pure file-system walks, no state:
 *  - capture files: finished `*.capture` under the capture dir (never `.prog`, never dot-folders
 *    such as the state dir);
 *  - arbitrary files: every regular file under each additional_sync_paths root, recursively,
 *    older than `minAgeMs`. Symlinks are never followed (so nothing outside a root is read),
 *    and the state dir is skipped if it lives under a root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FINISHED_EXT } from '@edgecap/core';
import { listFiles } from '@edgecap/format';

export interface Candidate {
  path: string;
  source: 'capture' | 'additional';
  /** The root it was found under (capture dir or the additional_sync_paths entry). */
  root: string;
  /** '/'-separated path relative to root. */
  rel: string;
  size: number;
  mtimeMs: number;
}

function toRel(root: string, p: string): string {
  return path.relative(root, p).split(path.sep).join('/');
}

export function scanCaptureDir(captureDir: string): Candidate[] {
  const out: Candidate[] = [];
  for (const p of listFiles(captureDir, FINISHED_EXT)) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue; // vanished (janitor, concurrent round)
    }
    if (!st.isFile()) continue;
    out.push({ path: p, source: 'capture', root: captureDir, rel: toRel(captureDir, p), size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

export function scanAdditional(root: string, minAgeMs: number, now: number, skip: readonly string[] = []): { files: Candidate[]; tooYoung: number } {
  const files: Candidate[] = [];
  let tooYoung = 0;
  const skipSet = new Set(skip.map((s) => path.resolve(s)));
  const absRoot = path.resolve(root);
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return;
      throw e;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (skipSet.has(p)) continue;
      // Dirent types come from lstat semantics: a symlink is neither isFile nor isDirectory.
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        let st: fs.Stats;
        try {
          st = fs.lstatSync(p);
        } catch {
          continue;
        }
        if (!st.isFile()) continue;
        if (now - st.mtimeMs < minAgeMs) {
          tooYoung++;
          continue;
        }
        files.push({ path: p, source: 'additional', root: absRoot, rel: toRel(absRoot, p), size: st.size, mtimeMs: st.mtimeMs });
      }
    }
  };
  walk(absRoot);
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, tooYoung };
}
