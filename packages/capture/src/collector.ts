/**
 * Collector: one per resource, runs in its own worker thread (or in-process in tests).
 *
 *   deadline scheduler ─► resource.Method(params) ─► StreamEmitter ─► SAB ring ─► writer
 *     coarse waits: timers (event loop breathes: comlink stop/stats get through)
 *     last < 2 ms:  Atomics.wait on a private word, with timeout
 *     late by ≥ 1 period: skip those deadlines, count them as missed (never bunch)
 */
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
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
  /** When a failure of this method was last logged, and how many went unlogged since. */
  errLoggedAt: number;
  errUnlogged: number;
}

const COARSE_MS = 2;
/** Frames up to this size are encoded, checksummed and copied in about a µs or less. */
const CLOCK_REREAD_BYTES = 4096;
const YIELD_EVERY_MS = 10;
/** A method failing at every call (a sensor unplugged at 100 Hz) logs once per this, with a count. */
const ERROR_LOG_EVERY_MS = 10_000;
/** performance.now() → epoch µs exactly as core's nowMicros(), from a clock value already read. */
const ORIGIN = performance.timeOrigin;

export class Collector {
  private resource: LoadedResource | undefined;
  private kind = 'generic';
  private scheds: Sched[] = [];
  private stopping = false;
  private loop: Promise<void> | undefined;
  private ring: RingProducer | undefined;
  private readonly nap = new Int32Array(new SharedArrayBuffer(4));
  private readonly tokens = { v: 0 };

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
    // the writer wakes every flush tick on its own: wake it early only when the ring is a quarter full
    this.ring = new RingProducer(this.init.ringSab, bell, Math.floor(this.init.ringSab.byteLength / 4));
    const ringId = this.init.ringId;
    const sh: EmitterShared = {
      ring: this.ring,
      enc: new FrameEncoder(),
      res: new Int32Array(this.init.resSab),
      nextToken: this.tokens,
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
        errLoggedAt: -Infinity,
        errUnlogged: 0,
      });
    }
    this.loop = this.run().catch((e: unknown) => log.error({ err: e, resource: this.init.spec.name }, 'collector loop failed'));
  }

  /**
   * The scheduler. One clock read per reading, after the call: time_received, lateness and the
   * next deadline check (it doubles as the next time_requested when that reading is already
   * due); a second one after emitting a big frame; plus one after a wait. Catch-up iterations of
   * an overdue method run back to back while it stays the earliest deadline, without re-picking.
   */
  private async run(): Promise<void> {
    const scheds = this.scheds;
    let now = performance.now();
    let lastYield = now;
    while (!this.stopping && scheds.length > 0) {
      let s = scheds[0]!;
      let other = Infinity; // earliest deadline of the other methods
      for (let i = 1; i < scheds.length; i++) {
        const x = scheds[i]!;
        if (x.deadline < s.deadline) {
          other = s.deadline;
          s = x;
        } else if (x.deadline < other) other = x.deadline;
      }
      const wait = s.deadline - now;
      if (wait > COARSE_MS) {
        await new Promise((r) => setTimeout(r, Math.min(wait - 1, 1000)));
        now = lastYield = performance.now();
        continue;
      }
      if (now - lastYield > YIELD_EVERY_MS) {
        // bounded: comlink stop/stats get through at least every YIELD_EVERY_MS
        await new Promise((r) => setImmediate(r));
        now = lastYield = performance.now();
        continue;
      }
      if (wait > 0) {
        Atomics.wait(this.nap, 0, 0, wait);
        now = performance.now();
      }
      // run s while it is due and still the earliest; yield checks stay bounded
      const yieldAt = lastYield + YIELD_EVERY_MS;
      do {
        const tReq = Math.floor((ORIGIN + now) * 1000);
        try {
          let v = s.fn(s.params);
          if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') v = await v;
          now = performance.now();
          // a small frame encodes in well under a µs: the clock read for time_received also
          // serves the deadline check (and the next time_requested); a big one re-reads it
          s.em.emit(v, tReq, Math.floor((ORIGIN + now) * 1000));
          if (s.em.lastFrameBytes > CLOCK_REREAD_BYTES) now = performance.now();
        } catch (e) {
          now = performance.now();
          s.em.countCaptureError();
          if (now - s.errLoggedAt >= ERROR_LOG_EVERY_MS) {
            log.warn({ err: e, resource: this.init.spec.name, failuresNotLogged: s.errUnlogged }, 'capture method failed');
            s.errLoggedAt = now;
            s.errUnlogged = 0;
          } else s.errUnlogged++;
        }
        const period = s.periodMs;
        s.deadline += period;
        const late = now - s.deadline;
        if (late >= period) {
          const k = Math.floor(late / period);
          s.em.countMissed(k);
          s.deadline += k * period;
        }
      } while (s.deadline <= now && s.deadline < other && now <= yieldAt && !this.stopping);
    }
  }

  /** Token of the last oversize frame sent (tokens only grow). */
  get lastOversizeToken(): number {
    return this.tokens.v >>> 0;
  }

  get resourceKind(): string {
    return this.kind;
  }

  /**
   * Stop scheduling, wait for the in-flight call, close the ring (the writer drains the rest),
   * then let the resource release what it holds (its optional `close()`: sockets, handles).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    for (const sc of this.scheds) await sc.em.flushPendingGap();
    this.ring?.close();
    const close = this.resource?.close;
    if (typeof close === 'function') {
      try {
        await (close as () => unknown).call(this.resource);
      } catch (e) {
        log.warn({ err: e, resource: this.init.spec.name }, 'resource close() failed');
      }
    }
  }
}
