import fs from 'node:fs';
import path from 'node:path';
import { EdgecapError, ErrorCodes, FINISHED_EXT, IN_PROGRESS_EXT, type StreamKey } from '@edgecap/core';
import { readCaptureBytes, type CaptureFileSummary } from './reader.js';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

const SAFE = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*$/;

/** Path segments come from config; refuse anything that could escape or hide a folder. */
export function checkPathSegment(field: string, value: string): string {
  if (!SAFE.test(value) || value.includes('..')) {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `${field} "${value}" may only contain letters, digits, _ . - and may not start with . or contain ..`, {
      details: { field },
    });
  }
  return value;
}

/** `<capture_dir>/<kind>/<name>/<method>` */
export function streamDir(captureDir: string, key: StreamKey): string {
  return path.join(captureDir, checkPathSegment('kind', key.kind), checkPathSegment('name', key.name), checkPathSegment('method', key.method));
}

/** `20261125T063500.123456Z` from µs since the epoch: sorts by time as text. */
export function timeStamp(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // 2026-11-25T06:35:00.123Z
  const micros = String(Math.floor(us % 1_000_000)).padStart(6, '0');
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}.${micros}Z`;
}

/** In-progress path for a new file; the unique id makes names collision-free within a µs. */
export function inProgressPath(captureDir: string, key: StreamKey, startUs: number, id: string): string {
  return path.join(streamDir(captureDir, key), `${timeStamp(startUs)}-${id}${IN_PROGRESS_EXT}`);
}

export function finishedPathOf(progPath: string): string {
  if (!progPath.endsWith(IN_PROGRESS_EXT)) throw new EdgecapError(ErrorCodes.STATE, `not an in-progress file: ${progPath}`);
  return progPath.slice(0, -IN_PROGRESS_EXT.length) + FINISHED_EXT;
}

export const isFinishedCapture = (p: string): boolean => p.endsWith(FINISHED_EXT);
export const isInProgressCapture = (p: string): boolean => p.endsWith(IN_PROGRESS_EXT);

/** Read and decode a capture file from disk (never throws for bad content). */
export function readCaptureFile(file: string): CaptureFileSummary {
  return readCaptureBytes(fs.readFileSync(file), file);
}

export interface WalkOptions {
  /** Only files whose name ends so (default: every regular file). */
  ending?: string;
  /** Pass over entries whose name starts with a dot (edgecap's state dir, editors' temp files). */
  skipDotEntries?: boolean;
  /** Paths neither entered nor returned. */
  skip?: ReadonlySet<string>;
}

/**
 * Regular files under `dir`, depth first, each folder's entries in name order (capture file
 * names start with their time, so a stream's files come oldest first). Lazy: it holds one
 * folder listing per level, so memory does not grow with the number of files walked.
 * Symlinks are neither followed nor returned; a folder that vanished or cannot be read is
 * passed over.
 */
export function* walkFiles(dir: string, o: WalkOptions = {}): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return;
    throw e;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (o.skipDotEntries && e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (o.skip?.has(p)) continue;
    // Dirent types have lstat semantics: a symlink is neither a directory nor a file.
    if (e.isDirectory()) yield* walkFiles(p, o);
    else if (e.isFile() && (o.ending === undefined || e.name.endsWith(o.ending))) yield p;
  }
}

/** Every file with one ending under root, sorted; dot-folders (edgecap state) are skipped. */
export function listFiles(root: string, ending: string): string[] {
  return [...walkFiles(root, { ending, skipDotEntries: true })].sort();
}

export interface RecoveryResult {
  file: string;
  /** Finished path, or undefined when the file held nothing worth keeping and was removed. */
  finished: string | undefined;
  readings: number;
  lastSeq: number | undefined;
  key: StreamKey | undefined;
  cutBytes: number;
  problems: number;
}

/** A stream's next seq, as start-up recovery must persist it before any rename. */
export interface RecoveredSeq {
  key: StreamKey;
  next: number;
}

/**
 * First half of recovering one orphaned `.prog`: verify frame by frame, cut a torn tail at the
 * last good frame, fdatasync. It is NOT renamed yet (`finished` names where it will go): the
 * caller persists the seqs first, exactly as the writer does before each rename. A file with no
 * valid header (crash before the first write completed) holds no readings and is removed.
 */
export function prepareInProgress(file: string): RecoveryResult {
  const bytes = fs.readFileSync(file);
  const s = readCaptureBytes(bytes, file);
  const base = { file, readings: s.readings.length, problems: s.problems.length, cutBytes: bytes.length - s.goodEnd };
  if (!s.header) {
    fs.rmSync(file, { force: true });
    return { ...base, finished: undefined, lastSeq: undefined, key: undefined };
  }
  const fd = fs.openSync(file, 'r+');
  try {
    if (s.goodEnd < bytes.length) fs.ftruncateSync(fd, s.goodEnd);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // The highest seq, not the last: the stream continues past everything the file holds.
  let maxSeq = -1;
  for (const r of s.readings) if (r.seq > maxSeq) maxSeq = r.seq;
  for (const g of s.gaps) if (g.to_seq > maxSeq) maxSeq = g.to_seq;
  return {
    ...base,
    finished: finishedPathOf(file),
    lastSeq: maxSeq >= 0 ? maxSeq : undefined,
    key: { kind: s.header.kind, name: s.header.name, method: s.header.method },
  };
}

/** Per stream, the seq after the highest one the recovered files hold. */
export function recoveredSeqs(results: readonly RecoveryResult[]): RecoveredSeq[] {
  const out = new Map<string, RecoveredSeq>();
  for (const r of results) {
    if (!r.key || r.lastSeq === undefined) continue;
    const k = `${r.key.kind}/${r.key.name}/${r.key.method}`;
    const cur = out.get(k);
    if (!cur || cur.next < r.lastSeq + 1) out.set(k, { key: r.key, next: r.lastSeq + 1 });
  }
  return [...out.values()];
}

/**
 * Start-up recovery of one orphaned `.prog` with nothing to persist first (tests, tools):
 * prepareInProgress, then the rename to `.capture`.
 */
export function recoverInProgress(file: string): RecoveryResult {
  const r = prepareInProgress(file);
  if (r.finished) fs.renameSync(file, r.finished);
  return r;
}

/**
 * Recover every `.prog` under the capture dir (call when no writer runs: at process start, or
 * after the writer thread died; never on reconfigure). In the writer's order: every file is cut
 * and synced, then `persist` stores each stream's next seq (one call, before any rename), then
 * the files are renamed. When `persist` throws nothing is renamed: the files stay `.prog` (their
 * seqs are read again by the next recovery) and the error propagates.
 */
export function recoverCaptureDir(captureDir: string, persist?: (seqs: RecoveredSeq[]) => void): RecoveryResult[] {
  const results = listFiles(captureDir, IN_PROGRESS_EXT).map(prepareInProgress);
  const seqs = recoveredSeqs(results);
  if (persist && seqs.length > 0) persist(seqs);
  for (const r of results) if (r.finished) fs.renameSync(r.file, r.finished);
  return results;
}
