import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listFiles, readCaptureFile, type CaptureFileHeader, type Gap, type Reading } from '@edgecap/format';
import { openStateStore, type StateStore } from '@edgecap/store';

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-${tag}-`));
}

export function newStore(dir: string): StateStore {
  return openStateStore(path.join(dir, '.edgecap'));
}

export interface StreamOnDisk {
  header: CaptureFileHeader;
  readings: Reading[];
  gaps: Gap[];
  files: string[];
}

/** Every finished file under dir, grouped per stream in file-name (time) order; throws on any problem. */
export function readBack(dir: string, ending = '.capture'): Map<string, StreamOnDisk> {
  const out = new Map<string, StreamOnDisk>();
  for (const f of listFiles(dir, ending)) {
    const s = readCaptureFile(f);
    if (s.problems.length) throw new Error(`${f}: ${JSON.stringify(s.problems)}`);
    if (!s.header) throw new Error(`${f}: no header`);
    const k = `${s.header.kind}/${s.header.name}/${s.header.method}`;
    let e = out.get(k);
    if (!e) {
      e = { header: s.header, readings: [], gaps: [], files: [] };
      out.set(k, e);
    }
    e.readings.push(...s.readings);
    e.gaps.push(...s.gaps);
    e.files.push(f);
  }
  return out;
}

export function expectContiguous(readings: Reading[], from: number): void {
  for (let i = 0; i < readings.length; i++) {
    if (readings[i]!.seq !== from + i) throw new Error(`seq ${readings[i]!.seq} at index ${i}, expected ${from + i}`);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
