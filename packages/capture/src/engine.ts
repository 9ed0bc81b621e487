/**
 * CaptureEngine: the main-thread owner of the capture pipeline.
 *
 *   start(resources) ─► writer worker (1) ◄── rings ── collector workers (1 per resource)
 *                                          ◄── rings ── push() (1 ring per pushed stream)
 *   control: comlink; bulk data: SAB rings (+ MessagePort for oversize frames); stats: SAB counters
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Backoff, DEFAULTS, EdgecapError, ErrorCodes, fromWire, logger, nowMicros, streamKeyString, type StreamKey } from '@edgecap/core';
import { FrameEncoder, recoverCaptureDir, type RecoveryResult } from '@edgecap/format';
import { createRingBuffer, Doorbell, RingProducer } from '@edgecap/ring';
import type { StateStore } from '@edgecap/store';
import type { CollectorApi } from './collector-worker.js';
import { Comlink } from './comlink.js';
import { StreamEmitter } from './emitter.js';
import { newResSab, newStatsSab, ResSlot, Stat } from './layout.js';
import { ManagedWorker } from './managed-worker.js';
import { enabledMethods } from './resource.js';
import type { ResourceSpec, StreamInfo, WriterEvent } from './types.js';
import type { WriterApi } from './writer-worker.js';

const log = logger('capture.engine');

/** How long a collector may take to finish its in-flight call at stop before it is terminated. */
const COLLECTOR_STOP_TIMEOUT_MS = 3_000;
/** A crashed collector is restarted after 1 s, doubling up to 1 min; one that ran this long starts over at 1 s. */
const RESTART = { initialMs: 1_000, maxMs: 60_000, stableMs: 60_000 };
/** The writer drains, flushes, syncs and renames everything at stop: give it time. */
const WRITER_STOP_TIMEOUT_MS = 60_000;

export interface CaptureOptions {
  captureDir: string;
  /** The process's StateStore; the writer thread opens its own handle on `store.dir`. */
  store: StateStore;
  partId: string;
  tags: string[];
  maxFileBytes?: number;
  maxFileAgeMs?: number;
  flushIntervalMs?: number;
  fsyncIntervalMs?: number;
  /** Ring size of a pushed stream (default DEFAULTS.capture_queue_size). */
  pushQueueBytes?: number;
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
  statsSab: SharedArrayBuffer;
  stats: Float64Array;
}

interface CollectorEntry {
  spec: ResourceSpec;
  hash: string;
  kind: string;
  mw: ManagedWorker<CollectorApi>;
  ringId: number;
  startedAt: number;
}

type EngineState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const collectorUrl = new URL('./collector-worker.js', import.meta.url);
const writerUrl = new URL('./writer-worker.js', import.meta.url);

export class CaptureEngine extends EventEmitter {
  private state: EngineState = 'idle';
  private readonly bell = new Doorbell();
  private writer: ManagedWorker<WriterApi> | undefined;
  private readonly collectors = new Map<string, CollectorEntry>();
  /** Restart backoff per resource whose collector crashed. */
  private readonly restarts = new Map<string, { backoff: Backoff; timer: NodeJS.Timeout | undefined }>();
  private readonly streams = new Map<string, StreamEntry>();
  private readonly resWords = new Map<string, { sab: SharedArrayBuffer; words: Int32Array }>();
  private readonly pushStreams = new Map<string, { em: StreamEmitter; ring: RingProducer }>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly ports: MessagePort[] = [];
  private pushPort: MessagePort | undefined;
  private readonly pushEnc = new FrameEncoder();
  private readonly pushToken = { v: 0 };
  private nextRingId = 1;
  private specs: ResourceSpec[] = [];

  constructor(private readonly opts: CaptureOptions) {
    super();
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else log.error({ err }, 'capture engine error (no error listener)');
  }

  async start(resources: ResourceSpec[]): Promise<void> {
    if (this.state !== 'idle') throw new EdgecapError(ErrorCodes.STATE, `capture engine cannot start from state ${this.state}`);
    this.state = 'starting';
    const o = this.opts;
    const mw = new ManagedWorker<WriterApi>(writerUrl, 'edgecap-writer', (e) => this.fail(e));
    this.writer = mw;
    const events = new MessageChannel();
    events.port1.on('message', (ev: WriterEvent) => {
      if (ev.type === 'file-finished') this.emit('file-finished', { path: ev.path, header: ev.header, readings: ev.readings });
      else this.emit('write-error', { code: ev.code, message: ev.message, path: ev.path });
    });
    this.ports.push(events.port1);
    try {
      await mw.api.init(
        {
          captureDir: o.captureDir,
          partId: o.partId,
          tags: o.tags,
          maxFileBytes: o.maxFileBytes ?? DEFAULTS.maximum_capture_file_size_bytes,
          maxFileAgeMs: o.maxFileAgeMs ?? DEFAULTS.maximum_capture_file_age_ms,
          flushIntervalMs: o.flushIntervalMs ?? DEFAULTS.flush_interval_ms,
          fsyncIntervalMs: o.fsyncIntervalMs ?? DEFAULTS.fsync_interval_ms,
          bellSab: this.bell.sab,
        },
        o.store.dir,
        Comlink.transfer(events.port2, [events.port2 as never]) as unknown as never,
      );
      mw.started();
      const bulk = new MessageChannel();
      this.pushPort = bulk.port1;
      this.ports.push(bulk.port1);
      await mw.api.addBulkPort(Comlink.transfer(bulk.port2, [bulk.port2 as never]) as unknown as never);
      this.state = 'running';
      await this.startCollectors(resources);
      this.specs = resources;
    } catch (e) {
      await this.stop().catch(() => {});
      throw e;
    }
  }

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
    const k = `${kind}/${resource}/${method}`;
    let s = this.streams.get(k);
    if (!s) {
      const statsSab = newStatsSab();
      s = { resource, kind, method, statsSab, stats: new Float64Array(statsSab) };
      this.streams.set(k, s);
    }
    return s;
  }

  /** Seq to start a stream at: persisted next seq, or further if this engine already went past it. */
  private startSeq(key: StreamKey, s: StreamEntry): number {
    return Math.max(this.opts.store.nextSeq(key), s.stats[Stat.NEXT_SEQ]!);
  }

  private async startCollector(spec: ResourceSpec): Promise<void> {
    const methods = enabledMethods(spec);
    if (methods.length === 0) return;
    const writer = this.writer!;
    const ringBytes = Math.max(...methods.map((m) => m.queueBytes ?? DEFAULTS.capture_queue_size));
    const ringSab = createRingBuffer(ringBytes);
    const ringId = this.nextRingId++;
    const mw: ManagedWorker<CollectorApi> = new ManagedWorker<CollectorApi>(collectorUrl, `edgecap-collector-${spec.name}`, (e) => this.collectorCrashed(spec.name, mw, e));
    try {
      const bulk = new MessageChannel();
      await writer.api.addBulkPort(Comlink.transfer(bulk.port2, [bulk.port2 as never]) as unknown as never);
      const r = await mw.api.load(
        { spec, ringId, ringSab, bellSab: this.bell.sab, resSab: this.resWord(spec.name).sab },
        Comlink.transfer(bulk.port1, [bulk.port1 as never]) as unknown as never,
      );
      if (!r.ok) throw fromWire(r.error);
      const infos: StreamInfo[] = [];
      const starts = methods.map((m, index) => {
        const key = { kind: r.kind, name: spec.name, method: m.method };
        const s = this.streamEntry(spec.name, r.kind, m.method);
        const mime = typeof m.additionalParams?.mime_type === 'string' ? m.additionalParams.mime_type : undefined;
        infos.push({ index, key, statsSab: s.statsSab, ...(mime ? { mimeType: mime } : spec.model === 'sim:camera' ? { mimeType: 'image/jpeg' } : {}), ...(m.additionalParams ? { params: m.additionalParams } : {}) });
        return { method: m.method, index, startSeq: this.startSeq(key, s), statsSab: s.statsSab };
      });
      await writer.api.addRing(ringId, ringSab, infos);
      await mw.api.start(starts);
      mw.started();
      this.collectors.set(spec.name, { spec, hash: JSON.stringify(spec), kind: r.kind, mw, ringId, startedAt: Date.now() });
    } catch (e) {
      await mw.stop();
      throw e;
    }
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
   * A collector thread died (an uncaught exception in the resource's own callbacks, out of
   * memory): report it, then restart it with backoff. Its stream keeps its seq numbering;
   * whatever the dead thread numbered but never published is recorded as a gap.
   */
  private collectorCrashed(name: string, mw: ManagedWorker<CollectorApi>, err: EdgecapError, retry = false): void {
    this.fail(err);
    const c = this.collectors.get(name);
    if (this.state !== 'running' || c?.mw !== mw) return;
    let r = this.restarts.get(name);
    if (!r) this.restarts.set(name, (r = { backoff: new Backoff({ initialMs: RESTART.initialMs, maxMs: RESTART.maxMs }), timer: undefined }));
    if (!retry && Date.now() - c.startedAt >= RESTART.stableMs) r.backoff.succeed();
    const delay = r.backoff.fail();
    log.warn({ resource: name, attempt: r.backoff.attempts, delayMs: delay }, 'collector crashed; restarting it');
    clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      r.timer = undefined;
      const p = this.restartCollector(name, mw).catch((e: unknown) => {
        log.error({ err: e, resource: name }, 'collector restart failed');
        // still the dead entry (not stopped or reconfigured meanwhile): try again, later
        if (this.collectors.get(name)?.mw === mw) this.collectorCrashed(name, mw, e instanceof EdgecapError ? e : new EdgecapError(ErrorCodes.WORKER_EXITED, String(e)), true);
      });
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }, delay);
  }

  private async restartCollector(name: string, dead: ManagedWorker<CollectorApi>): Promise<void> {
    const c = this.collectors.get(name);
    if (this.state !== 'running' || c?.mw !== dead) return; // stopped or reconfigured meanwhile
    await dead.stop();
    const retired = await this.writer!.api.retireRing(c.ringId);
    // Numbered by the dead thread but never published (a ring-full gap it still held): explained.
    for (const { key, nextSeq } of retired) {
      const s = this.streams.get(streamKeyString(key));
      if (!s) continue;
      const written = Math.max(nextSeq, this.opts.store.nextSeq(key));
      const numbered = s.stats[Stat.NEXT_SEQ]!;
      if (numbered > written) this.opts.store.recordGap({ ...key, from_seq: written, to_seq: numbered - 1, reason: 'collector_crash', time_us: nowMicros() });
    }
    if (this.state !== 'running' || this.collectors.get(name)?.mw !== dead) return;
    // The dead entry stays until startCollector replaces it, so reconfigure never starts a twin.
    await this.startCollector(c.spec);
    this.emit('collector-restarted', { resource: name, attempt: this.restarts.get(name)?.backoff.attempts ?? 1 });
  }

  private async stopCollector(name: string): Promise<void> {
    const c = this.collectors.get(name);
    const r = this.restarts.get(name);
    if (r) {
      clearTimeout(r.timer);
      this.restarts.delete(name);
    }
    if (!c) return;
    this.collectors.delete(name);
    // A resource method stuck for good must not hold stop()/reconfigure() hostage.
    await c.mw.stop(() => c.mw.api.stop(), COLLECTOR_STOP_TIMEOUT_MS);
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
      const port = this.pushPort!;
      const em = new StreamEmitter(
        {
          ring,
          enc: this.pushEnc,
          res: this.resWord(resource).words,
          nextToken: this.pushToken,
          sendOversize: (token, frame) => port.postMessage({ ringId, token, frame }, [frame.buffer as ArrayBuffer]),
        },
        0,
        s.statsSab,
        this.startSeq(key, s),
        opts.mimeType,
      );
      const info: StreamInfo = { index: 0, key, statsSab: s.statsSab, ...(opts.mimeType ? { mimeType: opts.mimeType } : {}) };
      const p = this.writer!.api.addRing(ringId, sab, [info]);
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p)).catch((e: unknown) => this.fail(e as Error));
      ps = { em, ring };
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

  get running(): boolean {
    return this.state === 'running';
  }

  /** Stop collectors, close push rings, let the writer drain, flush and rename every file. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    const errors: unknown[] = [];
    await Promise.all([...this.collectors.keys()].map((n) => this.stopCollector(n).catch((e: unknown) => errors.push(e))));
    for (const ps of this.pushStreams.values()) {
      await ps.em.flushPendingGap();
      ps.ring.close();
    }
    await Promise.allSettled([...this.pending]);
    const w = this.writer;
    if (w) await w.stop(() => w.api.stop(), WRITER_STOP_TIMEOUT_MS).catch((e: unknown) => errors.push(e));
    for (const p of this.ports) p.close();
    this.state = 'stopped';
    if (errors.length) throw errors[0];
  }
}

/**
 * Start-up recovery (never on reconfigure): finalize every orphaned .prog (torn tail cut) and
 * advance each stream's persisted seq past what is on disk, so no seq is ever reused.
 */
export function recoverAtStartup(captureDir: string, store: StateStore): RecoveryResult[] {
  const results = recoverCaptureDir(captureDir);
  for (const r of results) {
    if (r.key && r.lastSeq !== undefined) store.advanceSeqSync(r.key, r.lastSeq + 1);
  }
  return results;
}
