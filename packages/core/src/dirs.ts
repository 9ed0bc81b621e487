/**
 * Folder durability. POSIX makes a new name durable only when the folder holding it is fsynced
 * (ext4's ordered journal happens to cover it; other filesystems need not), so a store that
 * makes folders and files must fsync their parents before it counts on them.
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * The folders whose entries a recursive mkdir of `dir` changed, given what it returned (`first`,
 * the topmost folder it made; undefined: none): dirname(first) … dirname(dir), never above `root`.
 */
export function parentsChangedByMkdir(dir: string, first: string | undefined, root: string): string[] {
  if (first === undefined) return [];
  const out: string[] = [];
  for (let d = dir; d.startsWith(root) && d !== root; d = path.dirname(d)) {
    out.push(path.dirname(d));
    if (d === first) break;
  }
  return out;
}

/** fsync a folder (its entries), off the calling thread (libuv pool). */
export function fsyncDir(dir: string, cb: (err: NodeJS.ErrnoException | null) => void): void {
  fs.open(dir, 'r', (e, fd) => {
    if (e) return cb(e);
    fs.fsync(fd, (e2) => fs.close(fd, () => cb(e2)));
  });
}

/** fsync a folder (its entries), on the calling thread. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
