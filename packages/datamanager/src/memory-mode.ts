/**
 * storage: "memory" wiring (docs/memory-mode.md): the MemoryStore, and one sync facade that
 * uploads the sealed in-memory files (MemorySyncEngine) and, when additional_sync_paths are set,
 * the user's files through the disk SyncEngine (its ledger in the explicit state_dir).
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { MemoryStore } from '@edgecap/capture';
import type { IngestTarget, MemorySyncEngine, RetryFailedResult, SyncEngine, SyncResult, SyncStats } from '@edgecap/sync';
import type { EdgecapConfig } from './config.js';

/**
 * Open buffers count against the budget: every stream has one open file, whose buffer may be
 * up to twice its length (it doubles as it grows), so a file is at most budget ÷ (4 × streams):
 * open buffers then take at most half the budget, whatever the number of streams (floor 16 KiB).
 */
export function memoryFileBytes(c: EdgecapConfig): number {
  const streams = Math.max(1, c.resources.reduce((n, r) => n + r.capture_methods.filter((m) => !m.disabled).length, 0));
  return Math.min(c.maximum_capture_file_size_bytes, Math.max(16 * 1024, Math.floor(c.memory_budget_bytes / (4 * streams))));
}

export async function openMemoryStore(c: EdgecapConfig): Promise<MemoryStore> {
  const { MemoryStore } = await import('@edgecap/capture');
  return new MemoryStore({ budgetBytes: c.memory_budget_bytes, policy: c.memory_full_policy });
}

/** The SyncEngine surface the DataManager uses, over memory files (+ additional_sync_paths). */
class MemoryModeSync extends EventEmitter {
  constructor(
    private readonly store: MemoryStore,
    private readonly mem: MemorySyncEngine,
    private readonly disk: SyncEngine | undefined,
  ) {
    super();
    for (const e of ['file-synced', 'sync-error', 'file-failed']) {
      mem.on(e, (x: unknown) => this.emit(e, x));
      disk?.on(e, (x: unknown) => this.emit(e, x));
    }
  }

  async start(): Promise<void> {
    await this.mem.start();
    await this.disk?.start();
  }

  async stop(): Promise<void> {
    await this.mem.stop();
    await this.disk?.stop();
  }

  setGate(fn: (() => boolean) | undefined): void {
    this.mem.setGate(fn);
    this.disk?.setGate(fn);
  }

  /** A round over what the writer has sealed so far (the files posted at its stop included). */
  async syncNow(): Promise<SyncResult> {
    await this.store.drained();
    const r = await this.mem.syncNow();
    if (!this.disk) return r;
    const d = await this.disk.syncNow();
    return { uploaded: r.uploaded + d.uploaded, alreadyHad: r.alreadyHad + d.alreadyHad, bytes: r.bytes + d.bytes, failed: r.failed + d.failed, deferred: r.deferred + d.deferred, errors: [...r.errors, ...d.errors] };
  }

  async retryFailed(): Promise<RetryFailedResult> {
    return this.disk ? this.disk.retryFailed() : { moved: 0, errors: [] };
  }

  stats(): SyncStats {
    const m = this.mem.stats();
    if (!this.disk) return m;
    const d = this.disk.stats();
    return { ...m, pendingFiles: m.pendingFiles + d.pendingFiles, pendingBytes: m.pendingBytes + d.pendingBytes, uploadedFiles: m.uploadedFiles + d.uploadedFiles, uploadedBytes: m.uploadedBytes + d.uploadedBytes, alreadyHave: m.alreadyHave + d.alreadyHave, failedFiles: m.failedFiles + d.failedFiles, failedOnDisk: d.failedOnDisk, offline: m.offline || d.offline };
  }
}

export async function memoryModeSync(c: EdgecapConfig, store: MemoryStore, ingest: IngestTarget, runId: string): Promise<SyncEngine> {
  const { MemorySyncEngine, SyncEngine, createRateLimit } = await import('@edgecap/sync');
  const intervalMs = Math.round(c.sync_interval_mins * 60_000);
  // one bandwidth cap over both engines' uploads, as over a disk engine's threads
  const pace = c.sync_max_bytes_per_second !== undefined ? { rateLimit: createRateLimit(c.sync_max_bytes_per_second) } : {};
  const mem = new MemorySyncEngine({ source: store, ingest, partId: c.part_id, tags: c.tags, intervalMs, probeIntervalMs: c.sync_probe_interval_ms, stallTimeoutMs: c.sync_stall_timeout_ms, concurrency: c.maximum_num_sync_threads * 4, ...pace });
  let disk: SyncEngine | undefined;
  if (c.additional_sync_paths.length > 0 && c.state_dir) {
    disk = new SyncEngine({
      // never created: the disk engine must not scan (and delete) anything under capture_dir
      captureDir: path.join(c.state_dir, 'no-capture-dir-in-memory-mode'),
      stateDir: c.state_dir,
      additionalSyncPaths: c.additional_sync_paths,
      fileLastModifiedMs: c.file_last_modified_millis,
      intervalMs,
      probeIntervalMs: c.sync_probe_interval_ms,
      stallTimeoutMs: c.sync_stall_timeout_ms,
      ...pace,
      threads: c.maximum_num_sync_threads,
      partId: c.part_id,
      tags: c.tags,
      ingest,
      runId,
    });
  }
  return new MemoryModeSync(store, mem, disk) as unknown as SyncEngine;
}

/** At stop: what memory still holds is lost with the process. */
export function discardMemory(store: MemoryStore, log: { warn: (o: object, m: string) => void; info: (o: object, m: string) => void }): void {
  const left = store.discardAll();
  const st = store.stats();
  if (left.files > 0) log.warn(left, 'memory mode: unsynced in-memory capture files dropped at stop (the next start explains their seqs as memory_lost)');
  log.info({ droppedFiles: st.droppedFiles, droppedReadings: st.droppedReadings, released: st.releasedFiles }, 'memory mode stopped');
}
