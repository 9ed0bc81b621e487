import type { Database, RootDatabase } from 'lmdb';
import { EdgecapError, ErrorCodes, type StreamGap } from '@edgecap/core';
import { isThisProcess, ownerAlive, thisProcess, type LeaseOwner } from './owner.js';

/**
 * The file ledger: the ONE owner of a file's life on the edge. Its databases are private; sync
 * and janitor (in any thread or process of one state dir) change a file only through the named
 * transitions below, each one LMDB write transaction, checked against TRANSITIONS.
 *
 *              claimUpload            commit              forget
 *   (absent) ──────────────► uploading ──────► committed ──────────► deleted (record dropped)
 *   pending  ◄────────────── uploading ─────────────────────────────► deleted (synced + unlinked)
 *       │        release          │  fail                  reopen
 *       │                         └──────► failed ─────────────────► pending
 *       │ claimDelete                      committed ─── reopen ───► pending
 *       └──────────► deleting ──finishDelete──► deleted_by_janitor
 *                       └──── undoDelete ─────► pending
 *
 * uploading and deleting are held under a LEASE naming its owner (run id, pid, process start
 * time) and an expiry. A lease is:
 *   self   the caller's own (same run id, same process);
 *   other  another owner's, live: its process runs (pid alive, same start time) and it has not
 *          expired — respected by everyone;
 *   stale  expired, its process gone (or its pid now another process), or an earlier run of
 *          this same process: the next claim takes it over, inside its write transaction.
 * Claims (and the batch operations) answer false / skip a file; every other transition refused
 * throws IllegalTransitionError (EDGECAP_ERR_ILLEGAL_TRANSITION).
 */
export type FileStatus = 'pending' | 'uploading' | 'committed' | 'failed' | 'deleting' | 'deleted_by_janitor';
/** A file's place in the ledger: a status, or no record at all. */
export type LedgerState = FileStatus | 'absent';

export interface Lease extends LeaseOwner {
  /** ms since epoch (wall clock, shared by processes) after which the lease is stale. */
  expiresAt: number;
}

export interface FileState {
  id: string;
  status: FileStatus;
  source: 'capture' | 'additional';
  attempts: number;
  /** ms since epoch before which no retry is made. */
  nextRetryAt: number;
  size: number;
  /** While uploading/deleting: who holds the file, until when. */
  lease?: Lease;
  updatedAt: number;
  reason?: string;
  /** While `deleting`: the gaps the deletion will create, recorded together with the final mark. */
  pendingGaps?: Omit<ExplainedGap, 'reported'>[];
}

export interface ExplainedGap extends StreamGap {
  /** True once the ingest server acknowledged the report. */
  reported: boolean;
}

export type UploadClaim = Pick<FileState, 'id' | 'source' | 'size'>;

export type TransitionName = 'claimUpload' | 'release' | 'commit' | 'fail' | 'reopen' | 'forget' | 'claimDelete' | 'finishDelete' | 'undoDelete' | 'settleDelete' | 'sweep';

export interface TransitionRule {
  from: readonly LedgerState[];
  /** 'deleted': the record is dropped. settleDelete ends in either of two states. */
  to: readonly (FileStatus | 'deleted')[];
  /**
   * claim: a held from-state (uploading/deleting) only under a stale lease; a live one refuses.
   * own:   the caller must hold the lease (self).
   * stale: only under a stale lease (settling what a dead owner left).
   * free:  a held from-state only unless another live owner holds it.
   * none:  no lease involved.
   */
  lease: 'claim' | 'own' | 'stale' | 'free' | 'none';
}

/** The allowed transitions; anything else is refused. */
export const TRANSITIONS: Readonly<Record<TransitionName, TransitionRule>> = {
  claimUpload: { from: ['absent', 'pending', 'uploading', 'deleting'], to: ['uploading'], lease: 'claim' },
  release: { from: ['uploading'], to: ['pending'], lease: 'own' },
  commit: { from: ['uploading'], to: ['committed'], lease: 'own' },
  fail: { from: ['uploading'], to: ['failed'], lease: 'own' },
  reopen: { from: ['committed', 'failed'], to: ['pending'], lease: 'none' },
  forget: { from: ['pending', 'uploading', 'committed', 'failed'], to: ['deleted'], lease: 'free' },
  claimDelete: { from: ['absent', 'pending', 'failed', 'uploading', 'deleting'], to: ['deleting'], lease: 'claim' },
  finishDelete: { from: ['deleting'], to: ['deleted_by_janitor'], lease: 'own' },
  undoDelete: { from: ['deleting'], to: ['pending'], lease: 'own' },
  settleDelete: { from: ['deleting'], to: ['deleted_by_janitor', 'pending'], lease: 'stale' },
  sweep: { from: ['pending', 'uploading', 'committed', 'failed', 'deleted_by_janitor'], to: ['deleted'], lease: 'free' },
};

export class IllegalTransitionError extends EdgecapError {
  constructor(file: string, transition: TransitionName, from: LedgerState, why: string) {
    super(ErrorCodes.ILLEGAL_TRANSITION, `${transition} of ${file} refused: ${why} (it is ${from})`, { details: { file, transition, from } });
    this.name = 'IllegalTransitionError';
  }
}

/** Default lease length; the sync engine renews its leases at a third of it. */
export const DEFAULT_LEASE_MS = 120_000;

export type Holder = 'none' | 'self' | 'other' | 'stale';

const HELD: ReadonlySet<FileStatus> = new Set(['uploading', 'deleting']);

/** Who holds `rec` as seen by run `runId` of this process (see the header). */
export function holderOf(rec: FileState | undefined, runId: string, now: number = Date.now()): Holder {
  if (!rec || !HELD.has(rec.status)) return 'none';
  const l = rec.lease;
  if (!l || typeof l.pid !== 'number') return 'stale'; // a claim without a lease (an older version's)
  if (isThisProcess(l)) return l.runId === runId && l.expiresAt > now ? 'self' : 'stale';
  if (!(l.expiresAt > now)) return 'stale';
  return ownerAlive(l) ? 'other' : 'stale';
}

/** The same claim: owner and expiry (a renewal or a new claim changes it). */
function sameLease(a: Lease | undefined, b: Lease | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.runId === b.runId && a.pid === b.pid && a.startTime === b.startTime && a.expiresAt === b.expiresAt);
}

function stateOf(rec: FileState | undefined): LedgerState {
  return rec ? rec.status : 'absent';
}

/** Why `transition` may not take `rec` for `runId` (undefined: it may). */
function refusal(t: TransitionName, rec: FileState | undefined, runId: string, now: number): string | undefined {
  const rule = TRANSITIONS[t];
  const from = stateOf(rec);
  if (!rule.from.includes(from)) return `not allowed from ${from}`;
  if (!rec || !HELD.has(rec.status)) return rule.lease === 'own' || rule.lease === 'stale' ? 'no lease' : undefined;
  const h = holderOf(rec, runId, now);
  switch (rule.lease) {
    case 'claim':
      return h === 'stale' ? undefined : h === 'self' ? 'already held by this run' : `held by a live lease of pid ${rec.lease?.pid}`;
    case 'own':
      return h === 'self' ? undefined : `the lease is not ours (${h})`;
    case 'stale':
      return h === 'stale' ? undefined : `the lease is live (${h})`;
    case 'free':
      return h === 'other' ? `held by a live lease of pid ${rec.lease?.pid}` : undefined;
    case 'none':
      return undefined;
  }
}

export interface LedgerDbs {
  root: RootDatabase;
  files: Database<FileState, string>;
  ids: Database<string, string>;
  /** Opened on first use (see StateStore). */
  totals: () => Database<{ files: number; bytes: number }, string>;
  /** Records a gap inside the caller's transaction. */
  recordGap: (g: Omit<ExplainedGap, 'reported'>) => void;
}

const SYNCED_TOTALS = 'synced';

export class FileLedger {
  readonly #root: RootDatabase;
  readonly #files: Database<FileState, string>;
  readonly #ids: Database<string, string>;
  readonly #totals: () => Database<{ files: number; bytes: number }, string>;
  readonly #recordGap: (g: Omit<ExplainedGap, 'reported'>) => void;

  constructor(
    dbs: LedgerDbs,
    readonly leaseMs: number = DEFAULT_LEASE_MS,
  ) {
    this.#root = dbs.root;
    this.#files = dbs.files;
    this.#ids = dbs.ids;
    this.#totals = dbs.totals;
    this.#recordGap = dbs.recordGap;
  }

  #lease(runId: string, now: number): Lease {
    return { runId, ...thisProcess(), expiresAt: now + this.leaseMs };
  }

  /** Apply a single transition (throws IllegalTransitionError when refused); inside a write txn. */
  #apply(t: TransitionName, file: string, runId: string, patch: (cur: FileState) => FileState | undefined): void {
    const now = Date.now();
    const cur = this.#files.get(file);
    const why = refusal(t, cur, runId, now);
    if (why !== undefined || !cur) throw new IllegalTransitionError(file, t, stateOf(cur), why ?? 'no record');
    const next = patch(cur);
    if (next === undefined) this.#files.removeSync(file);
    else this.#files.putSync(file, { ...next, updatedAt: now });
  }

  // ── reads ──────────────────────────────────────────────────────────────────

  get(file: string): Readonly<FileState> | undefined {
    return this.#files.get(file);
  }

  holder(file: string, runId: string): Holder {
    return holderOf(this.#files.get(file), runId);
  }

  /** claimDelete would take `file` for `runId` now (a preview: the claim re-checks atomically). */
  canClaimDelete(file: string, runId: string): boolean {
    return refusal('claimDelete', this.#files.get(file), runId, Date.now()) === undefined;
  }

  /** How many records are in each status. */
  statusCounts(): Map<FileStatus, number> {
    const counts = new Map<FileStatus, number>();
    for (const { value } of this.#files.getRange()) counts.set(value.status, (counts.get(value.status) ?? 0) + 1);
    return counts;
  }

  /** Every record (for tests and diagnostics). */
  *entries(): Generator<{ file: string; state: Readonly<FileState> }> {
    for (const { key, value } of this.#files.getRange()) yield { file: key, state: value };
  }

  /** Keys of the arbitrary-file id map (for tests and diagnostics). */
  idKeys(): string[] {
    return [...this.#ids.getKeys()];
  }

  syncedTotals(): { files: number; bytes: number } {
    return this.#totals().get(SYNCED_TOTALS) ?? { files: 0, bytes: 0 };
  }

  // ── claims ─────────────────────────────────────────────────────────────────

  /** uploading under a lease of `runId`, for each file it can take (ONE transaction). */
  claimUploads(items: readonly { file: string; init: UploadClaim }[], runId: string): boolean[] {
    return this.#root.transactionSync(() => {
      const now = Date.now();
      return items.map(({ file, init }) => {
        const cur = this.#files.get(file);
        if (refusal('claimUpload', cur, runId, now) !== undefined) return false;
        this.#files.putSync(file, {
          id: init.id,
          source: init.source,
          size: init.size,
          status: 'uploading',
          lease: this.#lease(runId, now),
          attempts: cur?.attempts ?? 0,
          nextRetryAt: cur?.nextRetryAt ?? 0,
          updatedAt: now,
        });
        return true;
      });
    });
  }

  /**
   * deleting under a lease of `runId`; false while someone else's live lease holds it, or it
   * is committed or deleted already. The gaps the deletion creates ride in the claim and are
   * recorded by finishDelete, after the unlink, in one transaction.
   */
  claimDelete(file: string, runId: string, id: string, size: number, gaps: Omit<ExplainedGap, 'reported'>[] = []): boolean {
    return this.#root.transactionSync(() => {
      const now = Date.now();
      const cur = this.#files.get(file);
      if (refusal('claimDelete', cur, runId, now) !== undefined) return false;
      this.#files.putSync(file, {
        pendingGaps: gaps,
        id: cur?.id ?? id,
        source: 'capture',
        size,
        attempts: cur?.attempts ?? 0,
        nextRetryAt: 0,
        status: 'deleting',
        lease: this.#lease(runId, now),
        updatedAt: now,
      });
      return true;
    });
  }

  /** Extend the leases `runId` holds on `files` (ONE transaction); returns the files whose lease is no longer ours. */
  renewLeases(files: readonly string[], runId: string): string[] {
    if (files.length === 0) return [];
    return this.#root.transactionSync(() => {
      const now = Date.now();
      const lost: string[] = [];
      for (const f of files) {
        const cur = this.#files.get(f);
        if (!cur || holderOf(cur, runId, now) !== 'self') lost.push(f);
        else this.#files.putSync(f, { ...cur, lease: this.#lease(runId, now) });
      }
      return lost;
    });
  }

  // ── upload side ────────────────────────────────────────────────────────────

  /**
   * uploading → pending: the upload did not go through (or was never started); `patch` sets
   * the file's own retry state. `dropIdKey`: the file changed after it was read, so its next
   * content gets a new id.
   */
  release(file: string, runId: string, patch: Partial<Pick<FileState, 'attempts' | 'nextRetryAt' | 'reason'>> = {}, dropIdKey?: string): void {
    this.#root.transactionSync(() => {
      this.#apply('release', file, runId, (cur) => {
        const { lease: _, ...rest } = cur;
        return { ...rest, ...patch, status: 'pending' };
      });
      if (dropIdKey !== undefined) this.#ids.removeSync(dropIdKey);
    });
  }

  /** Give back upload claims of `runId` never used (ONE transaction); files not held by it are skipped. */
  releaseUploads(files: readonly string[], runId: string): void {
    if (files.length === 0) return;
    this.#root.transactionSync(() => {
      const now = Date.now();
      for (const f of files) {
        const cur = this.#files.get(f);
        if (refusal('release', cur, runId, now) !== undefined || !cur) continue;
        const { lease: _, ...rest } = cur;
        this.#files.putSync(f, { ...rest, status: 'pending', updatedAt: now });
      }
    });
  }

  /** uploading → committed: the server has it and the file is kept (deleteAfterSync off, or the unlink failed). */
  commit(file: string, runId: string, id: string): void {
    this.#root.transactionSync(() =>
      this.#apply('commit', file, runId, (cur) => {
        const { lease: _, reason: _r, ...rest } = cur;
        return { ...rest, id, status: 'committed', attempts: 0, nextRetryAt: 0 };
      }),
    );
  }

  /** uploading → failed: a verdict about the bytes; the file was moved to failed/. */
  fail(file: string, runId: string, reason: string): void {
    this.#root.transactionSync(() =>
      this.#apply('fail', file, runId, (cur) => {
        const { lease: _, ...rest } = cur;
        return { ...rest, status: 'failed', reason };
      }),
    );
  }

  /**
   * committed | failed → pending, fresh attempts: the file is there again (new content, or
   * moved back from failed/). False when there is no record (nothing to reopen).
   */
  reopen(file: string, id?: string): boolean {
    return this.#root.transactionSync(() => {
      if (!this.#files.get(file)) return false;
      this.#apply('reopen', file, '', (cur) => {
        const { reason: _, ...rest } = cur;
        return { ...rest, ...(id === undefined ? {} : { id }), status: 'pending', attempts: 0, nextRetryAt: 0 };
      });
      return true;
    });
  }

  /** Arbitrary files: the id assigned to `key` ("path\0size\0mtimeMs"), made on first use. */
  fileIdFor(key: string, make: () => string): string {
    return this.#root.transactionSync(() => {
      const cur = this.#ids.get(key);
      if (cur) return cur;
      const fresh = make();
      this.#ids.putSync(key, fresh);
      return fresh;
    });
  }

  /**
   * → deleted: files synced and unlinked, their records (and the ids of arbitrary files) dropped
   * in ONE transaction and counted in the totals. A file the janitor or another live owner
   * holds is kept.
   */
  forgetFiles(files: readonly string[], idKeys: readonly string[] = []): void {
    if (files.length === 0 && idKeys.length === 0) return;
    this.#root.transactionSync(() => {
      const now = Date.now();
      let n = 0;
      let bytes = 0;
      for (const f of files) {
        const cur = this.#files.get(f);
        if (!cur || refusal('forget', cur, '', now) !== undefined) continue;
        this.#files.removeSync(f);
        n++;
        bytes += cur.size;
      }
      for (const k of idKeys) this.#ids.removeSync(k);
      const t = this.syncedTotals();
      this.#totals().putSync(SYNCED_TOTALS, { files: t.files + n, bytes: t.bytes + bytes });
    });
  }

  /**
   * Drop the records of files that no longer exist (synced and deleted before their record was
   * forgotten, moved to failed/, deleted by the janitor or by the user). Kept: deletions
   * (settleStaleDeletes owns them) and live leases. Returns how many records were dropped.
   */
  sweepVanished(runId: string, exists: (file: string) => boolean): number {
    const gone: string[] = [];
    const now = Date.now();
    for (const { key, value } of this.#files.getRange()) {
      if (refusal('sweep', value, runId, now) !== undefined || holderOf(value, runId, now) === 'self') continue;
      if (!exists(key)) gone.push(key);
    }
    const goneIds = [...this.#ids.getKeys()].filter((k) => !exists(k.slice(0, k.indexOf('\0'))));
    if (gone.length === 0 && goneIds.length === 0) return 0;
    let n = 0;
    // No filesystem call inside the write transaction: on a stalled filesystem it would hold
    // LMDB's one write lock (every thread and process of this capture dir) until it returned.
    // A file that reappears after the check (restored by hand) is found again by the scanner.
    this.#root.transactionSync(() => {
      const t = Date.now();
      for (const f of gone) {
        const cur = this.#files.get(f);
        if (!cur || refusal('sweep', cur, runId, t) !== undefined || holderOf(cur, runId, t) === 'self') continue;
        this.#files.removeSync(f);
        n++;
      }
      for (const k of goneIds) this.#ids.removeSync(k);
    });
    return n + goneIds.length;
  }

  // ── janitor side ───────────────────────────────────────────────────────────

  /** deleting → deleted_by_janitor: the file is unlinked; its gaps are recorded in the same transaction. */
  finishDelete(file: string, runId: string, reason: string): void {
    this.#root.transactionSync(() => this.#finish(file, runId, reason, 'finishDelete'));
  }

  #finish(file: string, runId: string, reason: string, t: 'finishDelete' | 'settleDelete'): void {
    this.#apply(t, file, runId, (cur) => {
      for (const g of cur.pendingGaps ?? []) this.#recordGap(g);
      const { pendingGaps: _, lease: _l, ...rest } = cur;
      return { ...rest, status: 'deleted_by_janitor', reason };
    });
  }

  /** deleting → pending: the unlink failed, the file stays (to be synced, or chosen again). */
  undoDelete(file: string, runId: string, reason: string): void {
    this.#root.transactionSync(() => this.#undo(file, runId, reason, 'undoDelete'));
  }

  #undo(file: string, runId: string, reason: string | undefined, t: 'undoDelete' | 'settleDelete'): void {
    this.#apply(t, file, runId, (cur) => {
      const { pendingGaps: _, lease: _l, ...rest } = cur;
      return reason === undefined ? { ...rest, status: 'pending' } : { ...rest, status: 'pending', reason };
    });
  }

  /**
   * Deletions a dead owner left half done (stale leases): a file already gone gets its gaps
   * recorded; a file still there goes back to pending. Live deletions are left alone.
   */
  settleStaleDeletes(runId: string, exists: (file: string) => boolean): number {
    let n = 0;
    for (const { key, value } of this.#files.getRange()) {
      if (value.status !== 'deleting' || holderOf(value, runId) !== 'stale') continue;
      // checked before the write transaction (see sweepVanished), and acted on only if the
      // record still carries the dead owner's lease it had then
      const there = exists(key);
      try {
        this.#root.transactionSync(() => {
          // settled and claimed again meanwhile (another process): `there` may be out of date
          if (!sameLease(this.#files.get(key)?.lease, value.lease)) return;
          if (there) this.#undo(key, runId, undefined, 'settleDelete');
          else this.#finish(key, runId, 'disk full', 'settleDelete');
        });
        n++;
      } catch (e) {
        if (!(e instanceof IllegalTransitionError)) throw e; // taken meanwhile by another process
      }
    }
    return n;
  }
}
