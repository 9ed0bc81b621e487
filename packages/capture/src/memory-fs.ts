/**
 * Memory mode (storage: "memory"), writer side: a WriterFs whose "files" are growable buffers.
 *
 * The writer runs unchanged on top of it (same batching, framing, checksums, size/age rotation),
 * so a sealed in-memory file is byte for byte the file the disk mode would have written: same
 * id, header and seq range. Nothing touches the filesystem: mkdir is a no-op, paths are names.
 * The rename .prog → .capture is the seal: the buffer is cut to its length and handed over
 * (take()) to be transferred, not copied, to the main thread's MemoryStore.
 *
 * Bytes of open (unsealed) buffers are published in a shared counter, so the store counts them
 * against the budget too.
 */
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import type { WriterFs } from './writer.js';

interface MemFile {
  path: string;
  buf: Uint8Array;
  len: number;
}

/** Slots of the shared Float64Array: bytes held in open (unsealed) buffers; sealed files posted. */
export const MEM_OPEN_BYTES = 0;
export const MEM_POSTED = 1;

function enoent(p: string): Error {
  return Object.assign(new Error(`no in-memory file ${p}`), { code: 'ENOENT' });
}

export class MemoryFs implements WriterFs {
  private nextFd = 3;
  private readonly byFd = new Map<number, MemFile>();
  private readonly byPath = new Map<string, MemFile>();
  /** Sealed (renamed) buffers waiting for take(). */
  private readonly sealed = new Map<string, Uint8Array>();
  private readonly open: Float64Array;
  private openBytes = 0;

  constructor(openSab: SharedArrayBuffer) {
    this.open = new Float64Array(openSab);
  }

  private account(delta: number): void {
    this.openBytes += delta;
    this.open[MEM_OPEN_BYTES] = this.openBytes;
  }

  openSync(p: string, flags: string): number {
    let f = this.byPath.get(p);
    if (flags.includes('x') && (f || this.sealed.has(p))) throw Object.assign(new Error(`${p} exists`), { code: 'EEXIST' });
    if (!f) {
      if (!flags.includes('x') && !flags.includes('w')) throw enoent(p);
      f = { path: p, buf: new Uint8Array(16 * 1024), len: 0 };
      this.byPath.set(p, f);
      this.account(f.buf.length);
    }
    const fd = this.nextFd++;
    this.byFd.set(fd, f);
    return fd;
  }

  private file(fd: number): MemFile {
    const f = this.byFd.get(fd);
    if (!f) throw Object.assign(new Error(`bad in-memory fd ${fd}`), { code: 'EBADF' });
    return f;
  }

  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const f = this.file(fd);
    const end = position + length;
    if (end > f.buf.length) {
      const n = new Uint8Array(Math.max(end, f.buf.length * 2));
      n.set(f.buf.subarray(0, f.len));
      this.account(n.length - f.buf.length);
      f.buf = n;
    }
    f.buf.set(buf.subarray(offset, offset + length), position);
    if (end > f.len) f.len = end;
    return length;
  }

  fdatasyncSync(fd: number): void {
    this.file(fd);
  }

  closeSync(fd: number): void {
    this.file(fd);
    this.byFd.delete(fd);
  }

  ftruncateSync(fd: number, len: number): void {
    const f = this.file(fd);
    if (len < f.len) f.len = len;
  }

  mkdirSync(): unknown {
    return undefined;
  }

  unlinkSync(p: string): void {
    const f = this.byPath.get(p);
    if (f) {
      this.byPath.delete(p);
      this.account(-f.buf.length);
      return;
    }
    if (!this.sealed.delete(p)) throw enoent(p);
  }

  /** The seal: the buffer, cut to its length, waits under its finished name for take(). */
  renameSync(from: string, to: string): void {
    const f = this.byPath.get(from);
    if (!f) throw enoent(from);
    this.byPath.delete(from);
    this.account(-f.buf.length);
    const ab = f.buf.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
    // ArrayBuffer.prototype.transfer (Node 22+) cuts without copying where it can.
    const bytes = typeof ab.transfer === 'function' ? new Uint8Array(ab.transfer(f.len)) : f.buf.slice(0, f.len);
    this.sealed.set(to, bytes);
  }

  /** The sealed bytes of `p` (once): the caller transfers them to the MemoryStore (counted as posted). */
  take(p: string): Uint8Array {
    const b = this.sealed.get(p);
    if (!b) throw new EdgecapError(ErrorCodes.STATE, `no sealed in-memory file ${p}`);
    this.sealed.delete(p);
    this.open[MEM_POSTED] = this.open[MEM_POSTED]! + 1;
    return b;
  }
}
