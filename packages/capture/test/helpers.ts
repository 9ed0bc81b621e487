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

/**
 * Every seq of every stream, from `from(stream)` to its nextSeq, is either on disk (exactly
 * once) or explained by a gap (a GAP frame in a file, or one recorded in the state store) —
 * never both, never neither. No .prog is left. Returns the reasons of the gaps, per stream.
 */
export function expectAccounted(
  dir: string,
  store: StateStore,
  stats: readonly { kind: string; resource: string; method: string; nextSeq: number }[],
  from: (key: string) => number = () => 0,
): Map<string, Set<string>> {
  const disk = readBack(dir);
  if (readBack(dir, '.prog').size !== 0) throw new Error('.prog files left behind');
  const stored = store.unreportedGaps();
  const reasons = new Map<string, Set<string>>();
  for (const s of stats) {
    const k = `${s.kind}/${s.resource}/${s.method}`;
    const d = disk.get(k);
    const seqs = d?.readings.map((r) => r.seq) ?? [];
    const onDisk = new Set(seqs);
    if (onDisk.size !== seqs.length) throw new Error(`${k}: a seq is on disk twice`);
    const explained = new Set<number>();
    const rs = new Set<string>();
    for (const g of [...(d?.gaps ?? []), ...stored.filter((g) => `${g.kind}/${g.name}/${g.method}` === k)]) {
      rs.add(g.reason);
      for (let q = g.from_seq; q <= g.to_seq; q++) {
        if (onDisk.has(q)) throw new Error(`${k}: seq ${q} is on disk and explained by a ${g.reason} gap`);
        explained.add(q);
      }
    }
    for (let q = from(k); q < s.nextSeq; q++) if (!onDisk.has(q) && !explained.has(q)) throw new Error(`${k}: seq ${q} is neither on disk nor explained (nextSeq ${s.nextSeq})`);
    for (const q of seqs) if (q >= s.nextSeq) throw new Error(`${k}: seq ${q} on disk was never numbered`);
    reasons.set(k, rs);
  }
  return reasons;
}
