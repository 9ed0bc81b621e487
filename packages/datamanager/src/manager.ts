/**
 * DataManager: the embeddable facade. It owns no data path itself; it wires the engines:
 *
 *   collectors ─ring─► writer ─► capture dir ─► SyncEngine (piscina) ─gRPC─► ingest
 *        ▲                            │
 *   push()                            └─► Janitor (disk-full deletion; statfs on this thread, its own
 *                                           thread only while usage >= the deletion threshold)
 *
 * Capture and sync start and stop independently; the janitor runs only while capture does.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { applyConfigLogLevel, EdgecapError, ErrorCodes, logger, STATE_DIR_NAME, type Logger } from '@edgecap/core';
// Type-only: each engine loads on first use (import() below), so importing this package, or
// running capture alone, never loads sync's gRPC/proto/viam stack, the janitor or mongodb.
import type { StateStore } from '@edgecap/store';
import type { CaptureEngine, MemoryStore, MemoryStoreStats, ResourceSpec, StreamStats, ThreadCpu } from '@edgecap/capture';
import type { SyncEngine, FileFailedEvent, RetryFailedResult, SyncResult, SyncStats } from '@edgecap/sync';
import type { Janitor, JanitorStats } from '@edgecap/janitor';
import type { MongoSink } from '@edgecap/mongo';
import { parseConfig, readConfigFile, type EdgecapConfig, type EdgecapConfigInput } from './config.js';
import type { LockResult } from './lock.js';
import type { StatusServer, StatusServerOptions } from './status-http.js';

/** In the state dir: V8's code cache of the thread bundles (setThreadCompileCache). */
const COMPILE_CACHE_DIR = 'compile-cache';

export interface DataManagerStats {
  capture: { running: boolean; streams: StreamStats[] };
  sync: (SyncStats & { enabled: boolean }) | { enabled: false; running: false };
  janitor: JanitorStats | undefined;
  mongo: { inserted: number; failed: number; dropped: number } | undefined;
  recovered: { files: number; readings: number; cutBytes: number };
  /** storage "memory": files held, dropped for the budget (memory_full), released after sync. */
  memory?: MemoryStoreStats;
  /** After a stop with sync running: what the last round sent and what waits for the next start. */
  stopped?: StopReport;
}

/**
 * CPU time by thread, µs since each thread started (DataManager.cpu()). What `process` has beyond
 * `main` and `capture` is the helpers': V8's (compilers, GC) and libuv's pools, sync's upload
 * threads and the janitor's when they run.
 */
export interface CpuReport {
  /** The whole process: every thread, the application's own included. */
  process: { userUs: number; systemUs: number };
  /** The main thread (shared with the application that embeds edgecap); undefined on a Node without process.threadCpuUsage(). */
  main: { userUs: number; systemUs: number } | undefined;
  /** The writer and each collector thread (empty while capture is stopped). */
  capture: ThreadCpu[];
}

export interface StopReport {
  /** Files the last round at stop uploaded (or found already stored). */
  synced: number;
  /** Finished files left on disk for the next start. */
  left: number;
  /** True when stop_sync_timeout_ms cut the last round short. */
  timedOut: boolean;
}

export interface DataManagerEvents {
  'file-finished': [{ path: string; readings: number }];
  'file-synced': [{ path: string; fileId: string; status: string; bytes: number }];
  'sync-error': [{ message: string; code?: string; nextRetryAt?: number }];
  /** A file moved to <state_dir>/failed/ (a verdict about its bytes), with the reason. */
  'file-failed': [FileFailedEvent];
  'disk-warning': [{ usage: number; captureShare: number }];
  'write-error': [{ code: string; message: string; path?: string }];
  /** A collector thread that crashed (reported as `error`) is running again. */
  'collector-restarted': [{ resource: string; attempt: number }];
  /** The writer thread died (reported as `error`); a new one took over every ring. */
  'writer-restarted': [{ attempt: number }];
  error: [Error];
}

type State = 'created' | 'starting' | 'started' | 'stopping' | 'stopped';

export function toResourceSpecs(c: EdgecapConfig): ResourceSpec[] {
  return c.resources.map((r) => {
    const spec: ResourceSpec = {
      name: r.name,
      methods: r.capture_methods.map((m) => ({
        method: m.method,
        frequencyHz: m.capture_frequency_hz,
        disabled: m.disabled,
        ...(m.additional_params ? { additionalParams: m.additional_params } : {}),
        ...(m.capture_queue_size ? { queueBytes: m.capture_queue_size } : {}),
      })),
    };
    if (r.kind) spec.kind = r.kind;
    if (r.model) spec.model = r.model;
    if (r.module) spec.module = r.module;
    if (r.export) spec.export = r.export;
    if (r.attributes) spec.attributes = r.attributes;
    if (r.collector === 'shared') spec.collector = 'shared';
    if (r.collector_heap_mb !== undefined) spec.heapMb = r.collector_heap_mb;
    return spec;
  });
}

export class DataManager extends EventEmitter<DataManagerEvents> {
  private config: EdgecapConfig;
  private state: State = 'created';
  /** Claims on files (sync uploads, janitor deletions) are tagged with it; new on every start. */
  private runId = randomUUID();
  private lock: LockResult | undefined;
  /** Lifecycle calls run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  private store: StateStore | undefined;
  private capture: CaptureEngine | undefined;
  private syncEngine: SyncEngine | undefined;
  /** storage "memory": sealed capture files and the seq epoch (no StateStore, no lock, no janitor). */
  private memory: MemoryStore | undefined;
  private janitor: Janitor | undefined;
  private mongo: MongoSink | undefined;
  private recovered = { files: 0, readings: 0, cutBytes: 0 };
  private lastStreams: StreamStats[] = [];

  /**
   * `config` is typed (the schema's input: defaults optional) and still validated here, since a
   * config often comes from JSON; an invalid one throws ConfigError listing every problem.
   */
  constructor(config: EdgecapConfigInput, opts: { baseDir?: string; source?: string } = {}) {
    super();
    this.config = parseConfig(config, opts);
    // The config's log_level counts unless the app or EDGECAP_LOG_LEVEL chose a level.
    applyConfigLogLevel(this.config.log_level);
    this.log = logger('datamanager');
  }

  /** Load a JSON config file; relative paths in it resolve against the file's folder. */
  static fromFile(file: string): DataManager {
    return new DataManager(readConfigFile(file) as EdgecapConfigInput, { baseDir: path.dirname(path.resolve(file)), source: file });
  }

  get currentConfig(): EdgecapConfig {
    return this.config;
  }

  get stateDir(): string {
    // as @edgecap/store's defaultStateDir (not imported for this: it loads the store)
    return this.config.state_dir ?? path.join(this.config.capture_dir, STATE_DIR_NAME);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Start capture and sync as configured, after recovering files orphaned by a crash. */
  start(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'created' && this.state !== 'stopped') throw new EdgecapError(ErrorCodes.STATE, `cannot start while ${this.state}`);
      this.state = 'starting';
      try {
        this.runId = randomUUID();
        // Threads compile their bundles through a code cache in the state dir (private to us;
        // memory mode writes nothing to disk): a restart boots ~20 threads faster (BENCHMARKS.md).
        const cache = import('@edgecap/core/threads').then((t) => t.setThreadCompileCache(this.config.storage === 'memory' ? undefined : path.join(this.stateDir, COMPILE_CACHE_DIR)));
        // capture's threads boot (on another core) while the store opens and recovery runs
        const prespawned = this.config.capture_disabled ? undefined : cache.then(() => import('@edgecap/capture')).then((m) => m.prespawnCaptureThreads(toResourceSpecs(this.config)));
        prespawned?.catch(() => undefined);
        await cache;
        if (this.config.storage === 'memory') this.memory = await (await import('./memory-mode.js')).openMemoryStore(this.config);
        else {
          const [{ openStateStore }, { tryLock }] = await Promise.all([import('@edgecap/store'), import('./lock.js')]);
          this.store = openStateStore(this.stateDir);
          this.lock = tryLock(this.stateDir, this.store);
        }
        if (this.lock && !this.lock.owned && !this.config.capture_disabled) {
          throw new EdgecapError(ErrorCodes.STATE, `${this.config.capture_dir} is being captured into by another edgecap process (pid ${this.lock.pid})`);
        }
        // doStartCapture recovers before its writer starts; sync-only still finalizes orphans.
        if (this.lock?.owned && this.config.capture_disabled) await this.recover();
        // collectors first: MongoDB and sync load their libraries after capture runs
        if (!this.config.capture_disabled) {
          await prespawned;
          await this.doStartCapture();
          await (await import('@edgecap/capture')).dropPrespawnedThreads(); // any not taken
        }
        if (this.config.mongo_capture_config) await this.startMongo();
        if (!this.config.sync_disabled && this.config.ingest) await this.doStartSync();
        this.state = 'started';
      } catch (e) {
        // Leave nothing running behind a failed start.
        if (!this.config.capture_disabled) await (await import('@edgecap/capture')).dropPrespawnedThreads().catch(() => undefined);
        await this.shutdown().catch(() => undefined);
        throw e;
      }
    });
  }

  /**
   * Finalize `.prog` files left by a crash (or by a writer that died) so they are synced. Only
   * while this process holds the capture lock and no writer of its own is running.
   */
  private async recover(): Promise<void> {
    if (this.memory) return; // nothing on disk to recover
    const { recoverAtStartup } = await import('@edgecap/capture');
    const rec = recoverAtStartup(this.config.capture_dir, this.store!);
    if (!rec.length) return;
    this.recovered = {
      files: this.recovered.files + rec.filter((r) => r.finished).length,
      readings: this.recovered.readings + rec.reduce((a, r) => a + r.readings, 0),
      cutBytes: this.recovered.cutBytes + rec.reduce((a, r) => a + r.cutBytes, 0),
    };
    this.log.info(this.recovered, 'recovered in-progress files');
  }

  private fail(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
    else this.log.error({ err: e }, 'capture worker failed');
  }

  private requireStarted(what: string): StateStore {
    if ((!this.store && !this.memory) || (this.state !== 'started' && this.state !== 'starting')) {
      throw new EdgecapError(ErrorCodes.STATE, `${what}: DataManager is ${this.state}; call start() first`);
    }
    // memory mode: the MemoryStore is the capture engine's seq store
    return this.store ?? (this.memory as unknown as StateStore);
  }

  startCapture(): Promise<void> {
    return this.serial(() => this.doStartCapture());
  }

  private async doStartCapture(): Promise<void> {
    const store = this.requireStarted('startCapture');
    if (this.capture) return;
    if (!this.lock?.owned && !this.memory) {
      this.lock = (await import('./lock.js')).tryLock(this.stateDir, store);
      if (!this.lock.owned) throw new EdgecapError(ErrorCodes.STATE, `${this.config.capture_dir} is being captured into by another edgecap process (pid ${this.lock.pid})`);
    }
    // No writer of ours is running: anything still in progress is an orphan (e.g. a writer that died).
    await this.recover();
    const c = this.config;
    const { CaptureEngine } = await import('@edgecap/capture');
    const engine = new CaptureEngine({
      captureDir: c.capture_dir,
      store,
      partId: c.part_id,
      tags: c.tags,
      maxFileBytes: c.maximum_capture_file_size_bytes,
      maxFileAgeMs: c.maximum_capture_file_age_ms,
      flushIntervalMs: c.flush_interval_ms,
      fsyncIntervalMs: c.fsync_interval_ms,
      diskUsageThreshold: c.disk_usage_deletion_threshold,
      ...(this.memory ? { memory: this.memory, maxFileBytes: (await import('./memory-mode.js')).memoryFileBytes(c) } : {}),
    });
    engine.on('file-finished', (e: { path: string; readings: number }) => {
      this.emit('file-finished', { path: e.path, readings: e.readings });
      if (this.mongo) this.feedMongo(e.path);
    });
    engine.on('write-error', (e: { code: string; message: string; path?: string }) => this.emit('write-error', e));
    engine.on('collector-restarted', (e: { resource: string; attempt: number }) => this.emit('collector-restarted', e));
    engine.on('writer-restarted', (e: { attempt: number }) => this.emit('writer-restarted', e));
    engine.on('error', (e: Error) => this.fail(e));
    this.capture = engine;
    await engine.start(toResourceSpecs(c));
    if (!this.memory) await this.startJanitor(); // no disk in memory mode
  }

  stopCapture(): Promise<void> {
    return this.serial(() => this.doStopCapture());
  }

  private async doStopCapture(): Promise<void> {
    const engine = this.capture;
    this.capture = undefined;
    await this.stopJanitor();
    if (engine) {
      await engine.stop();
      // Keep the final counts readable after a stop (they include the last flush).
      this.lastStreams = engine.stats();
    }
  }

  private async startJanitor(): Promise<void> {
    if (this.janitor) return;
    const c = this.config;
    const { Janitor } = await import('@edgecap/janitor');
    const j = new Janitor({
      captureDir: c.capture_dir,
      stateDir: this.stateDir,
      runId: this.runId,
      intervalMs: c.janitor_interval_ms,
      diskUsageThreshold: c.disk_usage_deletion_threshold,
      captureDirThreshold: c.capture_dir_deletion_threshold,
      deleteEveryNth: c.delete_every_nth_when_disk_full,
      excludePaths: c.additional_sync_paths,
    });
    j.on('disk-warning', (e: { usage: number; captureShare: number }) => this.emit('disk-warning', e));
    await j.start();
    this.janitor = j;
  }

  private async stopJanitor(): Promise<void> {
    const j = this.janitor;
    this.janitor = undefined;
    if (j) await j.stop();
  }

  private async startMongo(): Promise<void> {
    const m = this.config.mongo_capture_config!;
    const { MongoSink } = await import('@edgecap/mongo');
    this.mongo = new MongoSink({ uri: m.uri, database: m.database, collection: m.collection, partId: this.config.part_id, tags: this.config.tags });
  }

  /** Mongo gets the readings of each finished file; disk capture never waits for it. */
  private feedMongo(file: string): void {
    void this.feedMongoAsync(file);
  }

  private async feedMongoAsync(file: string): Promise<void> {
    const sink = this.mongo;
    if (!sink) return;
    try {
      const { readCaptureFile } = await import('@edgecap/format');
      const s = readCaptureFile(file);
      if (s.header?.type === 'tabular') sink.add(s.header, s.readings);
    } catch (e) {
      // The file may already be synced and deleted; Mongo is best effort by design.
      this.log.warn({ file, err: (e as Error).message }, 'could not hand a finished file to MongoDB');
    }
  }

  private async makeSyncEngine(): Promise<SyncEngine> {
    const c = this.config;
    if (!c.ingest) throw new EdgecapError(ErrorCodes.STATE, 'sync needs an "ingest" section in the config');
    const ingest = {
      address: c.ingest.address,
      insecure: c.ingest.insecure,
      protocol: c.ingest.protocol,
      ...(c.ingest.ca_file ? { caFile: c.ingest.ca_file } : {}),
      ...(c.ingest.server_name ? { serverName: c.ingest.server_name } : {}),
      ...((c.ingest.api_key ?? process.env.EDGECAP_API_KEY) ? { apiKey: c.ingest.api_key ?? process.env.EDGECAP_API_KEY } : {}),
      ...(c.ingest.api_key_id ? { apiKeyId: c.ingest.api_key_id } : {}),
    };
    const { SyncEngine } = await import('@edgecap/sync');
    const s = this.memory ? await (await import('./memory-mode.js')).memoryModeSync(c, this.memory, ingest, this.runId) : new SyncEngine({
      captureDir: c.capture_dir,
      stateDir: this.stateDir,
      additionalSyncPaths: c.additional_sync_paths,
      fileLastModifiedMs: c.file_last_modified_millis,
      intervalMs: Math.round(c.sync_interval_mins * 60_000),
      probeIntervalMs: c.sync_probe_interval_ms,
      stallTimeoutMs: c.sync_stall_timeout_ms,
      ...(c.sync_max_bytes_per_second !== undefined ? { maxBytesPerSecond: c.sync_max_bytes_per_second } : {}),
      // the capture engine of the moment (a restart makes a new one; its counters start over)
      ...(c.sync_capture_first ? { captureLateness: () => this.capture?.lateness() ?? { late: 0, due: 0 } } : {}),
      threads: c.maximum_num_sync_threads,
      partId: c.part_id,
      tags: c.tags,
      ingest,
      runId: this.runId,
    });
    s.on('file-synced', (e) => this.emit('file-synced', e));
    s.on('sync-error', (e) => this.emit('sync-error', e));
    s.on('file-failed', (e) => this.emit('file-failed', e));
    if (c.selective_syncer_name) {
      const name = c.selective_syncer_name;
      s.setGate(() => this.capture?.shouldSync(name) === true);
    }
    return s;
  }

  private syncScheduled = false;

  /** Start scheduled sync (every sync_interval_mins). */
  startSync(): Promise<void> {
    return this.serial(() => this.doStartSync());
  }

  private async doStartSync(): Promise<void> {
    this.requireStarted('startSync');
    this.syncEngine ??= await this.makeSyncEngine();
    if (!this.syncScheduled) await this.syncEngine.start();
    this.syncScheduled = true;
  }

  stopSync(): Promise<void> {
    return this.serial(() => this.doStopSync());
  }

  private async doStopSync(): Promise<void> {
    const s = this.syncEngine;
    this.syncEngine = undefined;
    this.syncScheduled = false;
    if (s) await s.stop();
  }

  /**
   * Sync now, even while scheduled sync is off; resolves with what was uploaded. `retryFailed`
   * first moves the files in failed/ back (`edgecap sync --retry-failed`).
   */
  sync(opts: { retryFailed?: boolean } = {}): Promise<SyncResult & { retried?: RetryFailedResult }> {
    // In line with start/stop: a sync asked for during or after stop() is refused, never run on
    // a closed store (it used to reopen the pool and LMDB).
    return this.serial(() => this.doSync(opts));
  }

  private async doSync(opts: { retryFailed?: boolean }): Promise<SyncResult & { retried?: RetryFailedResult }> {
    this.requireStarted('sync');
    const run = async (s: SyncEngine): Promise<SyncResult & { retried?: RetryFailedResult }> => {
      const retried = opts.retryFailed ? await s.retryFailed() : undefined;
      const r = await s.syncNow();
      return retried ? { ...r, retried } : r;
    };
    if (this.syncEngine) return run(this.syncEngine);
    const s = await this.makeSyncEngine();
    try {
      return await run(s);
    } finally {
      await s.stop();
    }
  }

  /** Apply a new config. Resources whose config did not change keep capturing without a gap. */
  reconfigure(config: EdgecapConfigInput, opts: { baseDir?: string } = {}): Promise<void> {
    const next = parseConfig(config, opts);
    return this.serial(() => this.doReconfigure(next));
  }

  private async doReconfigure(next: EdgecapConfig): Promise<void> {
    const prev = this.config;
    if (next.capture_dir !== prev.capture_dir || next.storage !== prev.storage || (next.state_dir ?? '') !== (prev.state_dir ?? '')) {
      throw new EdgecapError(ErrorCodes.CONFIG_INVALID, 'capture_dir/state_dir/storage cannot change at run time; stop and start with the new config');
    }
    this.config = next;
    if (this.state !== 'started') return;
    // disk_usage_deletion_threshold too: the writer's ledger reserve is sized below it
    const engineKeys = ['part_id', 'tags', 'maximum_capture_file_size_bytes', 'maximum_capture_file_age_ms', 'flush_interval_ms', 'fsync_interval_ms', 'disk_usage_deletion_threshold'] as const;
    const engineChanged = engineKeys.some((k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]));
    if (next.capture_disabled) await this.doStopCapture();
    else if (this.capture && !engineChanged) await this.capture.reconfigure(toResourceSpecs(next));
    else {
      await this.doStopCapture();
      await this.doStartCapture();
    }
    const syncKeys = ['ingest', 'additional_sync_paths', 'file_last_modified_millis', 'sync_interval_mins', 'maximum_num_sync_threads', 'selective_syncer_name', 'part_id', 'tags', 'sync_max_bytes_per_second', 'sync_capture_first'] as const;
    const syncChanged = syncKeys.some((k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]));
    const wantSync = !next.sync_disabled && !!next.ingest;
    if (!wantSync) await this.doStopSync();
    else if (syncChanged || !this.syncEngine) {
      await this.doStopSync();
      await this.doStartSync();
    }
    if (this.janitor && ['janitor_interval_ms', 'disk_usage_deletion_threshold', 'capture_dir_deletion_threshold', 'delete_every_nth_when_disk_full'].some((k) => prev[k as keyof EdgecapConfig] !== next[k as keyof EdgecapConfig])) {
      await this.stopJanitor();
      await this.startJanitor();
    }
  }

  /** Hand one reading of an event-driven source to the pipeline; false = dropped (counted). */
  push(resource: string, method: string, reading: unknown, opts?: { mimeType?: string; timeRequestedUs?: number }): boolean {
    if (!this.capture) throw new EdgecapError(ErrorCodes.STATE, 'push: capture is not running');
    const res = this.config.resources.find((r) => r.name === resource);
    const m = res?.capture_methods.find((x) => x.method === method);
    // One producer per stream: a polled method's seq belongs to its collector thread.
    if (m && m.capture_frequency_hz > 0 && !m.disabled) {
      throw new EdgecapError(ErrorCodes.STATE, `push: ${resource}.${method} is polled at ${m.capture_frequency_hz} Hz; push only to methods with capture_frequency_hz 0`);
    }
    const kind = res?.kind;
    return this.capture.push(resource, method, reading, { ...opts, ...(kind ? { kind } : {}) });
  }

  /**
   * Serve the live status page, its controls, /metrics and /healthz (status-http.ts). Loopback
   * by default; the controls need `token`. Close the returned server before or after stop().
   */
  async serveStatus(opts: StatusServerOptions): Promise<StatusServer> {
    const { serveStatus } = await import('./status-http.js');
    return serveStatus(this, opts);
  }

  stats(): DataManagerStats {
    return {
      capture: { running: !!this.capture, streams: this.capture?.stats() ?? this.lastStreams },
      sync: this.syncEngine ? { ...this.syncEngine.stats(), enabled: true } : { enabled: false, running: false },
      ...(this.memory ? { memory: this.memory.stats() } : {}),
      janitor: this.janitor?.stats(),
      mongo: this.mongo?.stats(),
      recovered: this.recovered,
      ...(this.stopReport ? { stopped: this.stopReport } : {}),
    };
  }

  /** CPU time by thread (CpuReport): which resource, the writer or the helpers cost what. */
  async cpu(): Promise<CpuReport> {
    // the parts first, the whole last: process ≥ main + capture threads
    const capture = (await this.capture?.threadCpu()) ?? [];
    const threadCpuUsage = (process as { threadCpuUsage?: () => { user: number; system: number } }).threadCpuUsage;
    const m = typeof threadCpuUsage === 'function' ? threadCpuUsage.call(process) : undefined;
    const p = process.cpuUsage();
    return { process: { userUs: p.user, systemUs: p.system }, main: m && { userUs: m.user, systemUs: m.system }, capture };
  }

  /** Flush and close files, finish or abandon the in-flight upload, stop every thread. */
  stop(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'stopped' || this.state === 'created') return;
      await this.shutdown();
    });
  }

  private stopReport: StopReport | undefined;

  /**
   * A clean stop syncs what capture just closed: one more round once every file is closed,
   * bounded by stop_sync_timeout_ms (the in-flight upload is then abandoned and restarts from
   * its beginning next time), and says what is left.
   */
  private async finalSync(): Promise<void> {
    const s = this.syncEngine;
    const ms = this.config.stop_sync_timeout_ms;
    if (!s || !this.syncScheduled || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    });
    const round = s.syncNow().then(
      (r) => r,
      () => undefined,
    );
    const r = await Promise.race([round, timeout]);
    clearTimeout(timer);
    const st = s.stats();
    this.stopReport = { synced: r === 'timeout' || !r ? 0 : r.uploaded + r.alreadyHad, left: st.pendingFiles, timedOut: r === 'timeout' };
    this.log.info(this.stopReport, 'last sync round at stop');
  }

  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    const errors: unknown[] = [];
    for (const step of [() => this.doStopCapture(), () => this.finalSync(), () => this.doStopSync(), async () => this.mongo?.close()]) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    this.mongo = undefined;
    if (this.memory) (await import('./memory-mode.js')).discardMemory(this.memory, this.log);
    this.memory = undefined;
    if (this.lock?.owned) this.lock.release();
    this.lock = undefined;
    await this.store?.close();
    this.store = undefined;
    this.state = 'stopped';
    if (errors.length) throw errors[0];
  }
}
