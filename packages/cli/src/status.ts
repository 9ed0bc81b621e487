import fs from 'node:fs';
import { applyConfigLogLevel, FINISHED_EXT, IN_PROGRESS_EXT } from '@edgecap/core';
import { listFiles } from '@edgecap/format';
import { openStateStore, defaultStateDir } from '@edgecap/store';
import { listFailed, loadConfigFile } from '@edgecap/datamanager';
import { fmtBytes, table, UsageError, type Out } from './util.js';

/**
 * `edgecap status DIR` or `edgecap status --config FILE`: what is on disk, what is pending, the
 * checkpoints. DIR is a capture folder with its state in the default place (DIR/.edgecap); a
 * state folder that does not exist is reported, not created.
 */
export async function status(target: { configFile: string } | { captureDir: string }, out: Out): Promise<number> {
  let c: { capture_dir: string; state_dir?: string | undefined };
  if ('configFile' in target) {
    const cfg = loadConfigFile(target.configFile);
    applyConfigLogLevel(cfg.log_level);
    c = cfg;
  } else {
    if (!fs.statSync(target.captureDir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError('DIR', `${target.captureDir} is not a folder`);
    c = { capture_dir: target.captureDir };
  }
  const rel = (p: string): string => p.slice(c.capture_dir.length + 1);
  const perStream = new Map<string, { finished: number; prog: number; bytes: number }>();
  for (const [ext, field] of [[FINISHED_EXT, 'finished'], [IN_PROGRESS_EXT, 'prog']] as const) {
    for (const f of listFiles(c.capture_dir, ext)) {
      // a live capture renames and deletes files under us: one gone since the listing is skipped
      const st = fs.statSync(f, { throwIfNoEntry: false });
      if (!st) continue;
      const stream = rel(f).split('/').slice(0, 3).join('/');
      const e = perStream.get(stream) ?? { finished: 0, prog: 0, bytes: 0 };
      e[field]++;
      e.bytes += st.size;
      perStream.set(stream, e);
    }
  }
  out.write(`capture dir: ${c.capture_dir}\n\n`);
  out.write(table(['stream', 'finished files', 'in progress', 'bytes'], [...perStream].map(([k, v]) => [k, v.finished, v.prog, fmtBytes(v.bytes)])) + '\n\n');
  const stateDir = c.state_dir ?? defaultStateDir(c.capture_dir);
  if (!fs.existsSync(stateDir)) {
    out.write(`no edgecap state at ${stateDir} (nothing captured here yet, or its config sets state_dir: use --config)\n`);
    return 0;
  }
  const store = openStateStore(stateDir);
  try {
    const counts = store.fileStatusCounts();
    out.write(table(['checkpoint status', 'files'], [...counts]) + '\n');
    const synced = store.syncedTotals();
    out.write(`synced and deleted so far: ${synced.files} files, ${fmtBytes(synced.bytes)}\n\n`);
    const seqs = store.nextSeqs();
    out.write(table(['stream', 'next seq'], seqs) + '\n');
    const gaps = store.unreportedGaps();
    if (gaps.length) out.write(`\n${gaps.length} explained gap(s) not yet reported to the ingest server\n`);
    // failed/: files the ingest (or the local reader) judged bad, each with its reason
    const failed = listFailed(stateDir);
    out.write(`\nfailed (not retried until \`edgecap sync --retry-failed\`): ${failed.length} file(s)\n`);
    if (failed.length) out.write(table(['file', 'reason'], failed.map((f) => [f.file.slice(stateDir.length + 1), f.reason])) + '\n');
  } finally {
    await store.close();
  }
  return 0;
}
