import fs from 'node:fs';
import { FILE_MAGIC, FRAME_HEADER_BYTES, readRecords, readU32, type CaptureFileHeader } from '@edgecap/format';
import { FrameOff } from '@edgecap/format';
import type { FileMetadata } from '@edgecap/proto';

/** A capture file's upload metadata, from its header: the same in disk and memory mode. */
export function captureMeta(h: Pick<CaptureFileHeader, 'kind' | 'name' | 'method' | 'part_id'> & { type: string; tags?: readonly string[] }, fileId: string, fileName: string, o: { partId: string; tags: readonly string[] }): Omit<FileMetadata, 'size' | 'sha256' | 'mtime_ms'> {
  return {
    file_id: fileId,
    part_id: h.part_id || o.partId,
    resource_kind: h.kind,
    resource_name: h.name,
    method: h.method,
    data_type: h.type === 'binary' ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR',
    tags: [...new Set([...o.tags, ...(h.tags ?? [])])],
    file_name: fileName,
    source: 'capture',
  };
}

/**
 * Read just the header frame of a capture file (magic + first frame), not the whole file.
 * Returns the header or a reason why the file has no usable header.
 */
export function readCaptureHeader(file: string): { header: CaptureFileHeader } | { reason: string; transient?: boolean } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    // An I/O problem (vanished, EMFILE, EIO) says nothing about the file's content: retry later.
    return { reason: `cannot open: ${(e as Error).message}`, transient: true };
  }
  try {
    const pre = Buffer.alloc(FILE_MAGIC.length + FRAME_HEADER_BYTES);
    const n = fs.readSync(fd, pre, 0, pre.length, 0);
    if (n < FILE_MAGIC.length || !FILE_MAGIC.every((b, i) => pre[i] === b)) return { reason: 'not an edgecap capture file (bad magic)' };
    if (n < pre.length) return { reason: 'file too short for a capture header' };
    const len = readU32(pre, FILE_MAGIC.length + FrameOff.length);
    if (len > 16 * 1024 * 1024) return { reason: `header frame length ${len} is implausible` };
    const all = Buffer.alloc(pre.length + len);
    pre.copy(all);
    const m = fs.readSync(fd, all, pre.length, len, pre.length);
    if (m < len) return { reason: 'header frame cut off' };
    for (const ev of readRecords(all, file)) {
      if (ev.kind === 'header') return { header: ev.header };
      if (ev.kind === 'problem') return { reason: ev.problem.reason };
    }
    return { reason: 'file has no valid header frame' };
  } finally {
    fs.closeSync(fd);
  }
}
