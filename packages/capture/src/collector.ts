/**
 * Collector: one per resource, runs in its own worker thread (or in-process in tests).
 *
 *   deadline scheduler ─► resource.Method(params) ─► StreamEmitter ─► SAB ring ─► writer
 *     coarse waits: timers (event loop breathes: comlink stop/stats get through)
 *     last < 2 ms:  Atomics.wait on a private word, with timeout
 *     late by ≥ 1 period: skip those deadlines, count them as missed (never bunch)
 */
import { EdgecapError, ErrorCodes, logger, nowMicros } from '@edgecap/core';
import { FrameEncoder } from '@edgecap/format';
import { Doorbell, RingProducer } from '@edgecap/ring';
import { StreamEmitter, type EmitterShared } from './emitter.js';
import { enabledMethods, loadResource } from './resource.js';
import type { LoadedResource } from './sims.js';
import type { ResourceSpec } from './types.js';

const log = logger('capture.collector');

export interface CollectorInit {
  spec: ResourceSpec;
  ringId: number;
  ringSab: SharedArrayBuffer;
  bellSab: SharedArrayBuffer;
  resSab: SharedArrayBuffer;
}

export interface CollectorStreamStart {
  method: string;
  index: number;
  startSeq: number;
  statsSab: SharedArrayBuffer;
}

interface Sched {
  em: StreamEmitter;
  fn: (p: Record<string, unknown>) => unknown;
  params: Record<string, unknown>;
  periodMs: number;
  deadline: number;
}

const COARSE_MS = 2;
const YIELD_EVERY_MS = 10;

export class Collector {
  private resource: LoadedResource | undefined;
  private kind = 'generic';
  private scheds: Sched[] = [];
  private stopping = false;
  private loop: Promise<void> | undefined;
  private ring: RingProducer | undefined;
  private readonly nap = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly init: CollectorInit,
    private readonly sendOversize: (msg: { ringId: number; token: number; frame: Uint8Array }) => void,
  ) {}

  /** Load the resource; returns its kind. Throws RESOURCE_LOAD. */
  async load(): Promise<{ kind: string }> {
    const { resource, kind } = await loadResource(this.init.spec);
    this.resource = resource;
    this.kind = kind;
    return { kind };
  }

  start(streams: CollectorStreamStart[]): void {
    if (!this.resource) throw new EdgecapError(ErrorCodes.STATE, 'collector started before load()');
    const bell = new Doorbell(this.init.bellSab);
    this.ring = new RingProducer(this.init.ringSab, bell);
    const ringId = this.init.ringId;
    const sh: EmitterShared = {
      ring: this.ring,
      enc: new FrameEncoder(),
      res: new Int32Array(this.init.resSab),
      nextToken: { v: 0 },
      sendOversize: (token, frame) => this.sendOversize({ ringId, token, frame }),
    };
    const now = performance.now();
    const methods = enabledMethods(this.init.spec);
    for (const s of streams) {
      const m = methods.find((x) => x.method === s.method);
      if (!m) continue;
      const fn = this.resource[m.method] as (p: Record<string, unknown>) => unknown;
      const params = m.additionalParams ?? {};
      const mime = typeof params.mime_type === 'string' ? params.mime_type : undefined;
      this.scheds.push({
        em: new StreamEmitter(sh, s.index, s.statsSab, s.startSeq, mime),
        fn: fn.bind(this.resource),
        params,
        periodMs: 1000 / m.frequencyHz,
        deadline: now,
      });
    }
    this.loop = this.run().catch((e: unknown) => log.error({ err: e, resource: this.init.spec.name }, 'collector loop failed'));
  }

  private async run(): Promise<void> {
    let lastYield = performance.now();
    while (!this.stopping && this.scheds.length > 0) {
      let s = this.scheds[0]!;
      for (const x of this.scheds) if (x.deadline < s.deadline) s = x;
      let now = performance.now();
      const wait = s.deadline - now;
      if (wait > COARSE_MS) {
        await new Promise((r) => setTimeout(r, Math.min(wait - 1, 1000)));
        lastYield = performance.now();
        continue;
      }
      if (wait > 0) Atomics.wait(this.nap, 0, 0, wait);
      if (now - lastYield > YIELD_EVERY_MS) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
        if (this.stopping) break;
      }
      const tReq = nowMicros();
      try {
        let v = s.fn(s.params);
        if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') v = await v;
        s.em.emit(v, tReq, nowMicros());
      } catch (e) {
        s.em.countCaptureError();
        log.warn({ err: e, resource: this.init.spec.name }, 'capture method failed');
      }
      s.deadline += s.periodMs;
      now = performance.now();
      const late = now - s.deadline;
      if (late >= s.periodMs) {
        const k = Math.floor(late / s.periodMs);
        s.em.countMissed(k);
        s.deadline += k * s.periodMs;
      }
    }
  }

  get resourceKind(): string {
    return this.kind;
  }

  /** Stop scheduling, wait for the in-flight call, close the ring (the writer drains the rest). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    for (const sc of this.scheds) await sc.em.flushPendingGap();
    this.ring?.close();
  }
}
