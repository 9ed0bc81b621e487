import fs from 'node:fs';
import path from 'node:path';
import { FrameEncoder, encodeFileStart, streamDir } from '@edgecap/format';

export interface MadeFile {
  path: string;
  id: string;
  from: number;
  to: number;
  size: number;
}

/**
 * Write a real finished capture file: header + `count` readings with seqs from `from`,
 * each carrying `pad` bytes of data; mtime set to `mtimeSec` so age order is controlled.
 */
export function makeCapture(
  captureDir: string,
  o: { name?: string; from: number; count: number; pad?: number; mtimeSec: number; ext?: string; fileName?: string; skipSeqs?: number[]; gap?: [number, number] },
): MadeFile {
  const key = { kind: 'sensor', name: o.name ?? 'temp', method: 'Readings' };
  const dir = streamDir(captureDir, key);
  fs.mkdirSync(dir, { recursive: true });
  const start = encodeFileStart({ ...key, type: 'tabular', tags: [], start_us: o.mtimeSec * 1_000_000 });
  const enc = new FrameEncoder();
  const parts: Uint8Array[] = [start.bytes];
  const payload = 'x'.repeat(o.pad ?? 100);
  let last = o.from;
  for (let i = 0; i < o.count; i++) {
    const seq = o.from + i;
    if (o.skipSeqs?.includes(seq)) continue;
    const buf = new Uint8Array(payload.length + 64);
    const n = enc.reading(buf, 0, seq, 1, 2, { v: seq, p: payload });
    parts.push(buf.slice(0, n));
    last = seq;
  }
  if (o.gap) parts.push(enc.gap(o.gap[0], o.gap[1], 'ring_full', 5));
  const file = path.join(dir, o.fileName ?? `${String(o.mtimeSec).padStart(12, '0')}-${start.header.id}${o.ext ?? '.capture'}`);
  fs.writeFileSync(file, Buffer.concat(parts));
  fs.utimesSync(file, o.mtimeSec, o.mtimeSec);
  return { path: file, id: start.header.id, from: o.from, to: last, size: fs.statSync(file).size };
}

/** Sum of regular file sizes under dir (no symlinks followed). */
export function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

export function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
