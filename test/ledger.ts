/**
 * Exact accounting for fault tests. Every reading has an identity (stream, seq). Three ledgers:
 *   flushed  — what was in capture files on disk right before each kill (a SIGKILL loses no
 *              page cache, so these readings must survive), with a digest of the content;
 *   ingested — what the ingest export holds;
 *   produced — what the collectors said they produced (when known).
 * lost = flushed but never ingested; duplicated = ingested twice; corrupt = ingested with a
 * different digest than flushed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FAILED_DIR_NAME, FINISHED_EXT, IN_PROGRESS_EXT, STATE_DIR_NAME } from '@edgecap/core';
import { listFiles, readCaptureFile } from '@edgecap/format';
import { exportReadings, listReceived } from '@edgecap/ingest';

export function digest(data: unknown): string {
  if (data instanceof Uint8Array) return `bin:${createHash('sha256').update(data).digest('hex')}`;
  if (data && typeof data === 'object' && 'binary' in data) return `bin:${(data as { binary: { sha256: string } }).binary.sha256}`;
  return `json:${JSON.stringify(data)}`;
}

export class Ledger {
  /** stream -> seq -> digest */
  readonly flushed = new Map<string, Map<number, string>>();
  readonly ingested = new Map<string, Map<number, string>>();
  duplicated = 0;
  corrupt = 0;
  snapshots = 0;

  /** Finished files already read: they never change (a new version is a new name), so each is read once. */
  private readonly done = new Set<string>();

  /** Record every reading currently in capture files (finished or in progress). */
  snapshotDisk(captureDir: string): number {
    let n = 0;
    this.snapshots++;
    const finished = listFiles(captureDir, FINISHED_EXT);
    for (const f of [...finished.filter((f) => !this.done.has(f)), ...listFiles(captureDir, IN_PROGRESS_EXT)]) {
      if (f.endsWith(FINISHED_EXT)) this.done.add(f);
      let s;
      try {
        s = readCaptureFile(f);
      } catch {
        continue; // synced and deleted between listing and reading
      }
      if (!s.header) continue;
      const k = `${s.header.name}/${s.header.method}`;
      const m = this.flushed.get(k) ?? new Map<number, string>();
      for (const r of s.readings) {
        const d = digest(r.data);
        const prev = m.get(r.seq);
        // The same seq with different content on disk would be a reuse of a flushed seq: a bug.
        if (prev !== undefined && prev !== d) this.corrupt++;
        m.set(r.seq, d);
        n++;
      }
      this.flushed.set(k, m);
    }
    return n;
  }

  async loadExport(dataDir: string): Promise<void> {
    this.ingested.clear();
    this.duplicated = 0;
    for await (const r of exportReadings(dataDir)) {
      const k = `${r.resource}/${r.method}`;
      const m = this.ingested.get(k) ?? new Map<number, string>();
      if (m.has(r.seq)) this.duplicated++;
      m.set(r.seq, digest(r.data));
      this.ingested.set(k, m);
    }
  }

  /**
   * `excused(stream, seq)` says a flushed reading's absence is by policy (deleted by the janitor
   * on a full disk); those are counted apart from `lost`.
   */
  report(excused: (stream: string, seq: number) => boolean = () => false): { flushed: number; ingested: number; lost: number; deletedByPolicy: number; duplicated: number; corrupt: number; lostExamples: string[] } {
    let flushed = 0;
    let lost = 0;
    let deletedByPolicy = 0;
    let corrupt = this.corrupt;
    const lostExamples: string[] = [];
    for (const [k, m] of this.flushed) {
      const got = this.ingested.get(k);
      for (const [seq, d] of m) {
        flushed++;
        const g = got?.get(seq);
        if (g === undefined && excused(k, seq)) deletedByPolicy++;
        else if (g === undefined) {
          lost++;
          if (lostExamples.length < 5) lostExamples.push(`${k}#${seq}`);
        } else if (g !== d) corrupt++;
      }
    }
    let ingested = 0;
    for (const m of this.ingested.values()) ingested += m.size;
    return { flushed, ingested, lost, deletedByPolicy, duplicated: this.duplicated, corrupt, lostExamples };
  }

  /** Per stream: seqs missing between 0 and the max ingested. */
  holes(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [k, m] of this.ingested) {
      const max = Math.max(...m.keys());
      const missing: number[] = [];
      for (let i = 0; i <= max; i++) if (!m.has(i)) missing.push(i);
      if (missing.length) out.set(k, missing);
    }
    return out;
  }
}

/** Files in a failed/ tree (`<state dir>/failed`, default `<capture dir>/.edgecap/failed`), not their `.reason` sidecars. */
export function countFailed(captureDir: string, stateDir = path.join(captureDir, STATE_DIR_NAME)): string[] {
  const dir = path.join(stateDir, FAILED_DIR_NAME);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.endsWith('.reason'))
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

/**
 * Exact accounting for arbitrary files (additional_sync_paths). Every version a file had is
 * recorded (its sha256) as it is written; the ingest's list of received files says which were
 * stored. lost = a file's last version never stored; duplicated = one version stored twice;
 * corrupt = a stored content that was never a version of the file (e.g. torn by an append
 * during the upload); reuploaded = files stored in more than one version (changed during or
 * after an upload, then sent again).
 */
export class FileLedger {
  readonly versions = new Map<string, string[]>();
  readonly stored = new Map<string, string[]>();

  wrote(name: string, content: Buffer): void {
    const v = this.versions.get(name) ?? [];
    v.push(createHash('sha256').update(content).digest('hex'));
    this.versions.set(name, v);
  }

  async load(dataDir: string): Promise<void> {
    this.stored.clear();
    for (const e of await listReceived(dataDir)) {
      if (e.type !== 'file') continue;
      const name = path.basename(e.file_name || e.path);
      this.stored.set(name, [...(this.stored.get(name) ?? []), e.sha256]);
    }
  }

  report(): { files: number; stored: number; lost: number; duplicated: number; corrupt: number; reuploaded: number; examples: string[] } {
    let lost = 0;
    let duplicated = 0;
    let corrupt = 0;
    let reuploaded = 0;
    let stored = 0;
    const examples: string[] = [];
    for (const [name, v] of this.versions) {
      const got = this.stored.get(name) ?? [];
      stored += got.length;
      if (!got.includes(v.at(-1)!)) {
        lost++;
        examples.push(`lost ${name}`);
      }
      duplicated += got.length - new Set(got).size;
      for (const g of got) {
        if (!v.includes(g)) {
          corrupt++;
          examples.push(`corrupt ${name}`);
        }
      }
      if (new Set(got).size > 1) reuploaded++;
    }
    for (const name of this.stored.keys()) if (!this.versions.has(name)) examples.push(`unknown ${name}`);
    return { files: this.versions.size, stored, lost, duplicated, corrupt, reuploaded, examples: examples.slice(0, 5) };
  }
}
