/**
 * CaptureEngine: the main-thread owner of the capture pipeline.
 *
 *   start(resources) ─► writer worker (1) ◄── rings ── collector workers (1 per resource)
 *                                          ◄── rings ── shared collector worker (every resource
 *                                                       with collector 'shared', 1 ring each)
 *                                          ◄── rings ── push() (1 ring per pushed stream)
 *   control: comlink; bulk data: SAB rings (+ MessagePort for oversize frames); stats: SAB counters
 *
 * Supervision (@edgecap/core's threads/host.ts: one host, one restart policy): every call to a thread is
 * raced against its exit and a timeout; a thread that dies (or leaves a call unanswered) is
 * reported, terminated and restarted with backoff.
 *   collector died   its ring is retired (the writer drains what it published); what it
 *                    numbered but never published is a 'collector_crash' gap; restarted.
 *   collector hung   at stop: terminated after its timeout, same retirement, 'collector_timeout'.
 *   writer died      the rings keep filling (ring_full drops, explained in-band); its .prog files
 *                    are recovered (seqs persisted, then renamed); a new writer takes every ring
 *                    over from where the dead one released it, told each stream's resumeFrom
 *                    (Stat.WRITTEN_SEQ / recovered files): frames below it are skipped, seqs
 *                    between it and the first frame read are a 'writer_crash' gap.
 *   writer hung at stop  terminated; the same recovery, and every stream's rest is a
 *                    'writer_crash' gap; stop() rejects with the timeout.
 *   shared thread    its resources are not isolated from each other: one that blocks delays
 *                    the others, and a stop or reconfigure waits for it (up to the collector
 *                    stop timeout, then the thread is terminated). The thread dying (or hung)
 *                    is every one of its resources crashing: each ring is retired as above and
 *                    each resource restarted, with its own backoff, in a new shared thread.
 *                    Threads of their own never wait for it.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { DEFAULTS, EdgecapError, ErrorCodes, fromWire, IN_PROGRESS_EXT, logger, nowMicros, streamKeyString, type StreamKey } from '@edgecap/core';
import { FrameEncoder, listFiles, recoverCaptureDir, type RecoveryResult } from '@edgecap/format';
import { createRingBuffer, Doorbell, RingProducer } from '@edgecap/ring';
import type { StateStore } from '@edgecap/store';
import type { CollectorApi } from './collector-worker.js';
import { StreamEmitter } from './emitter.js';
import { newResSab, newStatsSab, ResSlot, Stat } from './layout.js';
import { Comlink, DEFAULT_RESTART, dropPrespawned, ManagedWorker, prespawn, Restarter, type RestartPolicy, type StopResult } from '@edgecap/core/threads';
import { enabledMethods } from './resource.js';
import type { ResourceSpec, StreamInfo, WriterEvent } from './types.js';
import type { MemoryStore } from './memory-store.js';
import type { WriterApi } from './writer-worker.js';

const log = logger('capture.engine');

/** How long a collector may take to finish its in-flight call at stop before it is terminated. */
const COLLECTOR_STOP_TIMEOUT_MS = 3_000;
/** The writer drains, flushes, syncs and renames everything at stop: give it time. */
const WRITER_STOP_TIMEOUT_MS = 60_000;
/** Every oversize token a dead collector ever sent (tokens are u32). */
const ALL_TOKENS = 0xffff_ffff;

export interface CaptureOptions {
  captureDir: string;
  /** The process's StateStore; the writer thread opens its own handle on `store.dir`. In memory mode, the MemoryStore. */
  store: CaptureSeqStore;
  /** storage "memory": the writer seals files into this store instead of writing capture_dir. */
  memory?: MemoryStore;
  partId: string;
  tags: string[];
  maxFileBytes?: number;
  maxFileAgeMs?: number;
  flushIntervalMs?: number;
  fsyncIntervalMs?: number;
  /** The janitor's disk_usage_deletion_threshold (the writer keeps its ledger reserve below it). */
  diskUsageThreshold?: number;
  /** Ring size of a pushed stream (default DEFAULTS.capture_queue_size). */
  pushQueueBytes?: number;
  /** Restart backoff of crashed threads (default 1 s doubling to 1 min; reset after 1 min up). */
  restart?: Partial<RestartPolicy>;
  /** A control call unanswered this long means the thread is hung (default 30 s). */
  callTimeoutMs?: number;
  /** Collector stop (its in-flight resource call) before it is terminated (default 3 s). */
  collectorStopTimeoutMs?: number;
  /** Writer stop (drain, flush, sync, rename) before it is terminated (default 60 s). */
  writerStopTimeoutMs?: number;
  /** Crash fixtures only: the writer thread's entry module (one that wraps the real one). */
  writerUrl?: URL;
}

export interface StreamStats {
  resource: string;
  kind: string;
  method: string;
  /** Readings accepted into the ring (produced minus `dropped`). */
  captured: number;
  /** Readings dropped because the ring was full (each explained by a ring_full GAP frame). */
  dropped: number;
  missedDeadlines: number;
  /** Calls of the capture method that threw (nothing captured for them). */
  captureErrors: number;
  bytes: number;
  writeErrors: number;
  /** Of `captured`, readings that could not be written (explained by write_error GAP frames). */
  droppedOnWriteError: number;
  nextSeq: number;
}

export interface PushOptions {
  mimeType?: string;
  timeRequestedUs?: number;
  kind?: string;
}

interface StreamEntry {
  resource: string;
  kind: string;
  method: string;
  key: StreamKey;
  statsSab: SharedArrayBuffer;
  stats: Float64Array;
  /** Seqs below this that are on no disk are explained by gaps this engine recorded. */
  explainedTo: number;
}

interface CollectorEntry {
  spec: ResourceSpec;
  hash: string;
  kind: string;
  /** Its own thread, or the shared one. */
  mw: ManagedWorker<CollectorApi>;
  ringId: number;
  shared: boolean;
}

/** One capture thread's CPU time so far (µs); a restarted thread counts from its own start. */
export interface ThreadCpu {
  thread: 'writer' | 'collector' | 'shared';
  /** The resources a collector thread runs (several for the shared one; none for the writer). */
  resources: string[];
  /** Node's thread id: a restarted thread has a new one. */
  threadId: number;
  userUs: number;
  systemUs: number;
}

/** A ring the engine created; the writer (this one or the next) reads it until it is retired. */
interface RingEntry {
  id: number;
  sab: SharedArrayBuffer;
  infos: StreamInfo[];
  /** The producing collector's thread (undefined: a push ring, produced on this thread). */
  collector: ManagedWorker<CollectorApi> | undefined;
  /** The producing resource (its name addresses it in a shared thread). */
  resource?: string;
  /** The writer that reads it. */
  addedTo: ManagedWorker<WriterApi> | undefined;
  /** Its producer is gone: retire it, then explain what the producer numbered past the writer. */
  retire: { reason: string; graceful: boolean; numbered: Map<string, number> } | undefined;
  retiring: boolean;
  /**
   * The writer end of the producer's oversize port, made while no writer was up (the first one
   * was still starting): handed to the writer that takes the ring. Messages wait in it till then.
   */
  bulkPort?: MessagePort | undefined;
}

type EngineState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

// One file per thread (scripts/bundle-threads.js, run by the build): the entries of
// collector-worker.ts and writer-worker.ts, ~3 MB less per collector than their module graphs.
const collectorUrl = new URL('./threads/collector.cjs', import.meta.url);
const writerUrl = new URL('./threads/writer.cjs', import.meta.url);

/**
 * Start booting the threads a start(resources) will use (the writer, each collector, the shared
 * one) while the caller still opens its state store and recovers: a thread's boot is mostly
 * Node's own bootstrap, which runs on another core meanwhile. start() adopts them; call
 * dropPrespawnedThreads() after it (or instead of it) to end any left over.
 */
export function prespawnCaptureThreads(resources: readonly ResourceSpec[]): void {
  prespawn(writerUrl, WRITER_NAME);
  let shared = false;
  for (const spec of resources) {
    if (enabledMethods(spec).length === 0) continue;
    if (spec.collector === 'shared') shared = true;
    else prespawn(collectorUrl, collectorName(spec.name), collectorHeapMb(spec));
  }
  if (shared) prespawn(collectorUrl, SHARED_NAME, COLLECTOR_HEAP_MB);
}

export const dropPrespawnedThreads = dropPrespawned;

const WRITER_NAME = 'edgecap-writer';
const SHARED_NAME = 'edgecap-collector-shared';
const collectorName = (resource: string): string => `edgecap-collector-${resource}`;
/**
 * A collector's V8 heap limit unless its resource sets one, MB. A sensor driver needs a few MB;
 * this leaves room for heavy user modules while bounding a leaking one (see @edgecap/core's threads/host.ts
 * for why any limit also makes every collector smaller).
 */
export const COLLECTOR_HEAP_MB = 512;
const collectorHeapMb = (spec: ResourceSpec): number => spec.heapMb ?? COLLECTOR_HEAP_MB;

export class CaptureEngine extends EventEmitter {
  private state: EngineState = 'idle';
  private readonly bell = new Doorbell();
  /** The current writer thread (maybe failed, waiting for its restart). */
  private writer: ManagedWorker<WriterApi> | undefined;
  /** The current writer is up and has every ring. */
  private writerLive = false;
  /** Why the writer last died (stop() rejects with it when no writer could finish the job). */
  private writerError: EdgecapError | undefined;
  /** 1 for the first writer; a later one resumes streams from their resumeFrom. */
  private writerGeneration = 0;
  private readonly collectors = new Map<string, CollectorEntry>();
  /** The shared collector thread (made by the first resource that wants it). */
  private shared: ManagedWorker<CollectorApi> | undefined;
  /** Shared resources starting or stopping now (the thread is not stopped under them). */
  private sharedBusy = 0;
  private readonly restarter: Restarter;
  private readonly rings = new Map<number, RingEntry>();
  private readonly streams = new Map<string, StreamEntry>();
  private readonly resWords = new Map<string, { sab: SharedArrayBuffer; words: Int32Array }>();
  private readonly pushStreams = new Map<string, { em: StreamEmitter; ring: RingProducer; ringId: number }>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly ports: MessagePort[] = [];
  private pushPort: MessagePort | undefined;
  private readonly pushEnc = new FrameEncoder();
  private readonly pushToken = { v: 0 };
  private nextRingId = 1;
  private specs: ResourceSpec[] = [];
  /** Per stream, the seq after the highest one found in a dead writer's recovered files. */
  private readonly recoveredNext = new Map<string, number>();

  constructor(private readonly opts: CaptureOptions) {
    super();
    this.restarter = new Restarter({ ...DEFAULT_RESTART, ...opts.restart });
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else log.error({ err }, 'capture engine error (no error listener)');
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => {});
    return p;
  }

  async start(resources: ResourceSpec[]): Promise<void> {
    if (this.state !== 'idle') throw new EdgecapError(ErrorCodes.STATE, `capture engine cannot start from state ${this.state}`);
    this.state = 'starting';
    try {
      // Collectors boot beside the writer (a thread's boot is mostly its module graph): their
      // rings fill meanwhile and the writer takes every ring registered before it came up.
      this.state = 'running';
      const settled = await Promise.allSettled([this.startWriter(), this.startCollectors(resources)]);
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      this.specs = resources;
    } catch (e) {
      await this.stop().catch(() => {});
      throw e;
    }
  }

  // ── the writer ────────────────────────────────────────────────────────────────────────────

  /** Start a writer thread and hand it every ring; the first one, or a replacement. */
  private async startWriter(): Promise<void> {
    const o = this.opts;
    const generation = ++this.writerGeneration;
    const mw: ManagedWorker<WriterApi> = new ManagedWorker<WriterApi>(o.writerUrl ?? writerUrl, WRITER_NAME, (e) => this.writerCrashed(mw, e), this.workerOpts());
    this.writer = mw;
    const events = new MessageChannel();
    events.port1.on('message', (ev: WriterEvent) => {
      if (ev.type === 'file-finished') this.emit('file-finished', { path: ev.path, header: ev.header, readings: ev.readings });
      else this.emit('write-error', { code: ev.code, message: ev.message, path: ev.path });
    });
    this.ports.push(events.port1);
    let mem: unknown;
    if (o.memory) {
      const ch = new MessageChannel();
      o.memory.attach(ch.port1);
      this.ports.push(ch.port1);
      mem = Comlink.transfer({ port: ch.port2, openSab: o.memory.openSab }, [ch.port2 as never]);
    }
    await mw.call('init', [
      {
        captureDir: o.captureDir,
        partId: o.partId,
        tags: o.tags,
        maxFileBytes: o.maxFileBytes ?? DEFAULTS.maximum_capture_file_size_bytes,
        maxFileAgeMs: o.maxFileAgeMs ?? DEFAULTS.maximum_capture_file_age_ms,
        flushIntervalMs: o.flushIntervalMs ?? DEFAULTS.flush_interval_ms,
        fsyncIntervalMs: o.fsyncIntervalMs ?? DEFAULTS.fsync_interval_ms,
        diskUsageThreshold: o.diskUsageThreshold ?? DEFAULTS.disk_usage_deletion_threshold,
        bellSab: this.bell.sab,
      },
      o.store.dir,
      Comlink.transfer(events.port2, [events.port2 as never]) as unknown as never,
      mem as never,
    ]);
    // push oversize frames: tokens up to here went to the dead writer (none for the first)
    const bulk = new MessageChannel();
    this.pushPort?.close();
    this.pushPort = bulk.port1;
    this.ports.push(bulk.port1);
    const pushLost = generation > 1 ? this.pushToken.v >>> 0 : -1;
    await mw.call('addBulkPort', [Comlink.transfer(bulk.port2, [bulk.port2 as never]) as unknown as never]);
    // every ring (including ones registered meanwhile)
    for (;;) {
      const todo = [...this.rings.values()].filter((r) => r.addedTo !== mw);
      if (todo.length === 0) break;
      for (const r of todo) await this.addRingTo(mw, r, generation > 1, pushLost);
    }
    mw.started();
    this.writerLive = true;
    await this.processRetirements();
  }

  private workerOpts(): { callTimeoutMs?: number } {
    return this.opts.callTimeoutMs !== undefined ? { callTimeoutMs: this.opts.callTimeoutMs } : {};
  }

  /** The writer thread died or hung: report it; while running, restart it with backoff. */
  private writerCrashed(mw: ManagedWorker<WriterApi>, err: EdgecapError): void {
    this.fail(err);
    if (mw === this.writer) this.writerError = err;
    if (mw !== this.writer || !this.writerLive) return; // a failed (re)start: its caller handles it
    this.writerLive = false;
    if (this.state !== 'running') return; // stop() finishes without it
    const { attempt, delayMs } = this.restarter.schedule(
      'writer',
      performance.now() - mw.startedAt,
      (n) => this.restartWriter(n),
      () => this.state === 'running' && !this.writerLive,
    );
    log.warn({ attempt, delayMs }, 'writer thread died; restarting it');
  }

  private async restartWriter(attempt: number): Promise<void> {
    await this.writer?.stop();
    this.recoverOrphans();
    if (this.state !== 'running') return;
    await this.startWriter();
    this.emit('writer-restarted', { attempt });
  }

  /**
   * No writer runs (it died): close what it left open, recover its .prog files the way the
   * writer commits (seqs persisted, then renamed), announce them, note how far each stream got.
   */
  private recoverOrphans(): void {
    if (this.opts.memory) return; // nothing on disk: a dead writer's buffers died with it
    closeLeakedFds(listFiles(this.opts.captureDir, IN_PROGRESS_EXT));
    const results = recoverAtStartup(this.opts.captureDir, this.opts.store);
    for (const r of results) {
      if (!r.key || r.lastSeq === undefined) continue;
      const k = streamKeyString(r.key);
      this.recoveredNext.set(k, Math.max(this.recoveredNext.get(k) ?? 0, r.lastSeq + 1));
      if (r.finished) this.emit('file-finished', { path: r.finished, header: undefined, readings: r.readings });
    }
    if (results.length) log.info({ files: results.length }, 'recovered the dead writer thread\'s in-progress files');
  }

  /** Everything below is in a file or explained: where a replacement writer resumes the stream. */
  private resumeFrom(s: StreamEntry): number {
    // Memory mode: written bytes died with the writer's buffers; only sealed files count.
    if (this.opts.memory) return Math.max(this.opts.memory.nextSeq(s.key), s.explainedTo);
    return Math.max(s.stats[Stat.WRITTEN_SEQ]!, this.recoveredNext.get(streamKeyString(s.key)) ?? 0, s.explainedTo);
  }

  private async addRingTo(w: ManagedWorker<WriterApi>, r: RingEntry, resume: boolean, pushLost: number): Promise<void> {
    let lost = -1;
    let infos = r.infos;
    if (r.bulkPort) {
      const port = r.bulkPort;
      r.bulkPort = undefined;
      if (resume) port.close(); // rebound below
      else {
        try {
          await w.call('addBulkPort', [Comlink.transfer(port, [port as never]) as unknown as never]);
        } catch (e) {
          // A collector that died (before the first writer was up) closed its end, and Node then
          // refuses to move ours ("already detached"): nothing can come through it any more, and
          // the restarted collector gets a port of its own. Seen under load in restart.test.ts.
          if ((e as Error).name !== 'DataCloneError') throw e;
        }
      }
    }
    if (resume) {
      if (!r.collector) lost = pushLost;
      else {
        // the collector's oversize frames go to this writer from now on
        const bulk = new MessageChannel();
        await w.call('addBulkPort', [Comlink.transfer(bulk.port2, [bulk.port2 as never]) as unknown as never]);
        try {
          if (!r.collector.alive) throw new EdgecapError(ErrorCodes.WORKER_EXITED, 'collector gone');
          lost = await r.collector.call('rebindWriter', [Comlink.transfer(bulk.port1, [bulk.port1 as never]) as unknown as never, r.resource]);
        } catch {
          bulk.port1.close();
          lost = ALL_TOKENS;
        }
      }
      infos = r.infos.map((i) => ({ ...i, resumeFrom: this.resumeFrom(this.streams.get(streamKeyString(i.key))!) }));
    }
    await w.call('addRing', [r.id, r.sab, infos, lost]);
    r.addedTo = w;
  }

  /** Hand a new ring to the live writer (a writer started later takes it from the registry). */
  private async registerRing(r: RingEntry): Promise<void> {
    this.rings.set(r.id, r);
    const w = this.writer;
    if (!w || !this.writerLive) return;
    try {
      await this.addRingTo(w, r, this.writerGeneration > 1, -1);
    } catch (e) {
      if (w.alive) throw e;
      // the writer died meanwhile: its replacement takes the ring
    }
    await this.processRetirements();
  }

  /** The ring's producer is gone (terminated, or stopped and closed it): retire it and account. */
  private async retireRing(ringId: number, reason: string, graceful = false): Promise<void> {
    const r = this.rings.get(ringId);
    if (!r) return;
    // what the producer numbered, now final (a restarted collector numbers on from here)
    const numbered = new Map(r.infos.map((i) => [streamKeyString(i.key), this.streams.get(streamKeyString(i.key))!.stats[Stat.NEXT_SEQ]!]));
    r.retire = { reason, graceful, numbered };
    await this.processRetirements();
  }

  /** Retire, on the live writer, every ring whose producer is gone. Never throws. */
  private async processRetirements(): Promise<void> {
    const w = this.writer;
    if (!w || !this.writerLive) return; // the next writer retires them
    for (const r of [...this.rings.values()]) {
      if (!r.retire || r.retiring || r.addedTo !== w) continue;
      r.retiring = true;
      let got: { key: StreamKey; nextSeq: number }[];
      try {
        got = await w.call('retireRing', [r.id, r.retire.graceful]);
      } catch (e) {
        r.retiring = false;
        log.warn({ err: e, ring: r.id }, 'could not retire a ring; the next writer will');
        return;
      }
      this.rings.delete(r.id);
      for (const { key, nextSeq } of got) {
        const s = this.streams.get(streamKeyString(key));
        if (!s) continue;
        const written = Math.max(nextSeq, this.opts.store.nextSeq(key));
        const numbered = r.retire.numbered.get(streamKeyString(key)) ?? s.stats[Stat.NEXT_SEQ]!;
        this.explain(s, written, numbered - 1, r.retire.reason);
      }
    }
  }

  /** Record [from, to] of a stream as a gap with a reason (minus what this engine already explained). */
  private explain(s: StreamEntry, from: number, to: number, reason: string): void {
    from = Math.max(from, s.explainedTo);
    if (from > to) return;
    try {
      this.opts.store.recordGap({ ...s.key, from_seq: from, to_seq: to, reason, time_us: nowMicros() });
      s.explainedTo = to + 1;
      log.warn({ stream: streamKeyString(s.key), from, to, reason }, 'seqs recorded as a gap');
    } catch (e) {
      this.fail(new EdgecapError(ErrorCodes.WRITE_FAILED, `could not record a ${reason} gap [${from}, ${to}] of ${streamKeyString(s.key)}: ${(e as Error).message}`, { cause: e }));
    }
  }

  // ── collectors ────────────────────────────────────────────────────────────────────────────

  private resWord(name: string): { sab: SharedArrayBuffer; words: Int32Array } {
    let r = this.resWords.get(name);
    if (!r) {
      const sab = newResSab();
      r = { sab, words: new Int32Array(sab) };
      this.resWords.set(name, r);
    }
    return r;
  }

  private streamEntry(resource: string, kind: string, method: string): StreamEntry {
    const key = { kind, name: resource, method };
    const k = streamKeyString(key);
    let s = this.streams.get(k);
    if (!s) {
      const statsSab = newStatsSab();
      s = { resource, kind, method, key, statsSab, stats: new Float64Array(statsSab), explainedTo: 0 };
      // everything below the persisted seq is in earlier files: a dead writer never lost it
      s.stats[Stat.WRITTEN_SEQ] = this.opts.store.nextSeq(key);
      this.streams.set(k, s);
    }
    return s;
  }

  /** Seq to start a stream at: persisted next seq, or further if this engine already went past it. */
  private startSeq(key: StreamKey, s: StreamEntry): number {
    return Math.max(this.opts.store.nextSeq(key), s.stats[Stat.NEXT_SEQ]!, s.explainedTo);
  }

  private async startCollector(spec: ResourceSpec): Promise<void> {
    const methods = enabledMethods(spec);
    if (methods.length === 0) return;
    const ringBytes = Math.max(...methods.map((m) => m.queueBytes ?? DEFAULTS.capture_queue_size));
    const ringSab = createRingBuffer(ringBytes);
    const ringId = this.nextRingId++;
    const shared = spec.collector === 'shared';
    const mw: ManagedWorker<CollectorApi> = shared ? this.sharedThread() : new ManagedWorker<CollectorApi>(collectorUrl, collectorName(spec.name), (e) => this.collectorCrashed(spec.name, mw, e), { ...this.workerOpts(), heapMb: collectorHeapMb(spec) });
    let registered = false;
    let loaded = false;
    if (shared) this.sharedBusy++;
    try {
      const bulk = new MessageChannel();
      const w = this.writer;
      let pendingBulk: MessagePort | undefined;
      if (w && this.writerLive) {
        try {
          await w.call('addBulkPort', [Comlink.transfer(bulk.port2, [bulk.port2 as never]) as unknown as never]);
        } catch (e) {
          if (w.alive) throw e; // else the replacement writer rebinds this collector
        }
      } else if (this.writerGeneration <= 1) pendingBulk = bulk.port2; // the first writer is starting: it takes the port with the ring
      // (a later writer rebinds every collector's port itself)
      const r = await mw.call('load', [
        { spec, ringId, ringSab, bellSab: this.bell.sab, resSab: this.resWord(spec.name).sab },
        Comlink.transfer(bulk.port1, [bulk.port1 as never]) as unknown as never,
        shared,
      ]);
      if (!r.ok) throw fromWire(r.error);
      loaded = true;
      const infos: StreamInfo[] = [];
      const starts = methods.map((m, index) => {
        const key = { kind: r.kind, name: spec.name, method: m.method };
        const s = this.streamEntry(spec.name, r.kind, m.method);
        const mime = typeof m.additionalParams?.mime_type === 'string' ? m.additionalParams.mime_type : undefined;
        infos.push({ index, key, statsSab: s.statsSab, ...(mime ? { mimeType: mime } : spec.model === 'sim:camera' ? { mimeType: 'image/jpeg' } : {}), ...(m.additionalParams ? { params: m.additionalParams } : {}) });
        return { method: m.method, index, startSeq: this.startSeq(key, s), statsSab: s.statsSab };
      });
      registered = true;
      await this.registerRing({ id: ringId, sab: ringSab, infos, collector: mw, resource: spec.name, addedTo: undefined, retire: undefined, retiring: false, bulkPort: pendingBulk });
      await mw.call('start', [starts, spec.name]);
      if (mw.state === 'starting') mw.started();
      this.collectors.set(spec.name, { spec, hash: JSON.stringify(spec), kind: r.kind, mw, ringId, shared });
    } catch (e) {
      if (!shared) await mw.stop();
      else if (loaded && mw.alive) await mw.call('stop', [spec.name], this.opts.collectorStopTimeoutMs ?? COLLECTOR_STOP_TIMEOUT_MS).catch(() => undefined); // the others stay
      if (registered) await this.retireRing(ringId, 'collector_crash');
      throw e;
    } finally {
      if (shared) {
        this.sharedBusy--;
        await this.releaseShared();
      }
    }
  }

  /** The shared collector thread; a new one when there is none (or it died). */
  private sharedThread(): ManagedWorker<CollectorApi> {
    if (this.shared?.alive) return this.shared;
    const mw: ManagedWorker<CollectorApi> = new ManagedWorker<CollectorApi>(collectorUrl, SHARED_NAME, (e) => this.sharedCrashed(mw, e), { ...this.workerOpts(), heapMb: COLLECTOR_HEAP_MB });
    this.shared = mw;
    return mw;
  }

  /** Stop the shared thread once no resource uses it (nor is starting or stopping in it). */
  private async releaseShared(): Promise<void> {
    const mw = this.shared;
    if (!mw || this.sharedBusy > 0) return;
    for (const c of this.collectors.values()) if (c.mw === mw) return;
    this.shared = undefined;
    await mw.stop('stop', this.opts.collectorStopTimeoutMs ?? COLLECTOR_STOP_TIMEOUT_MS);
  }

  /** The shared thread died or hung: each of its resources crashed (one report, a restart each). */
  private sharedCrashed(mw: ManagedWorker<CollectorApi>, err: EdgecapError): void {
    this.fail(err);
    for (const c of [...this.collectors.values()]) if (c.mw === mw) this.collectorCrashed(c.spec.name, mw, err, false);
  }

  /**
   * Start collectors side by side: a thread's boot (its module graph, the resource's own
   * loading) is mostly waiting and single-threaded work, and collectors already running flat out
   * would otherwise slow every later boot. All settle before the first failure is thrown, so
   * stop() finds every collector that did start.
   */
  private async startCollectors(specs: ResourceSpec[]): Promise<void> {
    const settled = await Promise.allSettled(specs.map((spec) => this.startCollector(spec)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * A collector thread died or hung (an uncaught exception in the resource's own callbacks, out
   * of memory, a call unanswered): report it, then restart it with backoff. Its stream keeps its
   * seq numbering; whatever the dead thread numbered but never published is recorded as a gap.
   */
  private collectorCrashed(name: string, mw: ManagedWorker<CollectorApi>, err: EdgecapError, report = true): void {
    if (report) this.fail(err);
    const c = this.collectors.get(name);
    if (this.state !== 'running' || c?.mw !== mw) return;
    const { attempt, delayMs } = this.restarter.schedule(
      `collector:${name}`,
      performance.now() - mw.startedAt,
      (n) => this.restartCollector(name, mw, n),
      () => this.state === 'running' && this.collectors.get(name)?.mw === mw,
    );
    log.warn({ resource: name, attempt, delayMs }, 'collector crashed; restarting it');
  }

  private async restartCollector(name: string, dead: ManagedWorker<CollectorApi>, attempt: number): Promise<void> {
    const c = this.collectors.get(name);
    if (this.state !== 'running' || c?.mw !== dead) return; // stopped or reconfigured meanwhile
    await dead.stop(); // (the shared thread: whichever of its resources comes first)
    await this.retireRing(c.ringId, 'collector_crash');
    if (this.state !== 'running' || this.collectors.get(name)?.mw !== dead) return;
    // The dead entry stays until startCollector replaces it, so reconfigure never starts a twin.
    await this.startCollector(c.spec);
    this.emit('collector-restarted', { resource: name, attempt });
  }

  private async stopCollector(name: string): Promise<void> {
    this.restarter.cancel(`collector:${name}`);
    const c = this.collectors.get(name);
    if (!c) return;
    this.collectors.delete(name);
    // A resource method stuck for good must not hold stop()/reconfigure() hostage.
    const res = c.shared ? await this.stopShared(c) : await c.mw.stop('stop', this.opts.collectorStopTimeoutMs ?? COLLECTOR_STOP_TIMEOUT_MS);
    if (res.outcome === 'failed' || (res.outcome === 'timeout' && !c.shared)) this.fail(res.error!); // (a hung shared thread reports itself)
    // The same accounting on every path: what it numbered and never published is explained.
    const reason = res.outcome === 'graceful' ? 'ring_full' : res.outcome === 'timeout' ? 'collector_timeout' : 'collector_crash';
    await this.retireRing(c.ringId, reason, res.outcome === 'graceful');
  }

  /**
   * One resource of the shared thread: its stop call, raced as every call is (a hang past the
   * stop timeout is the thread's: terminated, its other resources restarted); the thread itself
   * stops with its last resource.
   */
  private async stopShared(c: CollectorEntry): Promise<StopResult> {
    let res: StopResult = { outcome: 'dead' };
    this.sharedBusy++;
    try {
      if (c.mw.alive) {
        try {
          await c.mw.call('stop', [c.spec.name], this.opts.collectorStopTimeoutMs ?? COLLECTOR_STOP_TIMEOUT_MS);
          res = { outcome: 'graceful' };
        } catch (e) {
          const err = e instanceof EdgecapError ? e : new EdgecapError(ErrorCodes.WORKER_EXITED, String(e), { cause: e });
          res = { outcome: err.details?.timeout === true ? 'timeout' : err.code === ErrorCodes.WORKER_EXITED ? 'dead' : 'failed', error: err };
        }
      }
      // gone or hung: wait until it is terminated, so nothing writes to the ring retired next
      if (res.outcome === 'timeout' || res.outcome === 'dead') await c.mw.stop();
    } finally {
      this.sharedBusy--;
    }
    await this.releaseShared();
    return res;
  }

  /** Restart only resources whose spec changed (or that were added/removed); others keep streaming. */
  async reconfigure(resources: ResourceSpec[]): Promise<void> {
    if (this.state !== 'running') throw new EdgecapError(ErrorCodes.STATE, `cannot reconfigure in state ${this.state}`);
    const next = new Map(resources.map((r) => [r.name, r]));
    const changed: ResourceSpec[] = [];
    for (const [name, c] of this.collectors) {
      const n = next.get(name);
      if (!n || JSON.stringify(n) !== c.hash) await this.stopCollector(name);
    }
    for (const r of resources) if (!this.collectors.has(r.name)) changed.push(r);
    await this.startCollectors(changed);
    this.specs = resources;
  }

  /** Hand one reading to the pipeline from the main thread. false = dropped (counted). */
  push(resource: string, method: string, reading: unknown, opts: PushOptions = {}): boolean {
    if (this.state !== 'running') throw new EdgecapError(ErrorCodes.STATE, `cannot push in state ${this.state}`);
    const mapKey = `${resource}\0${method}`;
    let ps = this.pushStreams.get(mapKey);
    if (!ps) {
      const spec = this.specs.find((s) => s.name === resource);
      const kind = opts.kind ?? this.collectors.get(resource)?.kind ?? spec?.kind ?? 'generic';
      const key = { kind, name: resource, method };
      const s = this.streamEntry(resource, kind, method);
      const qb = spec?.methods.find((m) => m.method === method)?.queueBytes ?? this.opts.pushQueueBytes ?? DEFAULTS.capture_queue_size;
      const sab = createRingBuffer(qb);
      const ringId = this.nextRingId++;
      const ring = new RingProducer(sab, this.bell);
      const em = new StreamEmitter(
        {
          ring,
          enc: this.pushEnc,
          res: this.resWord(resource).words,
          nextToken: this.pushToken,
          // the port of the current writer (a replacement gets a new one)
          sendOversize: (token, frame) => this.pushPort?.postMessage({ ringId, token, frame }, [frame.buffer as ArrayBuffer]),
        },
        0,
        s.statsSab,
        this.startSeq(key, s),
        opts.mimeType,
      );
      const info: StreamInfo = { index: 0, key, statsSab: s.statsSab, ...(opts.mimeType ? { mimeType: opts.mimeType } : {}) };
      this.track(this.registerRing({ id: ringId, sab, infos: [info], collector: undefined, addedTo: undefined, retire: undefined, retiring: false })).catch((e: unknown) => this.fail(e as Error));
      ps = { em, ring, ringId };
      this.pushStreams.set(mapKey, ps);
    }
    const now = nowMicros();
    return ps.em.emit(reading, opts.timeRequestedUs ?? now, now, opts.mimeType);
  }

  shouldSync(resource: string): boolean | undefined {
    const r = this.resWords.get(resource);
    if (!r) return undefined;
    const v = Atomics.load(r.words, ResSlot.SHOULD_SYNC);
    return v < 0 ? undefined : v === 1;
  }

  /**
   * Capture's punctuality so far, over every stream (cumulative; a restart resets it): what sync
   * follows to put capture first (sync_capture_first). Late = missed deadlines + ring drops.
   */
  lateness(): { late: number; due: number } {
    let late = 0;
    let due = 0;
    for (const s of this.streams.values()) {
      const st = s.stats;
      const l = st[Stat.MISSED]! + st[Stat.DROPPED]!;
      late += l;
      due += st[Stat.CAPTURED]! + l;
    }
    return { late, due };
  }

  stats(): StreamStats[] {
    const out: StreamStats[] = [];
    for (const s of this.streams.values()) {
      const st = s.stats;
      out.push({
        resource: s.resource,
        kind: s.kind,
        method: s.method,
        captured: st[Stat.CAPTURED]!,
        dropped: st[Stat.DROPPED]!,
        missedDeadlines: st[Stat.MISSED]!,
        captureErrors: st[Stat.CAPTURE_ERRORS]!,
        bytes: st[Stat.BYTES]!,
        writeErrors: st[Stat.WRITE_ERRORS]!,
        droppedOnWriteError: st[Stat.DROPPED_ON_WRITE_ERROR]!,
        nextSeq: st[Stat.NEXT_SEQ]!,
      });
    }
    return out;
  }

  /**
   * CPU time of each capture thread (the writer, every collector thread), read from outside
   * them. Empty on a Node without `worker.cpuUsage()`; a thread gone between two reads is left out.
   */
  async threadCpu(): Promise<ThreadCpu[]> {
    const threads = new Map<Pick<ManagedWorker<unknown>, 'cpuUsage'>, Omit<ThreadCpu, 'userUs' | 'systemUs'>>();
    if (this.writer) threads.set(this.writer, { thread: 'writer', resources: [], threadId: this.writer.worker.threadId });
    for (const [name, c] of this.collectors) {
      const t = threads.get(c.mw) ?? { thread: c.shared ? 'shared' : 'collector', resources: [], threadId: c.mw.worker.threadId };
      t.resources.push(name);
      threads.set(c.mw, t);
    }
    const out: ThreadCpu[] = [];
    await Promise.all(
      [...threads].map(async ([mw, t]) => {
        const u = await mw.cpuUsage();
        if (u) out.push({ ...t, userUs: u.user, systemUs: u.system });
      }),
    );
    return out;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /**
   * Stop collectors, close push rings, let the writer drain, flush and rename every file.
   * Always returns: every thread gets a bounded stop and is then terminated. Rejects with the
   * first error (a writer that did not stop cleanly: its files are recovered and what it lost is
   * recorded as 'writer_crash' gaps before that).
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    const errors: unknown[] = [];
    this.restarter.cancelAll();
    await this.restarter.idle();
    if (wasRunning && this.writer && !this.writerLive) {
      // the writer died and its restart was pending: bring one up now, to drain the rings
      try {
        await this.writer.stop();
        this.recoverOrphans();
        await this.startWriter();
      } catch (e) {
        errors.push(e);
      }
    }
    await Promise.all([...this.collectors.keys()].map((n) => this.stopCollector(n).catch((e: unknown) => errors.push(e))));
    if (this.shared) {
      const mw = this.shared; // no resource left in it (a start failed midway): just end it
      this.shared = undefined;
      await mw.stop();
    }
    for (const ps of this.pushStreams.values()) {
      await ps.em.flushPendingGap();
      ps.ring.close();
    }
    await Promise.allSettled([...this.pending]);
    for (const ps of this.pushStreams.values()) await this.retireRing(ps.ringId, 'ring_full', true);
    const w = this.writer;
    let clean = !w;
    if (w && this.writerLive) {
      const res = await w.stop('stop', this.opts.writerStopTimeoutMs ?? WRITER_STOP_TIMEOUT_MS);
      clean = res.outcome === 'graceful';
      if (!clean) errors.push(res.error ?? new EdgecapError(ErrorCodes.WORKER_EXITED, `writer ${res.outcome} at stop`));
    } else if (w) {
      await w.stop();
      errors.push(this.writerError ?? new EdgecapError(ErrorCodes.WORKER_EXITED, 'no writer thread was running at stop'));
    }
    this.writerLive = false;
    if (!clean) this.finishWithoutWriter(errors);
    for (const p of this.ports) p.close();
    this.state = 'stopped';
    if (errors.length) throw errors[0];
  }

  /**
   * The writer did not stop cleanly (died, hung, never came back): recover its files, and
   * record what no file holds as 'writer_crash' gaps, so every seq stays accounted for.
   */
  private finishWithoutWriter(errors: unknown[]): void {
    try {
      this.recoverOrphans();
    } catch (e) {
      // the .prog files stay for start-up recovery; a gap now could cover seqs they hold
      errors.push(e);
      return;
    }
    for (const s of this.streams.values()) this.explain(s, this.resumeFrom(s), s.stats[Stat.NEXT_SEQ]! - 1, 'writer_crash');
    this.rings.clear();
  }
}

/**
 * Close the file descriptors a dead writer thread left open on these files (fds belong to the
 * process, not the thread). Linux (/proc/self/fd); elsewhere they stay open until exit.
 */
function closeLeakedFds(files: readonly string[]): void {
  if (files.length === 0 || process.platform !== 'linux') return;
  const want = new Set(files);
  let fds: string[];
  try {
    fds = fs.readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const fd of fds) {
    try {
      if (want.has(fs.readlinkSync(`/proc/self/fd/${fd}`))) fs.closeSync(Number(fd));
    } catch {
      /* gone meanwhile, or not a file */
    }
  }
}

/** The slice of StateStore the engine uses (a MemoryStore in memory mode). */
export type CaptureSeqStore = Pick<StateStore, 'dir' | 'nextSeq' | 'recordGap' | 'advanceSeqsSync'>;

/** The slice of StateStore recovery needs (tests pass one that fails). */
export type RecoverySeqStore = Pick<StateStore, 'advanceSeqsSync'>;

/**
 * Start-up recovery (never on reconfigure; also after the writer thread died): finalize every
 * orphaned .prog (torn tail cut). In the writer's order: each stream's persisted seq is advanced
 * past what its files hold (one transaction) BEFORE any is renamed, so no seq is ever reused;
 * when that fails nothing is renamed and the error propagates.
 */
export function recoverAtStartup(captureDir: string, store: RecoverySeqStore): RecoveryResult[] {
  return recoverCaptureDir(captureDir, (seqs) => store.advanceSeqsSync(seqs));
}
