import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { STATE_DIR_NAME, streamKeyString, type StreamKey } from '@edgecap/core';

/**
 * edgecap's durable edge state, in one LMDB environment shared by every thread and process
 * of one capture dir (LMDB serialises writers; reads are lock-free):
 *
 *   seqs   stream key "kind/name/method"  -> next sequence number (persisted by the writer)
 *   files  absolute file path             -> FileState (sync checkpoints, janitor marks)
 *   gaps   "kind/name/method/<from>"      -> ExplainedGap (janitor deletions etc. to report upstream)
 *   ids    "path\0size\0mtimeMs"          -> file id assigned to an arbitrary (non-capture) file
 *   totals "synced"                       -> files and bytes synced and deleted, ever (their records are dropped)
 *
 * Two workers that race for one file (sync wants to upload it, janitor to delete it) go
 * through claimUpload/claimDelete, each a single write transaction: only one can win.
 */
export type FileStatus = 'pending' | 'uploading' | 'committed' | 'failed' | 'deleting' | 'deleted_by_janitor';

export interface FileState {
  id: string;
  status: FileStatus;
  source: 'capture' | 'additional';
  attempts: number;
  /** ms since epoch before which no retry is made. */
  nextRetryAt: number;
  size: number;
  /** Which run claimed it (uploading/deleting); a claim from an earlier run is stale. */
  claimedBy?: string;
  updatedAt: number;
  reason?: string;
  /** While `deleting`: the gaps the deletion will create, recorded together with the final mark. */
  pendingGaps?: Omit<ExplainedGap, 'reported'>[];
}

export type UploadClaim = Omit<FileState, 'status' | 'claimedBy' | 'updatedAt' | 'attempts' | 'nextRetryAt'>;

export interface ExplainedGap {
  kind: string;
  name: string;
  method: string;
  from_seq: number;
  to_seq: number;
  reason: string;
  time_us: number;
  /** True once the ingest server acknowledged the report. */
  reported: boolean;
}

/**
 * lmdb-js rejects a failed async commit (ENOSPC, EIO) twice: the write's promise, and a
 * second `commitError` promise hung on the error that nobody else awaits. Left alone, the
 * second one is an unhandled rejection that kills the thread; handle it here, once.
 */
async function settle<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const ce = (e as { commitError?: Promise<unknown> }).commitError;
    if (ce && typeof ce.catch === 'function') ce.catch(() => undefined);
    throw e;
  }
}

const SYNCED_TOTALS = 'synced';

/** Key of a gap in `gaps`: stream, then from_seq zero-padded so a stream's gaps sort in order. */
const gapKey = (g: Pick<ExplainedGap, 'kind' | 'name' | 'method' | 'from_seq'>): string => `${g.kind}/${g.name}/${g.method}/${String(g.from_seq).padStart(16, '0')}`;

export function defaultStateDir(captureDir: string): string {
  return path.join(captureDir, STATE_DIR_NAME);
}

export class StateStore {
  readonly root: RootDatabase;
  readonly seqs: Database<number, string>;
  readonly files: Database<FileState, string>;
  readonly gaps: Database<ExplainedGap, string>;
  readonly ids: Database<string, string>;
  private totalsDb: Database<{ files: number; bytes: number }, string> | undefined;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.root = open({ path: path.join(dir, 'state.lmdb'), maxDbs: 8, compression: false });
    this.seqs = this.root.openDB<number, string>({ name: 'seqs' });
    this.files = this.root.openDB<FileState, string>({ name: 'files' });
    this.gaps = this.root.openDB<ExplainedGap, string>({ name: 'gaps' });
    this.ids = this.root.openDB<string, string>({ name: 'ids' });
  }

  nextSeq(key: StreamKey): number {
    return this.seqs.get(streamKeyString(key)) ?? 0;
  }

  /**
   * Record that every seq below `next` is on disk; never moves backwards. Every write of this
   * store is a synchronous transaction: lmdb-js's async commits, when they fail (ENOSPC on a
   * full disk), leave unhandled rejections behind and the write queue stuck, while a failed
   * sync transaction throws here and the next one succeeds once space is back.
   */
  advanceSeqSync(key: StreamKey, next: number): void {
    const k = streamKeyString(key);
    this.root.transactionSync(() => {
      const cur = this.seqs.get(k) ?? 0;
      if (next > cur) this.seqs.putSync(k, next);
    });
  }

  /**
   * advanceSeqSync for several streams in ONE synchronous transaction (the capture writer
   * persists every file rotated in one cycle at once). Each seq never moves backwards.
   */
  advanceSeqsSync(entries: readonly { key: StreamKey; next: number }[]): void {
    if (entries.length === 0) return;
    this.root.transactionSync(() => {
      for (const { key, next } of entries) {
        const k = streamKeyString(key);
        const cur = this.seqs.get(k) ?? 0;
        if (next > cur) this.seqs.putSync(k, next);
      }
    });
  }

  /**
   * Atomically mark `file` as being uploaded by `runId`. Fails (false) when the janitor has
   * it, it is already committed, or another live claim holds it.
   */
  claimUpload(file: string, runId: string, init: UploadClaim): boolean {
    return this.claimUploads([{ file, init }], runId)[0]!;
  }

  /** claimUpload for several files in ONE transaction (one commit for a batch of uploads). */
  claimUploads(items: readonly { file: string; init: UploadClaim }[], runId: string): boolean[] {
    return this.root.transactionSync(() =>
      items.map(({ file, init }) => {
        const cur = this.files.get(file);
        if (cur) {
          if (cur.status === 'deleted_by_janitor' || cur.status === 'committed' || cur.status === 'failed') return false;
          // A claim is live only for the run that made it; one left by a crashed run is stale.
          if ((cur.status === 'uploading' || cur.status === 'deleting') && cur.claimedBy === runId) return false;
        }
        this.files.putSync(file, {
          ...init,
          status: 'uploading',
          claimedBy: runId,
          attempts: cur?.attempts ?? 0,
          nextRetryAt: cur?.nextRetryAt ?? 0,
          updatedAt: Date.now(),
        });
        return true;
      }),
    );
  }

  /** Give back upload claims of `runId` that were never used (one transaction). */
  releaseUploads(files: readonly string[], runId: string): void {
    if (files.length === 0) return;
    this.root.transactionSync(() => {
      for (const f of files) {
        const cur = this.files.get(f);
        if (cur?.status === 'uploading' && cur.claimedBy === runId) this.files.putSync(f, { ...cur, status: 'pending', claimedBy: undefined, updatedAt: Date.now() });
      }
    });
  }

  /**
   * Atomically mark `file` for deletion by the janitor; false while a live upload holds it.
   * The gaps the deletion creates ride in the claim and are recorded by finishDelete, after the
   * unlink, in one transaction: a crash in between never reports a file deleted that was not.
   */
  claimDelete(file: string, runId: string, id: string, size: number, gaps: Omit<ExplainedGap, 'reported'>[] = []): boolean {
    return this.root.transactionSync(() => {
      const cur = this.files.get(file);
      if (cur && cur.status === 'uploading' && cur.claimedBy === runId) return false;
      if (cur && (cur.status === 'committed' || cur.status === 'deleted_by_janitor')) return false;
      this.files.putSync(file, {
        pendingGaps: gaps,
        id: cur?.id ?? id,
        source: 'capture',
        size,
        attempts: cur?.attempts ?? 0,
        nextRetryAt: 0,
        status: 'deleting',
        claimedBy: runId,
        updatedAt: Date.now(),
      });
      return true;
    });
  }

  /** The file is unlinked: record its gaps and mark it deleted, in one transaction. */
  finishDelete(file: string, reason: string): void {
    this.root.transactionSync(() => {
      const cur = this.files.get(file);
      if (!cur) return;
      for (const g of cur.pendingGaps ?? []) this.recordGap(g);
      const { pendingGaps: _, ...rest } = cur;
      this.files.putSync(file, { ...rest, status: 'deleted_by_janitor', claimedBy: undefined, reason, updatedAt: Date.now() });
    });
  }

  /**
   * Deletions a crashed run left half done: a file already gone gets its gaps recorded; a file
   * still there goes back to pending (to be synced, or chosen again).
   */
  settleStaleDeletes(runId: string, exists: (file: string) => boolean): number {
    let n = 0;
    for (const { key, value } of this.files.getRange()) {
      if (value.status !== 'deleting' || value.claimedBy === runId) continue;
      if (exists(key)) this.updateFile(key, { status: 'pending', claimedBy: undefined, pendingGaps: undefined });
      else this.finishDelete(key, 'disk full');
      n++;
    }
    return n;
  }

  /**
   * Forget files that were synced and deleted, and the ids of those that were arbitrary files,
   * in ONE transaction (the sync engine batches its completions: one commit, one fsync, for
   * many files). A record the janitor holds is kept.
   */
  forgetFiles(files: readonly string[], idKeys: readonly string[] = []): void {
    if (files.length === 0 && idKeys.length === 0) return;
    this.root.transactionSync(() => {
      let n = 0;
      let bytes = 0;
      for (const f of files) {
        const cur = this.files.get(f);
        if (!cur || cur.status === 'deleting') continue;
        this.files.removeSync(f);
        n++;
        bytes += cur.size;
      }
      for (const k of idKeys) this.ids.removeSync(k);
      const t = this.syncedTotals();
      this.totals.putSync(SYNCED_TOTALS, { files: t.files + n, bytes: t.bytes + bytes });
    });
  }

  /**
   * Opened on first use, by the sync engine only: opening a named database that does not exist
   * yet is a write, and every thread opens this store (the capture writer, on a full disk too).
   */
  private get totals(): Database<{ files: number; bytes: number }, string> {
    return (this.totalsDb ??= this.root.openDB<{ files: number; bytes: number }, string>({ name: 'totals' }));
  }

  /** Files (and their bytes) synced and deleted since this state was created. */
  syncedTotals(): { files: number; bytes: number } {
    return this.totals.get(SYNCED_TOTALS) ?? { files: 0, bytes: 0 };
  }

  /**
   * Drop the records of files that no longer exist (synced and deleted before their record was
   * forgotten, moved to failed/, deleted by the janitor or by the user), so the state stays as
   * large as the backlog on disk. Kept: the janitor's in-flight deletions (settleStaleDeletes
   * owns them) and live claims of `runId`. Returns how many were dropped.
   */
  sweepVanished(runId: string, exists: (file: string) => boolean): number {
    const gone: string[] = [];
    for (const { key, value } of this.files.getRange()) {
      if (value.status === 'deleting' || value.claimedBy === runId) continue;
      if (!exists(key)) gone.push(key);
    }
    // ids of arbitrary files ("path\0size\0mtime") whose file is gone
    const goneIds = [...this.ids.getKeys()].filter((k) => !exists(k.slice(0, k.indexOf('\0'))));
    if (gone.length === 0 && goneIds.length === 0) return 0;
    let n = 0;
    this.root.transactionSync(() => {
      for (const f of gone) {
        const cur = this.files.get(f);
        if (!cur || cur.status === 'deleting' || cur.claimedBy === runId || exists(f)) continue;
        this.files.removeSync(f);
        n++;
      }
      for (const k of goneIds) this.ids.removeSync(k);
    });
    return n + goneIds.length;
  }

  /** Update fields of a file's state in one transaction (no-op if absent). */
  updateFile(file: string, patch: Partial<FileState>): void {
    this.root.transactionSync(() => {
      const cur = this.files.get(file);
      if (cur) this.files.putSync(file, { ...cur, ...patch, updatedAt: Date.now() });
    });
  }

  recordGap(g: Omit<ExplainedGap, 'reported'>): void {
    this.gaps.putSync(gapKey(g), { ...g, reported: false });
  }

  unreportedGaps(): ExplainedGap[] {
    const out: ExplainedGap[] = [];
    for (const { value } of this.gaps.getRange()) if (!value.reported) out.push(value);
    return out;
  }

  /** The ingest server has them: drop them (the state holds only what is still to report). */
  markGapsReported(gaps: readonly ExplainedGap[]): void {
    this.root.transactionSync(() => {
      for (const g of gaps) this.gaps.removeSync(gapKey(g));
    });
  }

  /** Resolves once everything written so far is on disk. */
  flushed(): Promise<boolean> {
    return settle(this.root.flushed);
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

export function openStateStore(dir: string): StateStore {
  return new StateStore(dir);
}
