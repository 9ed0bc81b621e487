/**
 * piscina worker entry: one task = one upload attempt of one file (see upload.ts), or of a
 * batch of small files in one call (batch.ts).
 * Runs in a worker thread; returns plain data so nothing class-shaped crosses threads.
 */
import os from 'node:os';
import { isBatchTask, uploadBatch, type BatchOutcome, type BatchTask } from './batch.js';
import { uploaderFor } from './uploader.js';
import { freshChannels, type UploadOutcome, type UploadTask } from './upload.js';

let reniced = false;

/**
 * Capture first: lower this sync thread's CPU priority once, `increment` below the process's
 * (relative, so a process already run under `nice` still has its capture threads ahead of its
 * sync threads). On Linux a thread has its own nice value and setpriority(0) names the calling
 * thread, so capture's threads keep theirs; elsewhere it would renice the whole process, so
 * there the pool size is the only cap.
 */
export function reniceThread(increment: number | undefined): void {
  if (reniced || !increment || increment <= 0 || process.platform !== 'linux') return;
  reniced = true;
  try {
    const now = os.getPriority(0);
    if (now < 19) os.setPriority(0, Math.min(19, now + increment));
  } catch {
    // not allowed here (a seccomp'd container): the thread runs at the process's priority
  }
}

export default async function run(task: UploadTask | BatchTask): Promise<UploadOutcome | BatchOutcome> {
  reniceThread(task.niceIncrement);
  freshChannels(task.channelEpoch);
  if (isBatchTask(task)) {
    try {
      return await uploadBatch(task);
    } catch (e) {
      return { ok: false, kind: 'server', message: `upload batch failed: ${(e as Error).message}` };
    }
  }
  try {
    return await uploaderFor(task).upload(task);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'file', errno: err.code, message: err.message };
  }
}
