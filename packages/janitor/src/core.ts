import fs from 'node:fs';
import { DEFAULTS, logger, nowMicros, type Logger } from '@edgecap/core';
import { readCaptureFile } from '@edgecap/format';
import { StateStore, type ExplainedGap } from '@edgecap/store';
import { everyNth, scanCaptureDir, type Candidate } from './scan.js';
import { diskUsage, type StatfsFn } from './usage.js';

/**
 * The janitor's decision logic, written against injected statfs/clock/store so it runs
 * in-process in unit tests and inside the worker thread in production.
 *
 *   statfs(capture dir) ──► usage < threshold ───────────────────────────► 'none'
 *                            │ >= threshold
 *                            ├─ capture share < captureDirThreshold ─────► 'warned' (rate-limited log)
 *                            └─ share >= threshold ─► round: every Nth finished file, oldest first
 *                                  per file: read seqs ─► claimDelete(gaps) ─► unlink ─► finishDelete (gaps + mark, one txn)
 *                               repeat while usage >= threshold, share holds and a round deleted something
 */
export interface JanitorCoreOptions {
  captureDir: string;
  stateDir: string;
  runId: string;
  diskUsageThreshold?: number;
  captureDirThreshold?: number;
  deleteEveryNth?: number;
  statfs?: StatfsFn;
  /** Files/dirs inside the capture dir never to delete (e.g. additional_sync_paths). */
  excludePaths?: readonly string[];
  /** Safety bound on deletion rounds per check (default 1000). */
  maxRounds?: number;
  /** Use this store instead of opening one at stateDir (not closed by the core). */
  store?: StateStore;
}

export interface JanitorRound {
  usage: number;
  /** NaN when the check stopped at statfs (usage under the threshold: the capture dir was not walked). */
  captureDirBytes: number;
  /** NaN as captureDirBytes. */
  captureShare: number;
  action: 'none' | 'warned' | 'deleted';
  deletedFiles: number;
  freedBytes: number;
  rounds: number;
  /** Usage seen at the start of the check (before any deletion). */
  startUsage: number;
  /** action 'warned': whether this check logged/emitted it (false = rate-limited; set by Janitor). */
  warningEmitted: boolean;
  /** Candidate slots skipped because the sync worker holds the file (uploading/committed), summed over rounds. */
  skippedClaimed: number;
}

export class JanitorCore {
  private readonly log: Logger = logger('janitor');
  private readonly statfs: StatfsFn;
  private readonly store: StateStore;
  private readonly ownStore: boolean;
  readonly threshold: number;
  readonly captureThreshold: number;
  readonly nth: number;

  constructor(private readonly o: JanitorCoreOptions) {
    this.statfs = o.statfs ?? diskUsage;
    this.threshold = o.diskUsageThreshold ?? DEFAULTS.disk_usage_deletion_threshold;
    this.captureThreshold = o.captureDirThreshold ?? DEFAULTS.capture_dir_deletion_threshold;
    this.nth = Math.max(1, Math.floor(o.deleteEveryNth ?? DEFAULTS.delete_every_nth_when_disk_full));
    this.ownStore = !o.store;
    this.store = o.store ?? new StateStore(o.stateDir);
    // Finish (or undo) deletions a crashed run left between claim and mark.
    const settled = this.store.settleStaleDeletes(o.runId, (f) => fs.existsSync(f));
    if (settled) this.log.info({ settled }, 'settled deletions left by an earlier run');
  }

  check(): JanitorRound {
    const first = this.measure();
    const r: JanitorRound = {
      usage: first.usage,
      captureDirBytes: first.bytes,
      captureShare: first.share,
      action: 'none',
      deletedFiles: 0,
      freedBytes: 0,
      rounds: 0,
      startUsage: first.usage,
      warningEmitted: false,
      skippedClaimed: 0,
    };
    if (first.usage < this.threshold) return r;
    if (first.share < this.captureThreshold) {
      // Logging/emitting (rate-limited) is the Janitor's job: its state outlives a worker.
      r.action = 'warned';
      return r;
    }
    let m = first;
    const maxRounds = this.o.maxRounds ?? 1000;
    while (m.usage >= this.threshold && m.share >= this.captureThreshold && r.rounds < maxRounds) {
      // Files the sync worker holds are not eligible, so they take no slot in the every-Nth
      // count (claimDelete re-checks atomically for uploads that start after this filter).
      const scan = scanCaptureDir(this.o.captureDir, this.o.excludePaths);
      const eligible = scan.candidates.filter((c) => !this.heldBySync(c.path));
      r.skippedClaimed += scan.candidates.length - eligible.length;
      if (eligible.length === 0) break;
      const round = this.deleteRound(everyNth(eligible, this.nth));
      r.rounds++;
      r.deletedFiles += round.files;
      r.freedBytes += round.bytes;
      r.skippedClaimed += round.skipped;
      m = this.measure();
      this.log.info(
        { round: r.rounds, files: round.files, bytesFreed: round.bytes, skipped: round.skipped, usage: m.usage, captureShare: m.share },
        'janitor deletion round',
      );
      if (round.files === 0) break;
    }
    r.usage = m.usage;
    r.captureDirBytes = m.bytes;
    r.captureShare = m.share;
    if (r.deletedFiles > 0) r.action = 'deleted';
    if (m.usage >= this.threshold) {
      this.log.warn({ usage: m.usage, captureShare: m.share, rounds: r.rounds }, 'disk usage still above threshold after janitor rounds');
    }
    return r;
  }

  /** Not the janitor's to take (a live upload lease of any process, committed, deleted): the ledger's own rule. */
  private heldBySync(file: string): boolean {
    return !this.store.canClaimDelete(file, this.o.runId);
  }

  private measure(): { usage: number; usedBytes: number; bytes: number; share: number } {
    const u = this.statfs(this.o.captureDir);
    const bytes = scanCaptureDir(this.o.captureDir, this.o.excludePaths).totalBytes;
    const share = u.usedBytes > 0 ? bytes / u.usedBytes : 0;
    return { usage: u.usedFraction, usedBytes: u.usedBytes, bytes, share };
  }

  private deleteRound(victims: readonly Candidate[]): { files: number; bytes: number; skipped: number } {
    let files = 0;
    let bytes = 0;
    let skipped = 0;
    for (const c of victims) {
      const res = this.deleteOne(c);
      if (res === 'deleted') {
        files++;
        bytes += c.size;
      } else if (res === 'claimed') skipped++;
    }
    return { files, bytes, skipped };
  }

  /** Claim, record the seq ranges it held, unlink, mark. */
  private deleteOne(c: Candidate): 'deleted' | 'claimed' | 'failed' {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(c.path);
      if (!st.isFile()) return 'failed';
    } catch {
      return 'failed';
    }
    let summary: ReturnType<typeof readCaptureFile> | undefined;
    try {
      summary = readCaptureFile(c.path);
    } catch (e) {
      this.log.warn({ file: c.path, err: (e as Error).message }, 'janitor could not read capture file; deleting without a gap record');
    }
    const id = summary?.header?.id ?? `path:${c.path}`;
    const gaps = summary?.header ? gapsOf(summary) : [];
    if (!this.store.claimDelete(c.path, this.o.runId, id, st.size, gaps)) return 'claimed';
    try {
      fs.unlinkSync(c.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.error({ file: c.path, err: (e as Error).message }, 'janitor unlink failed; file left pending');
        this.store.undoDelete(c.path, this.o.runId, `janitor unlink failed: ${(e as Error).message}`);
        return 'failed';
      }
    }
    this.store.finishDelete(c.path, 'disk full', this.o.runId);
    return 'deleted';
  }

  async close(): Promise<void> {
    if (this.ownStore) await this.store.close();
  }
}

/**
 * The seq ranges a file held: one janitor gap per contiguous run of reading seqs, plus the
 * file's own GAP frames re-recorded with their original reason (they vanish with the file).
 */
export function gapsOf(s: ReturnType<typeof readCaptureFile>, timeUs: number = nowMicros()): Omit<ExplainedGap, 'reported'>[] {
  const h = s.header;
  if (!h) return [];
  const key = { kind: h.kind, name: h.name, method: h.method };
  const seqs = [...new Set(s.readings.map((r) => r.seq))].sort((a, b) => a - b);
  const out: Omit<ExplainedGap, 'reported'>[] = [];
  let i = 0;
  while (i < seqs.length) {
    const from = seqs[i]!;
    let to = from;
    while (i + 1 < seqs.length && seqs[i + 1] === to + 1) to = seqs[++i]!;
    out.push({ ...key, from_seq: from, to_seq: to, reason: 'janitor', time_us: timeUs });
    i++;
  }
  for (const g of s.gaps) out.push({ ...key, from_seq: g.from_seq, to_seq: g.to_seq, reason: g.reason, time_us: g.time_us });
  return out;
}
