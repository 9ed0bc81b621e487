/**
 * Which files go out this round, claimed: the backlog walk, and the pending counts it keeps.
 *
 *   capture dir + additional_sync_paths (scan.ts), lazily, one file per pull
 *     ─► id: capture header | viam `.capture` key | fileIdFor(path, size, mtime)
 *     ─► ledger state ─► eligible? go | later (own nextRetryAt) | skip (janitor, another process)
 *     ─► claimUploads, CLAIM_BATCH_FILES / CLAIM_BATCH_BYTES per LMDB transaction ─► Work, one by one
 *   unreadable capture header ─► failed/ (settle.ts moveToFailed)
 *
 *   pending = the last full count (a walk, or countBacklog) less what settled since
 */
import { createHash, randomUUID } from 'node:crypto';
import { DEFAULTS, ErrorCodes, logger, type Clock } from '@edgecap/core';
import { holderOf, type FileState, type StateStore } from '@edgecap/store';
import { probeViamCaptureFile } from '@edgecap/viam';
import { captureMeta, readCaptureHeader } from './header.js';
import { additionalCandidates, captureCandidates, type Candidate } from './scan.js';
import type { SyncOptions, SyncResult } from './types.js';
import type { UploadTask } from './upload.js';

const log = logger('sync');

/** A file decided on: to be claimed and uploaded. */
export interface Work {
  c: Candidate;
  id: string;
  idKey?: string;
  meta: UploadTask['meta'];
  format?: 'viam';
}

/**
 * Claims are taken this many files at a time (one LMDB transaction, one fsync), up to
 * CLAIM_BATCH_BYTES: small files share a transaction, big ones are not held from the janitor
 * long before their upload starts.
 */
export const CLAIM_BATCH_FILES = 128;
export const CLAIM_BATCH_BYTES = 32 * 1024 * 1024;

/** Pending files and bytes as counted, and the monotonic `settled` totals at that moment. */
export interface Count {
  files: number;
  bytes: number;
  atFiles: number;
  atBytes: number;
}

export interface PrepareContext {
  opts: SyncOptions;
  clock: Clock;
  runId: string;
  /** The engine's store, if open (a count between rounds reads it). */
  store(): StateStore | undefined;
  /** Files this engine holds an upload lease on: a won claim adds its file. */
  leased: Set<string>;
  /** A capture file whose header cannot be read: a verdict (settle.ts). */
  moveToFailed(store: StateStore, c: Candidate, reason: string): void;
}

export class Backlog {
  private readonly opts: SyncOptions;
  private readonly clock: Clock;
  private readonly runId: string;
  private readonly leased: Set<string>;
  private readonly store: () => StateStore | undefined;
  private readonly moveToFailed: (store: StateStore, c: Candidate, reason: string) => void;
  /**
   * Pending accounting, right at any moment (an outage, a round stuck on a dead link): files
   * settled (uploaded, or moved to failed/) are counted monotonically; the backlog is the last
   * full count (a round's walk, or the walk a failed probe makes) minus what settled since.
   */
  private readonly settled = { files: 0, bytes: 0 };
  private counted: Count = { files: 0, bytes: 0, atFiles: 0, atBytes: 0 };
  /** The running round's walk so far. */
  private walk: Count | undefined;

  constructor(ctx: PrepareContext) {
    this.opts = ctx.opts;
    this.clock = ctx.clock;
    this.runId = ctx.runId;
    this.leased = ctx.leased;
    this.store = ctx.store;
    this.moveToFailed = ctx.moveToFailed;
  }

  /** A round's walk begins: pending() follows it while it runs. */
  beginWalk(): Count {
    const walk: Count = { files: 0, bytes: 0, atFiles: this.settled.files, atBytes: this.settled.bytes };
    this.walk = walk;
    return walk;
  }

  endWalk(): void {
    this.walk = undefined;
  }

  /** `walk` is the last full count (it completed). */
  countedBy(walk: Count): boolean {
    return this.counted === walk;
  }

  /** Capture files, then each additional_sync_paths root's files old enough to sync. */
  private *candidates(now: number): Generator<Candidate> {
    yield* captureCandidates(this.opts.captureDir);
    const minAge = this.opts.fileLastModifiedMs ?? DEFAULTS.file_last_modified_millis;
    for (const root of this.opts.additionalSyncPaths) yield* additionalCandidates(root, minAge, now, [this.opts.stateDir]);
  }

  /**
   * Count the backlog (no header reads; one LMDB read per file): what a failed probe defers,
   * and the pending counts until the next count. Returns the number of files.
   */
  countBacklog(): number {
    let files = 0;
    let bytes = 0;
    for (const c of this.candidates(this.clock.now())) {
      const rec = this.store()?.fileState(c.path);
      if (rec && (rec.status === 'deleting' || rec.status === 'deleted_by_janitor' || rec.status === 'failed')) continue;
      if (rec?.status === 'committed' && this.opts.deleteAfterSync === false) continue;
      files++;
      bytes += c.size;
    }
    this.counted = { files, bytes, atFiles: this.settled.files, atBytes: this.settled.bytes };
    return files;
  }

  /** Pending now: the last count less what settled since, or the running walk if it found more. */
  pending(): { files: number; bytes: number } {
    const { counted: c, walk: w, settled: s } = this;
    let files = c.files - (s.files - c.atFiles);
    let bytes = c.bytes - (s.bytes - c.atBytes);
    if (w) {
      files = Math.max(files, w.files - (s.files - w.atFiles));
      bytes = Math.max(bytes, w.bytes - (s.bytes - w.atBytes));
    }
    return { files: Math.max(0, files), bytes: Math.max(0, bytes) };
  }

  /** `c` left the backlog (uploaded, or moved to failed/). */
  settle(c: Candidate): void {
    this.settled.files++;
    this.settled.bytes += c.size;
  }

  /** Scan and decide, per file, whether it goes out this round (lazily: one file per pull). */
  *prepare(store: StateStore, res: SyncResult, walk: Count): Generator<Work> {
    const now = this.clock.now();
    const pending = (c: Candidate): void => {
      walk.files++;
      walk.bytes += c.size;
    };
    for (const c of this.candidates(now)) {
      let id: string;
      let idKey: string | undefined;
      let meta: UploadTask['meta'];
      if (c.source === 'capture') {
        const h = readCaptureHeader(c.path);
        // Not ours: a viam-server `.capture` file is uploaded through the viam converter.
        const vm = 'reason' in h ? probeViamCaptureFile(c.path) : undefined;
        if (vm) {
          const vid = `viam-${createHash('sha256').update(`${c.path}\0${c.size}\0${Math.floor(c.mtimeMs)}`).digest('hex').slice(0, 32)}`;
          const vmeta: UploadTask['meta'] = { file_id: vid, part_id: this.opts.partId, resource_kind: vm.component_type, resource_name: vm.component_name, method: vm.method_name, data_type: vm.type === 'DATA_TYPE_BINARY_SENSOR' ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR', tags: [...this.opts.tags], file_name: c.rel, source: 'capture' };
          const vrec = store.fileState(c.path);
          const go = vrec ? this.eligible(store, c, vrec, vid, now, res) : 'go';
          if (go !== 'skip') pending(c);
          if (go !== 'go') continue;
          yield { c, id: vid, meta: vmeta, format: 'viam' };
          continue;
        }
        if ('reason' in h && h.transient) {
          log.debug({ file: c.path, reason: h.reason }, 'capture file not readable now; next round');
          pending(c);
          continue;
        }
        if ('reason' in h) {
          const rec = store.fileState(c.path);
          if (rec && (rec.status === 'deleting' || rec.status === 'deleted_by_janitor')) continue;
          if (store.claimUpload(c.path, this.runId, { id: rec?.id ?? `unreadable:${randomUUID()}`, source: 'capture', size: c.size })) {
            this.moveToFailed(store, c, `unreadable capture header: ${h.reason}`);
            res.failed++;
          }
          continue;
        }
        id = h.header.id;
        meta = captureMeta(h.header, id, c.rel, this.opts);
      } else {
        idKey = `${c.path}\0${c.size}\0${Math.floor(c.mtimeMs)}`;
        const key = idKey;
        id = store.fileIdFor(key, randomUUID);
        meta = { file_id: id, part_id: this.opts.partId, data_type: 'DATA_TYPE_FILE', tags: [...this.opts.tags], file_name: c.rel, source: c.root };
      }
      const rec = store.fileState(c.path);
      const go = rec ? this.eligible(store, c, rec, id, now, res) : 'go';
      if (go !== 'skip') pending(c);
      if (go !== 'go') continue;
      yield idKey === undefined ? { c, id, meta } : { c, id, idKey, meta };
    }
    // The walk is complete: it is the backlog now (the same object: claims lost after this
    // point still correct it).
    this.counted = walk;
  }

  /** 'go': upload it now; 'later': pending, its own retry time is not due; 'skip': not ours to send. */
  private eligible(store: StateStore, c: Candidate, rec: FileState, id: string, now: number, res: SyncResult): 'go' | 'later' | 'skip' {
    switch (rec.status) {
      case 'deleting':
      case 'deleted_by_janitor':
        return 'skip'; // the janitor has it
      case 'failed':
        if (rec.id === id) return 'skip';
        return this.reopen(store, c, id);
      case 'committed':
        // The file exists again (kept by deleteAfterSync=false, or new content at the same path).
        if (this.opts.deleteAfterSync === false && rec.id === id) return 'skip';
        return this.reopen(store, c, id);
      case 'uploading':
        // In flight in this run, or in another live process: not ours. A stale lease (its owner
        // died, or it expired): restart from the beginning.
        return holderOf(rec, this.runId) === 'stale' ? 'go' : 'skip';
      case 'pending':
        if (rec.nextRetryAt > now) {
          res.deferred++;
          return 'later';
        }
        return 'go';
    }
  }

  /** committed | failed → pending for new content; 'skip' if another process changed it meanwhile. */
  private reopen(store: StateStore, c: Candidate, id: string): 'go' | 'skip' {
    try {
      store.reopenFile(c.path, id);
      return 'go';
    } catch (e) {
      if ((e as { code?: string }).code !== ErrorCodes.ILLEGAL_TRANSITION) throw e;
      return 'skip';
    }
  }

  /**
   * Claim the files `source` decides on in batches, one LMDB commit per batch (the janitor can
   * no longer take them), and hand them out one by one. `held` lists the claimed files not yet
   * handed out: the round releases them when it ends early.
   */
  *claimInBatches(store: StateStore, source: Iterator<Work>, minBatch: number, held: Work[], walk: Count): Generator<Work> {
    const maxFiles = Math.max(minBatch, CLAIM_BATCH_FILES);
    for (;;) {
      if (held.length > 0) {
        yield held.shift()!;
        continue;
      }
      const take: Work[] = [];
      let bytes = 0;
      for (let r = source.next(); !r.done; r = source.next()) {
        take.push(r.value);
        bytes += r.value.c.size;
        if (take.length >= maxFiles || (take.length >= minBatch && bytes >= CLAIM_BATCH_BYTES)) break;
      }
      if (take.length === 0) return;
      const won = store.claimUploads(take.map((w) => ({ file: w.c.path, init: { id: w.id, source: w.c.source, size: w.c.size } })), this.runId);
      take.forEach((w, i) => {
        if (won[i]) {
          held.push(w);
          this.leased.add(w.c.path);
        }
        else {
          // the janitor (or a live claim) has it: not pending for us
          walk.files--;
          walk.bytes -= w.c.size;
        }
      });
    }
  }
}
