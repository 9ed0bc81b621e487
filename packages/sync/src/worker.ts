/**
 * piscina worker entry: one task = one upload attempt of one file (see upload.ts).
 * Runs in a worker thread; returns plain data so nothing class-shaped crosses threads.
 */
import { uploadFile, uploadViamTask, type UploadOutcome, type UploadTask } from './upload.js';

export default async function run(task: UploadTask): Promise<UploadOutcome> {
  try {
    return await (task.target.protocol === 'viam' || task.format === 'viam' ? uploadViamTask(task) : uploadFile(task));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, kind: 'file', errno: err.code, message: err.message };
  }
}
