/**
 * Sending a round's claimed files: the pool of upload threads, the runners that feed it, and what
 * every task carries about the call.
 *
 *   claimed Work ─► runners: `threads` first, the rest (threads × SMALL_UPLOADS_PER_THREAD) after
 *                   one upload went through (slow start: a dead link costs `threads` attempts)
 *     ├ small + batchable ─► a group ≤ BATCH_MAX_FILES (halved after a whole-batch refusal) /
 *     │                      BATCH_MAX_BYTES ─► ONE batch task
 *     │                      (≤ threads × BATCHES_PER_THREAD calls in flight)
 *     └ else ─► one task per file (big files: ≤ threads × UPLOADS_PER_THREAD in flight)
 *   piscina pool (worker.ts) ─► UploadOutcome / BatchOutcome ─► settle.ts, file by file
 *   a link failure: the rest of the walk is only counted (deferred), claims left unsent are held
 */
import { Piscina } from 'piscina';
import { logger, type Clock } from '@edgecap/core';
import { threadEnv } from '@edgecap/core/threads';
import type { StateStore } from '@edgecap/store';
import { statusName } from './errors.js';
import { DEFAULT_CHUNK_BYTES, addressesOf } from './target.js';
import type { UploadOutcome, UploadTask } from './upload.js';
import type { RateLimitShare } from './link.js';
import type { Uploader } from './uploader.js';
import { BATCH_MAX_BYTES, BATCH_MAX_FILES, type BatchOutcome, type BatchTask, type CallTask } from './batch.js';
import type { LinkHealth } from './link-health.js';
import type { Work } from './prepare.js';
import type { Settler } from './settle.js';
import type { SyncOptions, SyncResult } from './types.js';

const log = logger('sync');

/** Default niceIncrement of sync threads: a draining backlog yields the CPU to capture. */
export const SYNC_NICE_INCREMENT = 10;
/** Uploads of big files in flight per sync thread. */
export const UPLOADS_PER_THREAD = 4;
/**
 * Uploads in flight per sync thread when files are small (piscina concurrentTasksPerWorker):
 * per-file latency (the ingest's group commit, an fsync) is hidden behind more calls on the
 * same connection, and more files share each group commit. Files above SMALL_FILE_BYTES also
 * need one of the UPLOADS_PER_THREAD big slots, so memory stays bounded as before.
 */
export const SMALL_UPLOADS_PER_THREAD = 16;
export const SMALL_FILE_BYTES = 256 * 1024;
/**
 * UploadBatch calls in flight per sync thread (edgecap protocol): each carries up to
 * BATCH_MAX_FILES small files / BATCH_MAX_BYTES (batch.ts) in one piscina task and one gRPC call.
 */
export const BATCHES_PER_THREAD = 4;
/** The fewest files per batch after refusals (an ingest's maxBatchFiles is ≥ 1; below this, batches barely pay). */
export const BATCH_MIN_FILES = 8;

/** `p`, or a rejection as soon as `signal` aborts (p is then abandoned; its outcome is ignored). */
function runUnlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new Error('aborted'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** A counting semaphore (big-file uploads in flight). */
class Slots {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}
  take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiting.push(r));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export interface DispatchContext {
  opts: SyncOptions;
  clock: Clock;
  runId: string;
  uploader: Uploader;
  /** The bandwidth cap's shared bucket, if sync_max_bytes_per_second is set. */
  rateLimit: RateLimitShare | undefined;
  health: LinkHealth;
  settler: Settler;
  /** Files this engine holds an upload lease on: a file handed to an upload leaves it when it returns. */
  leased: Set<string>;
}

/** One round's files, as the round hands them to run(). */
export interface RoundWork {
  store: StateStore;
  /** The walk's decided files, unclaimed: once the link is down the rest is read past the claims, only counted. */
  source: Iterator<Work>;
  /** The same files, claimed in batches (prepare.ts claimInBatches over `source`). */
  work: Iterator<Work>;
  /** Claimed, not yet handed to a runner (shared with claimInBatches; the round releases what is left). */
  held: Work[];
  signal: AbortSignal;
  res: SyncResult;
  /** Files handed to uploads so far (the round's stall watchdog reads it). */
  progress: { files: number };
}

export class Dispatcher {
  private pool: Piscina | undefined;
  /** The ingest answered UNIMPLEMENTED to UploadBatch (an older server): one file per call from then on. */
  private batchOff = false;
  /**
   * Files per UploadBatch call: BATCH_MAX_FILES, halved (down to BATCH_MIN_FILES) each time the
   * ingest refuses a batch as a whole: one run with `--limit maxBatchFiles` below ours then sends
   * batches it takes, not every batch twice (refused, then file by file).
   */
  private batchFiles = BATCH_MAX_FILES;
  private readonly opts: SyncOptions;
  private readonly clock: Clock;
  private readonly runId: string;
  private readonly uploader: Uploader;
  /** The bandwidth cap's shared bucket: the same memory in every pool thread (link.ts). */
  private readonly rateLimit: RateLimitShare | undefined;
  private readonly health: LinkHealth;
  private readonly settler: Settler;
  private readonly leased: Set<string>;

  constructor(ctx: DispatchContext) {
    this.opts = ctx.opts;
    this.clock = ctx.clock;
    this.runId = ctx.runId;
    this.uploader = ctx.uploader;
    this.rateLimit = ctx.rateLimit;
    this.health = ctx.health;
    this.settler = ctx.settler;
    this.leased = ctx.leased;
  }

  /** The upload threads (started once; stop() ends them). */
  openPool(): void {
    if (!this.pool) {
      this.pool = new Piscina({
        filename: new URL('./worker.js', import.meta.url).href,
        minThreads: 0,
        maxThreads: this.opts.threads,
        idleTimeout: 30_000,
        // Several uploads in flight per thread: while one waits on the server's durable commit
        // (fsync, index) the next streams. One file per task still; each task one attempt.
        concurrentTasksPerWorker: SMALL_UPLOADS_PER_THREAD,
        // the compile cache the DataManager points capture's threads at (the state dir)
        ...threadEnv(),
      });
    }
  }

  /** End the upload threads (what still runs is abandoned: stop() aborted its round first). */
  async closePool(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await pool.destroy();
  }

  /**
   * Upload the round's claimed files until there are none left or the round is stopped.
   * Returns when every runner has ended; what was claimed and never sent is left in `held`.
   */
  async run(round: RoundWork): Promise<void> {
    const { store, source, work, held, signal, res, progress } = round;
    let linkDown = false;
    const bigSlots = new Slots(this.opts.threads * UPLOADS_PER_THREAD);
    // Slow start: `threads` uploads first; the rest of the pipeline (threads × SMALL_UPLOADS_PER_THREAD)
    // joins only after one upload succeeded this round, so a link that fails right after the
    // probe costs at most `threads` attempts (no herd).
    let opened = false;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const batchSlots = new Slots(this.opts.threads * BATCHES_PER_THREAD);
    // A file put back in `held` (waiting for a batch slot) is taken from there first: the claim
    // generator may have ended meanwhile (another runner found the walk done), and an ended
    // generator never looks at `held` again: the file would sit there until the round's end.
    const next = (): IteratorResult<Work> => (held.length > 0 ? { done: false, value: held.shift()! } : work.next());
    const runner = async (extra: boolean): Promise<void> => {
      if (extra) await gate;
      /** Pulled while filling a batch, not batchable with it: this runner's next file. */
      let carry: Work | undefined;
      try {
        // Stopping ends the walk; a link that went down only stops the uploads (the rest of the
        // round is counted as deferred, as a failed probe counts it).
        while (!signal.aborted) {
          if (carry && linkDown) {
            held.push(carry); // claimed, never sent: released with the round's other unsent claims
            carry = undefined;
          }
          // Once the link is down the rest is only counted: read past the claims.
          const got: IteratorResult<Work> = carry ? { done: false, value: carry } : linkDown ? source.next() : next();
          carry = undefined;
          if (got.done) return;
          const w = got.value;
          if (linkDown) {
            res.deferred++;
            continue;
          }
          if (this.batchable(w)) {
            // Small files travel together: up to BATCH_MAX_FILES / BATCH_MAX_BYTES per call. The
            // file waits for a call slot back in the queue, not in this runner's hands: whoever
            // gets a slot first takes it with the rest (else every waiting runner would end up
            // sending a batch of one).
            held.unshift(w);
            await batchSlots.take();
            const first = linkDown ? undefined : next();
            if (!first || first.done) {
              batchSlots.give();
              continue;
            }
            if (!this.batchable(first.value)) {
              batchSlots.give();
              carry = first.value;
              continue;
            }
            const group = [first.value];
            let bytes = first.value.c.size;
            while (group.length < this.batchFiles && !linkDown) {
              const n = next();
              if (n.done) break;
              if (!this.batchable(n.value) || bytes + n.value.c.size > BATCH_MAX_BYTES) {
                carry = n.value;
                break;
              }
              group.push(n.value);
              bytes += n.value.c.size;
            }
            let done: Awaited<ReturnType<typeof this.uploadOne>>;
            try {
              done = await this.uploadGroup(store, group, signal, res);
              progress.files += group.length;
            } catch (e) {
              res.errors.push(`${group.length} files from ${group[0]!.c.path}: ${(e as Error).message}`);
              log.warn({ err: e, files: group.length }, 'upload bookkeeping failed');
              res.deferred += group.length;
              continue;
            } finally {
              for (const g of group) this.leased.delete(g.c.path);
              batchSlots.give();
            }
            if (done === 'link') linkDown = true;
            if (done === 'ok' && !opened) {
              opened = true;
              open();
            }
            continue;
          }
          let done: Awaited<ReturnType<typeof this.uploadOne>>;
          const big = w.c.size > SMALL_FILE_BYTES;
          try {
            if (big) await bigSlots.take();
            done = await this.uploadOne(store, w, signal, res);
            progress.files++;
            this.leased.delete(w.c.path);
          } catch (e) {
            this.leased.delete(w.c.path);
            // e.g. the state store cannot write (disk full): this file waits for the next round,
            // and the round's other uploads are still awaited before it ends.
            res.errors.push(`${w.c.path}: ${(e as Error).message}`);
            log.warn({ err: e, file: w.c.path }, 'upload bookkeeping failed');
            res.deferred++;
            continue;
          } finally {
            if (big) bigSlots.give();
          }
          if (done === 'link') linkDown = true;
          if (done === 'ok' && !opened) {
            opened = true;
            open();
          }
        }
      } finally {
        if (carry) held.push(carry);
      }
    };
    const bases = Promise.all(Array.from({ length: this.opts.threads }, () => runner(false))).finally(() => open());
    const extras = this.opts.threads * (SMALL_UPLOADS_PER_THREAD - 1);
    await Promise.all([bases, ...Array.from({ length: extras }, () => runner(true))]);
  }

  /** What every upload task (one file or a batch) carries about the call: where, which channel, its time limits, its priority. */
  private callTask(): CallTask {
    const t: CallTask = { target: this.opts.ingest, addressIndex: this.health.addrIdx, channelEpoch: this.health.channelEpoch, niceIncrement: this.opts.niceIncrement ?? SYNC_NICE_INCREMENT };
    if (this.opts.uploadDeadlineMs !== undefined) t.deadlineMs = this.opts.uploadDeadlineMs;
    if (this.opts.stallTimeoutMs !== undefined) t.stallTimeoutMs = this.opts.stallTimeoutMs;
    if (this.rateLimit) t.rateLimit = this.rateLimit;
    return t;
  }

  /** Upload one claimed file and settle its state. */
  private async uploadOne(store: StateStore, w: Work, signal: AbortSignal, res: SyncResult): Promise<'ok' | 'link' | 'failed' | 'retry' | 'skip'> {
    const { c } = w;
    const task: UploadTask = { ...this.callTask(), path: c.path, meta: w.meta, chunkBytes: this.opts.chunkBytes ?? DEFAULT_CHUNK_BYTES };
    if (w.format) task.format = w.format;
    let out: UploadOutcome;
    try {
      // No `signal` for piscina: it runs at most ONE abortable task per worker, which would undo
      // concurrentTasksPerWorker. stop() aborts here and then destroys the pool (terminating the
      // workers), so the upload is abandoned all the same.
      out = await runUnlessAborted(this.pool!.run(task) as Promise<UploadOutcome>, signal);
    } catch (e) {
      // Aborted by stop(), or the worker died: the file restarts from its beginning next run.
      store.releaseUpload(c.path, this.runId);
      res.deferred++;
      if (!signal.aborted) res.errors.push(`upload worker failed for ${c.path}: ${(e as Error).message}`);
      return 'retry';
    }
    return this.settler.settleOutcome(store, w, out, res);
  }

  /** Small files go in UploadBatch calls: edgecap protocol, an ingest that has it. */
  private batchable(w: Work): boolean {
    return this.uploader.protocol === 'edgecap' && !this.batchOff && w.format === undefined && w.c.size <= SMALL_FILE_BYTES;
  }

  /**
   * Upload claimed small files in ONE UploadBatch call (one piscina task) and settle each as
   * uploadOne does. The whole call failing is one link/server failure for all of them; an ingest
   * without UploadBatch (UNIMPLEMENTED, remembered) or a batch it refuses as a whole sends each
   * file on its own, so every file gets its own verdict.
   */
  private async uploadGroup(store: StateStore, ws: Work[], signal: AbortSignal, res: SyncResult): Promise<'ok' | 'link' | 'failed' | 'retry' | 'skip'> {
    if (ws.length === 1) return this.uploadOne(store, ws[0]!, signal, res);
    const task: BatchTask = { ...this.callTask(), kind: 'batch', files: ws.map((w) => ({ path: w.c.path, meta: w.meta })) };
    const paths = ws.map((w) => w.c.path);
    let out: BatchOutcome;
    try {
      out = await runUnlessAborted(this.pool!.run(task) as Promise<BatchOutcome>, signal);
    } catch (e) {
      store.releaseUploads(paths, this.runId);
      res.deferred += ws.length;
      if (!signal.aborted) res.errors.push(`upload worker failed for a batch of ${ws.length} files from ${paths[0]}: ${(e as Error).message}`);
      return 'retry';
    }
    const worst = (dones: Awaited<ReturnType<typeof this.uploadOne>>[]): Awaited<ReturnType<typeof this.uploadOne>> =>
      dones.includes('link') ? 'link' : dones.includes('ok') ? 'ok' : dones[0]!;
    if (!out.ok) {
      if (out.unimplemented || out.kind === 'rejected') {
        // A batch refused as a whole (not a verdict about any one file): its files go again in
        // batches half its size, down to BATCH_MIN_FILES (an ingest's lower maxBatchFiles costs one
        // refused call per halving), then one per call; an ingest without UploadBatch: one per call.
        let per = 1;
        if (out.unimplemented && !this.batchOff) {
          this.batchOff = true;
          log.info({ address: addressesOf(this.opts.ingest)[this.health.addrIdx] }, 'ingest server has no UploadBatch (older version): small files go one per call');
        } else if (!out.unimplemented) {
          if (ws.length > BATCH_MIN_FILES) per = this.batchFiles = Math.max(BATCH_MIN_FILES, Math.min(this.batchFiles, Math.floor(ws.length / 2)));
          log.warn({ files: ws.length, err: out.message, nextBatchFiles: per }, 'ingest refused an upload batch as a whole: its files go again in smaller batches, or one per call');
        }
        // One part after another, as the runners would have sent them: a link failing on one
        // leaves the rest unsent (released, deferred), so the fallback makes no herd.
        const dones: Awaited<ReturnType<typeof this.uploadOne>>[] = [];
        for (let k = 0; k < ws.length; k += per) {
          const part = ws.slice(k, k + per);
          const d = per === 1 ? await this.uploadOne(store, part[0]!, signal, res) : await this.uploadGroup(store, part, signal, res);
          dones.push(d);
          if (d === 'link' || signal.aborted) {
            const rest = ws.slice(k + per).map((w) => w.c.path);
            store.releaseUploads(rest, this.runId);
            res.deferred += rest.length;
            break;
          }
        }
        return worst(dones);
      }
      // Nothing is known about any file's bytes: all wait (one transaction), one link failure.
      if (out.kind === 'server') {
        for (const w of ws) {
          const attempts = (store.fileState(w.c.path)?.attempts ?? 0) + 1;
          store.releaseUpload(w.c.path, this.runId, { attempts, nextRetryAt: this.clock.now() + this.settler.fileDelay(attempts), reason: `${statusName(out.grpcCode)}: ${out.message}` });
        }
      } else store.releaseUploads(paths, this.runId);
      this.health.linkFailure(out.kind, { code: out.grpcCode, message: out.message }, res);
      res.deferred += ws.length;
      return 'link';
    }
    const files = out.files;
    return worst(ws.map((w, k) => this.settler.settleOutcome(store, w, files[k]!, res)));
  }
}
