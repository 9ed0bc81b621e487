/**
 * `<stateDir>/failed/`: where files with a verdict go (the server rejected their bytes, or they
 * could not be read locally maxFileAttempts times), each with a `.reason` sidecar naming its
 * source, and from where `edgecap sync --retry-failed` moves them back. Only verdicts land here:
 * the engine (settling an upload) decides that; this part only moves files and counts them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { failedEntries, FAILED_DIR_NAME, logger } from '@edgecap/core';
import type { Candidate } from './scan.js';

const log = logger('sync');

export interface RetryFailedResult {
  /** Files moved back to where they came from (pending again). */
  moved: number;
  /** Files left in failed/, and why. */
  errors: string[];
}

/** `p` is `dir` or below it. */
function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Rename, or copy and remove across file systems. */
function move(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    fs.copyFileSync(from, to);
    fs.rmSync(from);
  }
}

export class FailedDir {
  readonly dir: string;
  /** Files in failed/ now (counted at start, then kept up to date by put and moveBack). */
  onDisk = 0;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, FAILED_DIR_NAME);
    for (const _ of failedEntries(this.dir)) this.onDisk++;
  }

  /**
   * Move `c` to `failed/<rel>` (capture) or `failed/additional/<root name>/<rel>`, plus
   * `<file>.reason`; a taken name gets `.1`, `.2`, .... Returns where it went (a move that
   * failed is logged: the file stays where it was).
   */
  put(c: Candidate, reason: string, nowMs: number): string {
    let dest = c.source === 'capture' ? path.join(this.dir, ...c.rel.split('/')) : path.join(this.dir, 'additional', path.basename(c.root), ...c.rel.split('/'));
    for (let i = 1; fs.existsSync(dest); i++) dest = `${dest.replace(/\.\d+$/, '')}.${i}`;
    try {
      fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
      move(c.path, dest);
      this.onDisk++;
      fs.writeFileSync(`${dest}.reason`, `${reason}\nsource: ${c.path}\ntime: ${new Date(nowMs).toISOString()}\n`);
    } catch (e) {
      log.error({ err: e, file: c.path }, 'could not move failed file');
    }
    return dest;
  }

  /**
   * Move every file back where it came from (the `source:` line of its `.reason`; a capture
   * file without one: its path under failed/), calling `reopened(src)` for each. A file whose
   * place is taken, or that would land outside `roots` (the capture dir and
   * additional_sync_paths), stays.
   */
  moveBack(roots: string[], captureDir: string, reopened: (src: string) => void): RetryFailedResult {
    const within = roots.map((r) => path.resolve(r));
    const out: RetryFailedResult = { moved: 0, errors: [] };
    for (const f of [...failedEntries(this.dir)]) {
      const reasonFile = `${f}.reason`;
      let src: string | undefined;
      try {
        src = /^source: (.+)$/m.exec(fs.readFileSync(reasonFile, 'utf8'))?.[1];
      } catch {
        src = undefined;
      }
      if (!src) {
        const rel = path.relative(this.dir, f);
        if (!rel.startsWith(`additional${path.sep}`)) src = path.join(captureDir, rel);
      }
      if (!src || !within.some((r) => isInside(path.resolve(src!), r))) {
        out.errors.push(`${f}: cannot tell where it came from (or it is no longer under a synced path); left in failed/`);
        continue;
      }
      src = path.resolve(src);
      if (fs.existsSync(src)) {
        out.errors.push(`${f}: ${src} exists again; left in failed/`);
        continue;
      }
      try {
        fs.mkdirSync(path.dirname(src), { recursive: true });
        move(f, src);
      } catch (e) {
        out.errors.push(`${f}: could not move it back to ${src}: ${(e as Error).message}`);
        continue;
      }
      fs.rmSync(reasonFile, { force: true });
      reopened(src);
      this.onDisk = Math.max(0, this.onDisk - 1);
      out.moved++;
      log.info({ file: src, from: f }, 'failed file moved back for another try');
    }
    pruneEmptyDirs(this.dir);
    return out;
  }
}

/** Remove empty folders under `dir` (left by moveBack), not `dir` itself. */
function pruneEmptyDirs(dir: string): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = path.join(dir, e.name);
    pruneEmptyDirs(p);
    try {
      fs.rmdirSync(p);
    } catch {
      // not empty
    }
  }
}
