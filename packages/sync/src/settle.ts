/**
 * What an upload's outcome does to its file, and the run's tally of it.
 *
 *   ok        ─► unchanged since read? ─► unlink ─► forget (state dropped in batches: FORGET_BATCH_MS)
 *                         │            └ deleteAfterSync=false ─► committed (kept, not re-sent)
 *                         └ changed ─► kept, pending; its new content goes out as a new file
 *   link/auth ─► released; ONE backoff for everything (link-health.ts linkFailure)
 *   server    ─► the same, plus the file's own backoff (fileDelay, unbounded)
 *   rejected  ─► move to <stateDir>/failed/<rel> + .reason (failed.ts), a file-failed event
 *   local     ─► vanished: released | else per-file attempts/nextRetryAt (unreadable: failed/ after maxFileAttempts)
 */
import fs from 'node:fs';
import { logger, type Backoff, type Clock } from '@edgecap/core';
import type { FileState, StateStore } from '@edgecap/store';
import { statusName } from './errors.js';
import type { FailedDir } from './failed.js';
import type { LinkHealth } from './link-health.js';
import type { Backlog, Work } from './prepare.js';
import type { Candidate } from './scan.js';
import { countAcked, type UploadTally } from './scheduler.js';
import type { FileFailedEvent, FileSyncedEvent, Notices, SyncOptions, SyncResult } from './types.js';
import type { ReadIdentity, UploadOutcome } from './upload.js';

const log = logger('sync');

/**
 * How long completions gather before their state is dropped in one LMDB transaction. Each
 * transaction is an fsync on the main thread: at 50 ms they were half the edge's CPU per small
 * file. A crash before the batch commits only leaves records of vanished files (swept at start).
 */
const FORGET_BATCH_MS = 250;
/** Local errors that say nothing about the file (ours are short of fds or memory, or it is being written). */
const TRANSIENT_LOCAL = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ESHRANK']);

export interface SettleContext {
  opts: SyncOptions;
  clock: Clock;
  random: () => number;
  runId: string;
  /** The engine's store, if open (queued forgets are committed to it, also by stop()). */
  store(): StateStore | undefined;
  health: LinkHealth;
  backlog: Backlog;
  failed: FailedDir;
  notices: Notices;
}

export class Settler {
  /** Run-wide upload counters (stats()). */
  readonly st: UploadTally = { uploadedFiles: 0, uploadedBytes: 0, alreadyHave: 0, failedFiles: 0 };
  /** Synced-and-deleted files whose state is dropped in the next batch (see forget). */
  private forgetting: { files: string[]; idKeys: string[] } = { files: [], idKeys: [] };
  private forgetTimer: NodeJS.Timeout | undefined;
  private readonly opts: SyncOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly runId: string;
  private readonly store: () => StateStore | undefined;
  /** The link backoff, whose schedule a file's own retry delay follows. */
  private readonly link: Backoff;
  private readonly health: LinkHealth;
  private readonly backlog: Backlog;
  private readonly failed: FailedDir;
  private readonly notices: Notices;

  constructor(ctx: SettleContext) {
    this.opts = ctx.opts;
    this.clock = ctx.clock;
    this.random = ctx.random;
    this.runId = ctx.runId;
    this.store = ctx.store;
    this.link = ctx.health.link;
    this.health = ctx.health;
    this.backlog = ctx.backlog;
    this.failed = ctx.failed;
    this.notices = ctx.notices;
  }

  /** Settle one file's outcome: delete and forget, keep, back off, or move to failed/. */
  settleOutcome(store: StateStore, w: Work, out: UploadOutcome, res: SyncResult): 'ok' | 'link' | 'failed' | 'retry' | 'skip' {
    const { c } = w;
    if (out.ok) {
      // Delete only the file that was read: an arbitrary file appended to (or replaced) after
      // the worker's stat still holds bytes the server has not got.
      const changed = this.changedSince(c, out.read);
      let deleted = false;
      if (this.opts.deleteAfterSync !== false && !changed) {
        try {
          // unlink, not rmSync: no lstat first, one syscall per synced file.
          fs.unlinkSync(c.path);
          deleted = true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') deleted = true;
          else log.warn({ err: e, file: c.path }, 'synced file could not be deleted; it will be re-sent and answered ALREADY_HAVE');
        }
      }
      // Deleted: its state goes with it, batched with other completions (a crash before the
      // batch commits leaves a record of a vanished file, which the next start sweeps). Kept:
      // it is marked committed so it is not sent again. Changed: pending, and its old id key
      // is dropped, so its new content goes out next round as a new file (a new file id).
      if (deleted) this.forget(c.path, w.idKey);
      else if (changed) {
        log.info({ file: c.path, why: changed }, 'file changed after it was read: kept; its new content goes out as a new file');
        store.releaseUpload(c.path, this.runId, { attempts: 0, nextRetryAt: 0 }, w.idKey);
      } else store.commitUpload(c.path, this.runId, w.id);
      if (!changed) this.backlog.settle(c);
      this.health.succeeded();
      countAcked(res, this.st, out.status, out.bytes);
      this.notices.events.emit('file-synced', { path: c.path, fileId: w.id, status: out.status, bytes: out.bytes } satisfies FileSyncedEvent);
      return 'ok';
    }
    const rec = store.fileState(c.path);
    if (out.kind === 'link' || out.kind === 'auth' || out.kind === 'server') {
      // Nothing wrong with the bytes: the file waits, however long, and never goes to failed/.
      // A server fault (its storage, fds, load) also starts the file's own backoff (unbounded),
      // so one file the server keeps choking on does not hold up the others.
      const patch: Partial<Pick<FileState, 'attempts' | 'nextRetryAt' | 'reason'>> = {};
      if (out.kind === 'server') {
        const attempts = (rec?.attempts ?? 0) + 1;
        Object.assign(patch, { attempts, nextRetryAt: this.clock.now() + this.fileDelay(attempts), reason: `${statusName(out.grpcCode)}: ${out.message}` });
      }
      store.releaseUpload(c.path, this.runId, patch);
      this.health.linkFailure(out.kind, { code: out.grpcCode, message: out.message }, res);
      res.deferred++;
      return 'link';
    }
    if (out.kind === 'rejected') {
      // A verdict about the bytes (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS).
      this.moveToFailed(store, c, `server rejected the upload (${out.grpcCode === undefined ? 'invalid' : statusName(out.grpcCode)}): ${out.message}`);
      this.backlog.settle(c);
      res.failed++;
      return 'failed';
    }
    if (out.kind === 'local' && out.errno === 'ENOENT') {
      store.releaseUpload(c.path, this.runId);
      return 'skip'; // vanished under us
    }
    // One attempt went wrong on our side: the file retries on its own backoff. Only a file that
    // keeps failing to be read (EACCES, EIO, ...) goes to failed/, after maxFileAttempts.
    const attempts = (rec?.attempts ?? 0) + 1;
    const unreadable = out.kind === 'local' && !TRANSIENT_LOCAL.has(out.errno ?? '');
    const max = this.opts.maxFileAttempts ?? 10;
    if (unreadable && attempts >= max) {
      this.moveToFailed(store, c, `cannot be read locally (${attempts} attempts): ${out.message}`);
      this.backlog.settle(c);
      res.failed++;
      return 'failed';
    }
    store.releaseUpload(c.path, this.runId, { attempts, nextRetryAt: this.clock.now() + this.fileDelay(attempts), reason: out.message });
    res.errors.push(`${c.path}: ${out.message}`);
    this.notices.lastError = `${c.path}: ${out.message}`;
    res.deferred++;
    return 'retry';
  }

  /** The file's own retry delay after its n-th failed attempt: the link backoff's schedule, jittered. */
  fileDelay(attempts: number): number {
    const base = this.link.baseDelay(attempts);
    return Math.round(base + base * this.link.jitter * (this.random() * 2 - 1));
  }

  /** Why `c` is not the file an upload read (undefined: it is); after the server's ack. */
  private changedSince(c: Candidate, read: ReadIdentity | undefined): string | undefined {
    let now: fs.Stats;
    try {
      now = fs.lstatSync(c.path);
    } catch {
      return undefined; // gone already: nothing to keep
    }
    const was = read ?? { size: c.size, mtimeMs: c.mtimeMs, ino: now.ino, dev: now.dev };
    if (now.size !== was.size) return `size ${was.size} -> ${now.size}`;
    if (now.mtimeMs !== was.mtimeMs) return 'modified';
    if (now.ino !== was.ino || now.dev !== was.dev) return 'replaced (another inode)';
    return undefined;
  }

  private forget(file: string, idKey: string | undefined): void {
    this.forgetting.files.push(file);
    if (idKey !== undefined) this.forgetting.idKeys.push(idKey);
    this.forgetTimer ??= setTimeout(() => this.flushForgotten(), FORGET_BATCH_MS);
  }

  /** Commit the queued forgets in one transaction; on failure (disk full) they wait for the next try. */
  flushForgotten(): void {
    if (this.forgetTimer) clearTimeout(this.forgetTimer);
    this.forgetTimer = undefined;
    const { files, idKeys } = this.forgetting;
    const store = this.store();
    if (!store || (files.length === 0 && idKeys.length === 0)) return;
    try {
      store.forgetFiles(files, idKeys);
      this.forgetting = { files: [], idKeys: [] };
    } catch (e) {
      log.warn({ err: e, files: files.length }, 'could not drop the state of synced files; retrying');
      this.forgetTimer = setTimeout(() => this.flushForgotten(), 1000);
    }
  }

  /** Move `c` to failed/ (failed.ts) and record the verdict: a `file-failed` event. */
  moveToFailed(store: StateStore, c: Candidate, reason: string): void {
    const dest = this.failed.put(c, reason, this.clock.now());
    store.failUpload(c.path, this.runId, reason);
    this.st.failedFiles++;
    this.notices.lastError = `${c.path}: ${reason}`;
    log.warn({ file: c.path, dest }, reason);
    this.notices.events.emit('file-failed', { path: c.path, reason, dest } satisfies FileFailedEvent);
  }

  /** stop(): the queued forgets committed now, and no retry timer left behind. */
  close(): void {
    this.flushForgotten();
    if (this.forgetTimer) clearTimeout(this.forgetTimer);
    this.forgetTimer = undefined;
  }
}
