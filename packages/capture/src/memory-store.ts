/**
 * Memory mode (storage: "memory"), main-thread side: the sealed in-memory capture files, within
 * a byte budget, until sync has them acknowledged.
 *
 *   writer thread (MemoryFs) ──sealed file, bytes transferred──► MemoryStore ──take/release──► MemorySync
 *                            ──gaps (write_error, writer_crash)──►    │
 *                                                                     └ over budget: drop a file
 *                                                                       (drop_oldest | drop_newest),
 *                                                                       its seq range a 'memory_full' gap
 *
 * The budget counts the sealed files held AND the open buffers of the writer thread (a shared
 * counter, see memory-fs.ts). A file being uploaded is never dropped.
 *
 * It is also the capture engine's seq store (nothing is persisted): every stream starts at one
 * epoch base, derived from the start time (ms × SEQS_PER_MS), so seqs of this run never meet
 * those of an earlier run, and the first time a stream is seen, [0, base) is recorded as a
 * 'memory_lost' gap: whatever an earlier run held in memory and never synced is explained.
 * Within a run it remembers, per stream, the next seq after what sealed files cover (the writer
 * reports it before each seal): capture stopped and started again continues from there, and a
 * replacement writer thread resumes there, so what a dead writer held in open buffers becomes a
 * 'writer_crash' gap.
 */
import { EventEmitter } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import { logger, nowMicros, streamKeyString, type StreamGap, type StreamKey } from '@edgecap/core';
import { readCaptureBytes, type CaptureFileHeader } from '@edgecap/format';
import { MEM_OPEN_BYTES, MEM_POSTED } from './memory-fs.js';

const log = logger('capture.memory');

/** Seqs one stream may use per millisecond of run time before it could meet a later run's base. */
export const SEQS_PER_MS = 1024;

export type MemoryFullPolicy = 'drop_oldest' | 'drop_newest';

export type MemoryGap = StreamGap;

/** A sealed in-memory capture file: the bytes a disk file would hold. */
export interface SealedFile {
  /** The file id (header id, the sync dedup key). */
  id: string;
  /** Where it would be on disk (a name only: nothing is written there). */
  path: string;
  header: CaptureFileHeader;
  bytes: Uint8Array;
  readings: number;
  sealedAtMs: number;
}

export interface MemoryStoreOptions {
  budgetBytes: number;
  policy: MemoryFullPolicy;
  /** First seq of every stream (default: now in ms × SEQS_PER_MS). */
  epochBase?: number;
}

export interface MemoryStoreStats {
  budgetBytes: number;
  heldFiles: number;
  heldBytes: number;
  /** Bytes of the writer's open (unsealed) buffers. */
  openBytes: number;
  sealedFiles: number;
  releasedFiles: number;
  droppedFiles: number;
  droppedBytes: number;
  droppedReadings: number;
  /** Files the ingest refused (a verdict about their bytes): released, their range a 'rejected' gap. */
  rejectedFiles: number;
  epochBase: number;
}

/** What the writer thread needs in memory mode (the port is transferred). */
export interface MemoryWriterInit {
  port: MessagePort;
  openSab: SharedArrayBuffer;
}

export type MemoryWriterMessage =
  | { type: 'sealed'; path: string; header: unknown; readings: number; bytes: Uint8Array }
  | { type: 'seqs'; seqs: { key: StreamKey; next: number }[] }
  | { type: 'gap'; gap: MemoryGap };

interface Held extends SealedFile {
  taken: boolean;
}

const gapKey = (g: MemoryGap): string => `${g.kind}/${g.name}/${g.method}/${g.from_seq}/${g.to_seq}/${g.reason}`;

export class MemoryStore extends EventEmitter<{ sealed: [SealedFile]; dropped: [{ file: SealedFile; gap: MemoryGap | undefined }] }> {
  /** No state dir in memory mode (the writer thread opens none). */
  readonly dir = '';
  readonly openSab = new SharedArrayBuffer(16);
  readonly epochBase: number;
  private readonly open = new Float64Array(this.openSab);
  /** In seal order: the first is the oldest. */
  private readonly files = new Map<string, Held>();
  private readonly gaps = new Map<string, MemoryGap>();
  private readonly seen = new Set<string>();
  /** Per stream: the next seq after what sealed files (or explained gaps) cover. */
  private readonly sealedNext = new Map<string, number>();
  private held = 0;
  private readonly st = { sealedFiles: 0, releasedFiles: 0, droppedFiles: 0, droppedBytes: 0, droppedReadings: 0, rejectedFiles: 0 };

  constructor(private readonly o: MemoryStoreOptions) {
    super();
    this.epochBase = o.epochBase ?? Date.now() * SEQS_PER_MS;
  }

  // ── the capture engine's seq store ───────────────────────────────────────────

  /** Every stream starts at the epoch base; the seqs below it are explained once per stream. */
  nextSeq(key: StreamKey): number {
    const k = streamKeyString(key);
    if (!this.seen.has(k)) {
      this.seen.add(k);
      if (this.epochBase > 0) this.recordGap({ ...key, from_seq: 0, to_seq: this.epochBase - 1, reason: 'memory_lost', time_us: nowMicros() });
    }
    return Math.max(this.epochBase, this.sealedNext.get(k) ?? 0);
  }

  advanceSeqSync(key: StreamKey, next: number): void {
    const k = streamKeyString(key);
    if (next > (this.sealedNext.get(k) ?? 0)) this.sealedNext.set(k, next);
  }

  advanceSeqsSync(entries: readonly { key: StreamKey; next: number }[]): void {
    for (const e of entries) this.advanceSeqSync(e.key, e.next);
  }

  /**
   * Held until reported. A range that continues the last unreported one of its stream and reason
   * extends it (drop_oldest drops a stream's files in order): a long outage adds a few ranges,
   * not one per dropped file, and stays inside what one ReportGaps call may carry.
   */
  recordGap(g: MemoryGap): void {
    const sk = `${g.kind}/${g.name}/${g.method}/${g.reason}`;
    for (const [k, have] of this.gaps) {
      if (`${have.kind}/${have.name}/${have.method}/${have.reason}` !== sk) continue;
      if (g.from_seq === have.to_seq + 1 || have.from_seq === g.to_seq + 1) {
        this.gaps.delete(k);
        const merged = { ...have, from_seq: Math.min(have.from_seq, g.from_seq), to_seq: Math.max(have.to_seq, g.to_seq), time_us: g.time_us };
        this.gaps.set(gapKey(merged), merged);
        return;
      }
    }
    this.gaps.set(gapKey(g), { ...g });
  }

  unreportedGaps(): MemoryGap[] {
    return [...this.gaps.values()];
  }

  /** The ingest has them. */
  markGapsReported(gs: readonly MemoryGap[]): void {
    for (const g of gs) this.gaps.delete(gapKey(g));
  }

  // ── sealed files ───────────────────────────────────────────────────────────

  /** Messages of the writer thread (sealed files, gaps). */
  attach(port: MessagePort): void {
    port.on('message', (m: MemoryWriterMessage) => {
      if (m.type === 'gap') this.recordGap(m.gap);
      else if (m.type === 'seqs') this.advanceSeqsSync(m.seqs);
      else this.add({ id: (m.header as CaptureFileHeader).id, path: m.path, header: m.header as CaptureFileHeader, bytes: m.bytes, readings: m.readings, sealedAtMs: Date.now() });
    });
  }

  get openBytes(): number {
    return this.open[MEM_OPEN_BYTES]!;
  }

  /**
   * Every file the writer thread posted has arrived (its messages come on their own port, so
   * they may trail the writer's stop answer). False after `timeoutMs`.
   */
  async drained(timeoutMs = 5000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.st.sealedFiles < this.open[MEM_POSTED]!) {
      if (Date.now() > until) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  add(f: SealedFile): void {
    this.st.sealedFiles++;
    const h: Held = { ...f, taken: false };
    this.files.set(f.id, h);
    this.held += f.bytes.length;
    this.emit('sealed', f);
    this.enforce(h);
  }

  /** Over budget: drop files by the policy (never one being uploaded) until it fits. */
  private enforce(newest: Held): void {
    while (this.held + this.openBytes > this.o.budgetBytes) {
      let victim: Held | undefined;
      if (this.o.policy === 'drop_newest') victim = this.files.get(newest.id) && !newest.taken ? newest : undefined;
      else for (const f of this.files.values()) if (!f.taken) { victim = f; break; }
      if (!victim) {
        log.warn({ held: this.held, open: this.openBytes, budget: this.o.budgetBytes }, 'memory budget exceeded by files being uploaded and open buffers');
        return;
      }
      this.drop(victim, 'memory_full');
      if (this.o.policy === 'drop_newest') return;
    }
  }

  private drop(f: Held, reason: 'memory_full' | 'rejected'): void {
    this.files.delete(f.id);
    this.held -= f.bytes.length;
    // The seq range the file covered (its readings and the gaps it explained) is lost: explained.
    const s = readCaptureBytes(f.bytes, f.path);
    let from = Infinity;
    let to = -1;
    for (const r of s.readings) {
      if (r.seq < from) from = r.seq;
      if (r.seq > to) to = r.seq;
    }
    for (const g of s.gaps) {
      if (g.from_seq < from) from = g.from_seq;
      if (g.to_seq > to) to = g.to_seq;
    }
    let gap: MemoryGap | undefined;
    if (to >= 0) {
      gap = { kind: f.header.kind, name: f.header.name, method: f.header.method, from_seq: from, to_seq: to, reason, time_us: nowMicros() };
      this.recordGap(gap);
    }
    if (reason === 'rejected') {
      this.st.rejectedFiles++;
      return;
    }
    this.st.droppedFiles++;
    this.st.droppedBytes += f.bytes.length;
    this.st.droppedReadings += s.readings.length;
    log.warn({ file: f.id, stream: `${f.header.kind}/${f.header.name}/${f.header.method}`, from, to, bytes: f.bytes.length }, 'memory budget full: in-memory capture file dropped');
    this.emit('dropped', { file: f, gap });
  }

  /** Sealed files not being uploaded, oldest first. */
  pending(): SealedFile[] {
    return [...this.files.values()].filter((f) => !f.taken);
  }

  /** Claim a file for upload (false: dropped or taken meanwhile). One process owns the memory: no lease. */
  take(id: string): boolean {
    const f = this.files.get(id);
    if (!f || f.taken) return false;
    f.taken = true;
    return true;
  }

  /** Upload failed: the file waits for the next round (and may be dropped again). */
  untake(id: string): void {
    const f = this.files.get(id);
    if (f) f.taken = false;
  }

  /** Acknowledged by the ingest: the memory is released. */
  release(id: string): void {
    const f = this.files.get(id);
    if (!f) return;
    this.files.delete(id);
    this.held -= f.bytes.length;
    this.st.releasedFiles++;
  }

  /**
   * The ingest refused the bytes (a verdict): no failed/ in memory mode, so the memory is
   * released and the file's seq range becomes a 'rejected' gap (explained, not silently lost).
   */
  reject(id: string): void {
    const f = this.files.get(id);
    if (f) this.drop(f, 'rejected');
  }

  /** At stop: what is still held is lost with the process; say how much. */
  discardAll(): { files: number; bytes: number; readings: number } {
    const out = { files: this.files.size, bytes: this.held, readings: 0 };
    for (const f of this.files.values()) out.readings += f.readings;
    this.files.clear();
    this.held = 0;
    return out;
  }

  stats(): MemoryStoreStats {
    return { budgetBytes: this.o.budgetBytes, heldFiles: this.files.size, heldBytes: this.held, openBytes: this.openBytes, ...this.st, epochBase: this.epochBase };
  }
}
