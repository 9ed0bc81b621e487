import fs from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { EdgecapError, ErrorCodes } from './errors.js';

/** More than a new LMDB environment writes before it can report a failure: its lock file and first pages. */
const NEW_ENV_BYTES = 64 * 1024;

/**
 * Call before lmdb-js `open(dataFile)`. lmdb-js 3.x kills the process (SIGBUS or SIGSEGV) when
 * it creates an environment on a full filesystem: the lock file is written through a mapping,
 * and a failed first write of the data file is not reported as an error. So before a new
 * environment is created, its space is written and freed again: a full disk is then an error
 * naming the file, and the process lives. An existing environment (data file not empty, lock
 * file there) is left alone: it reports ENOSPC on its writes as errors.
 */
export function ensureRoomForNewLmdb(dataFile: string): void {
  let size = 0;
  try {
    size = fs.statSync(dataFile).size;
  } catch {
    // not created yet
  }
  // the lock file is recreated through a mapping too
  if (size > 0 && fs.existsSync(`${dataFile}-lock`)) return;
  const probe = path.join(path.dirname(dataFile), `.space-probe-${process.pid}-${threadId}`);
  try {
    fs.writeFileSync(probe, Buffer.alloc(NEW_ENV_BYTES));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw e;
    throw new EdgecapError(ErrorCodes.STATE, `no space to create ${dataFile} (${code}) in ${path.dirname(dataFile)}: free space on its filesystem or move the directory`, {
      details: { file: dataFile, errno: code },
    });
  } finally {
    fs.rmSync(probe, { force: true });
  }
}
