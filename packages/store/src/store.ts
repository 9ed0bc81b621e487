import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { STATE_DIR_NAME, ensureRoomForNewLmdb, streamKeyString, type StreamKey } from '@edgecap/core';
import { isThisProcess } from './owner.js';
import { FileLedger, type ExplainedGap, type FileState, type FileStatus, type Holder, type UploadClaim } from './ledger.js';

/**
 * edgecap's durable edge state, in one LMDB environment shared by every thread and process
 * of one capture dir (LMDB serialises writers; reads are lock-free). Every database is private:
 *
 *   seqs   stream key "kind/name/method"  -> next sequence number (persisted by the writer)
 *   gaps   "kind/name/method/<from>"      -> ExplainedGap (janitor deletions etc. to report upstream)
 *   files  absolute file path             -> FileState   ┐ the file ledger (ledger.ts): the one owner of
 *   ids    "path\0size\0mtimeMs"          -> file id     │ a file's life; sync and janitor change a file
 *   totals "synced"                       -> files/bytes ┘ only through its named transitions and leases
 *
 * Two workers that race for one file (sync wants to upload it, janitor to delete it; in one
 * process or in two) go through claimUploads/claimDelete, each a single write transaction
 * that respects every live lease: only one can win.
 */

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

/** Key of a gap in `gaps`: stream, then from_seq zero-padded so a stream's gaps sort in order. */
const gapKey = (g: Pick<ExplainedGap, 'kind' | 'name' | 'method' | 'from_seq'>): string => `${g.kind}/${g.name}/${g.method}/${String(g.from_seq).padStart(16, '0')}`;

export function defaultStateDir(captureDir: string): string {
  return path.join(captureDir, STATE_DIR_NAME);
}

export interface StateStoreOptions {
  /** How long a claim (upload or deletion) lasts unless renewed, ms (default DEFAULT_LEASE_MS). */
  leaseMs?: number;
}

export class StateStore {
  private readonly root: RootDatabase;
  private readonly seqs: Database<number, string>;
  private readonly gaps: Database<ExplainedGap, string>;
  private totalsDb: Database<{ files: number; bytes: number }, string> | undefined;
  private readonly ledger: FileLedger;

  constructor(
    readonly dir: string,
    opts: StateStoreOptions = {},
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    ensureRoomForNewLmdb(path.join(dir, 'state.lmdb'));
    this.root = open({ path: path.join(dir, 'state.lmdb'), maxDbs: 8, compression: false });
    this.seqs = this.root.openDB<number, string>({ name: 'seqs' });
    const files = this.root.openDB<FileState, string>({ name: 'files' });
    this.gaps = this.root.openDB<ExplainedGap, string>({ name: 'gaps' });
    const ids = this.root.openDB<string, string>({ name: 'ids' });
    this.ledger = new FileLedger(
      {
        root: this.root,
        files,
        ids,
        // Opened on first use, by the sync engine only: opening a named database that does not
        // exist yet is a write, and every thread opens this store (the capture writer, on a full disk too).
        totals: () => (this.totalsDb ??= this.root.openDB<{ files: number; bytes: number }, string>({ name: 'totals' })),
        recordGap: (g) => this.recordGap(g),
      },
      opts.leaseMs,
    );
  }

  // ── seqs ───────────────────────────────────────────────────────────────────

  nextSeq(key: StreamKey): number {
    return this.seqs.get(streamKeyString(key)) ?? 0;
  }

  /** Every stream's next seq ("kind/name/method" -> seq). */
  nextSeqs(): [string, number][] {
    return [...this.seqs.getRange()].map(({ key, value }) => [key, value]);
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

  // ── the file ledger (ledger.ts: transitions, leases) ───────────────────────

  /** How long a claim lasts unless renewed, ms. */
  get leaseMs(): number {
    return this.ledger.leaseMs;
  }

  /** A file's record (read-only), undefined if the ledger has none. */
  fileState(file: string): Readonly<FileState> | undefined {
    return this.ledger.get(file);
  }

  /** Who holds `file`, as seen by run `runId` of this process. */
  fileHolder(file: string, runId: string): Holder {
    return this.ledger.holder(file, runId);
  }

  /** Records per status (`edgecap status`). */
  fileStatusCounts(): Map<FileStatus, number> {
    return this.ledger.statusCounts();
  }

  /** Every record (tests, diagnostics). */
  fileEntries(): Generator<{ file: string; state: Readonly<FileState> }> {
    return this.ledger.entries();
  }

  /** Keys of the arbitrary-file id map (tests, diagnostics). */
  fileIdKeys(): string[] {
    return this.ledger.idKeys();
  }

  /** Atomically take `file` for upload by `runId` (see claimUploads). */
  claimUpload(file: string, runId: string, init: UploadClaim): boolean {
    return this.claimUploads([{ file, init }], runId)[0]!;
  }

  /**
   * Take each file for upload under a lease of `runId`, in ONE transaction. False for a file
   * the janitor has, that is committed or failed, or that a live lease (of any process) holds.
   */
  claimUploads(items: readonly { file: string; init: UploadClaim }[], runId: string): boolean[] {
    return this.ledger.claimUploads(items, runId);
  }

  /** Extend `runId`'s leases on `files`; returns the files no longer held by it. */
  renewLeases(files: readonly string[], runId: string): string[] {
    return this.ledger.renewLeases(files, runId);
  }

  /** Give back upload claims of `runId` that were never used (one transaction). */
  releaseUploads(files: readonly string[], runId: string): void {
    this.ledger.releaseUploads(files, runId);
  }

  /** uploading → pending (throws IllegalTransitionError unless `runId` holds it). */
  releaseUpload(file: string, runId: string, patch?: Partial<Pick<FileState, 'attempts' | 'nextRetryAt' | 'reason'>>, dropIdKey?: string): void {
    this.ledger.release(file, runId, patch, dropIdKey);
  }

  /** uploading → committed (throws IllegalTransitionError unless `runId` holds it). */
  commitUpload(file: string, runId: string, id: string): void {
    this.ledger.commit(file, runId, id);
  }

  /** uploading → failed (throws IllegalTransitionError unless `runId` holds it). */
  failUpload(file: string, runId: string, reason: string): void {
    this.ledger.fail(file, runId, reason);
  }

  /** committed | failed → pending, fresh attempts; false if there is no record. */
  reopenFile(file: string, id?: string): boolean {
    return this.ledger.reopen(file, id);
  }

  /** The id of an arbitrary file (key "path\0size\0mtimeMs"), made by `make` on first use. */
  fileIdFor(key: string, make: () => string): string {
    return this.ledger.fileIdFor(key, make);
  }

  /**
   * Atomically mark `file` for deletion by the janitor; false while a live lease (an upload of
   * any process, or another deletion) holds it, or it is committed/deleted. The gaps ride in
   * the claim and are recorded by finishDelete, after the unlink, in one transaction.
   */
  claimDelete(file: string, runId: string, id: string, size: number, gaps: Omit<ExplainedGap, 'reported'>[] = []): boolean {
    return this.ledger.claimDelete(file, runId, id, size, gaps);
  }

  /** claimDelete would take `file` for `runId` now (the claim itself re-checks atomically). */
  canClaimDelete(file: string, runId: string): boolean {
    return this.ledger.canClaimDelete(file, runId);
  }

  /**
   * The file is unlinked: record its gaps and mark it deleted, in one transaction. `runId`
   * must hold the deletion's lease (omitted: whichever run of this process holds it).
   */
  finishDelete(file: string, reason: string, runId?: string): void {
    this.ledger.finishDelete(file, runId ?? this.ownRun(file), reason);
  }

  /** deleting → pending: the unlink failed; the file stays. */
  undoDelete(file: string, runId: string, reason: string): void {
    this.ledger.undoDelete(file, runId, reason);
  }

  private ownRun(file: string): string {
    const l = this.ledger.get(file)?.lease;
    return l && isThisProcess(l) ? l.runId : '';
  }

  /** Deletions whose owner is gone: a file already gone gets its gaps recorded, one still there goes back to pending. */
  settleStaleDeletes(runId: string, exists: (file: string) => boolean): number {
    return this.ledger.settleStaleDeletes(runId, exists);
  }

  /** Forget files synced and deleted (and ids of arbitrary files), in ONE transaction; see FileLedger.forgetFiles. */
  forgetFiles(files: readonly string[], idKeys: readonly string[] = []): void {
    this.ledger.forgetFiles(files, idKeys);
  }

  /** Files (and their bytes) synced and deleted since this state was created. */
  syncedTotals(): { files: number; bytes: number } {
    return this.ledger.syncedTotals();
  }

  /** Drop the records of files that no longer exist (live leases and deletions kept); returns how many. */
  sweepVanished(runId: string, exists: (file: string) => boolean): number {
    return this.ledger.sweepVanished(runId, exists);
  }

  // ── gaps ───────────────────────────────────────────────────────────────────

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

  // ── environment ────────────────────────────────────────────────────────────

  /**
   * Run `fn` holding this state's LMDB write lock: every writer of every process of this state
   * dir waits meanwhile. For short check-then-act steps outside LMDB (the capture lock file).
   */
  withWriteLock<T>(fn: () => T): T {
    return this.root.transactionSync(fn);
  }

  /** Resolves once everything written so far is on disk. */
  flushed(): Promise<boolean> {
    return settle(this.root.flushed);
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

export function openStateStore(dir: string, opts?: StateStoreOptions): StateStore {
  return new StateStore(dir, opts);
}
