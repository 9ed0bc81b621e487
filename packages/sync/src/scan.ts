/**
 * What a sync round looks at. Pure file-system walks, no state, lazy (a round holds a few
 * candidates at a time however large the backlog):
 *  - capture files: finished `*.capture` under the capture dir (never `.prog`, never dot-folders
 *    such as the state dir);
 *  - arbitrary files: every regular file under each additional_sync_paths root, recursively,
 *    older than `minAgeMs`. Symlinks are never followed (so nothing outside a root is read),
 *    and the state dir is skipped if it lives under a root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FINISHED_EXT } from '@edgecap/core';
import { walkFiles } from '@edgecap/format';

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

/** lstat that treats a vanished file (janitor, a concurrent round) as not there. */
function regularFile(p: string): fs.Stats | undefined {
  try {
    const st = fs.lstatSync(p);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

export function* captureCandidates(captureDir: string): Generator<Candidate> {
  for (const p of walkFiles(captureDir, { ending: FINISHED_EXT, skipDotEntries: true })) {
    const st = regularFile(p);
    if (st) yield { path: p, source: 'capture', root: captureDir, rel: toRel(captureDir, p), size: st.size, mtimeMs: st.mtimeMs };
  }
}

export function* additionalCandidates(root: string, minAgeMs: number, now: number, skip: readonly string[] = []): Generator<Candidate> {
  const absRoot = path.resolve(root);
  for (const p of walkFiles(absRoot, { skip: new Set(skip.map((s) => path.resolve(s))) })) {
    const st = regularFile(p);
    if (st && now - st.mtimeMs >= minAgeMs) yield { path: p, source: 'additional', root: absRoot, rel: toRel(absRoot, p), size: st.size, mtimeMs: st.mtimeMs };
  }
}

/** Every finished capture file, as a list (tools and benchmarks; a sync round walks lazily). */
export function scanCaptureDir(captureDir: string): Candidate[] {
  return [...captureCandidates(captureDir)];
}
