import fs from 'node:fs';
import path from 'node:path';
import { FAILED_DIR_NAME } from './constants.js';

/**
 * `<stateDir>/failed/`, read with fs only: the CLI's `status` and the library's export of it
 * must not load sync's gRPC stack to list a folder.
 */
/** Files in a failed/ tree (not their `.reason` sidecars). */
export function* failedEntries(dir: string): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* failedEntries(p);
    else if (e.isFile() && (!e.name.endsWith('.reason') || fs.existsSync(`${p}.reason`))) yield p;
  }
}

/** What sits in `<stateDir>/failed/`: each file with the reason its `.reason` sidecar gives. */
export function listFailed(stateDir: string): { file: string; reason: string }[] {
  const out: { file: string; reason: string }[] = [];
  for (const f of failedEntries(path.join(stateDir, FAILED_DIR_NAME))) {
    let reason = '';
    try {
      reason = fs.readFileSync(`${f}.reason`, 'utf8').split('\n')[0] ?? '';
    } catch {
      /* no sidecar */
    }
    out.push({ file: f, reason });
  }
  return out;
}
