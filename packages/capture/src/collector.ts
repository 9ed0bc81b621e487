/**
 * Collector: one per resource, runs in its own worker thread (or in-process in tests).
 *
 *   deadline scheduler ─► resource.Method(params) ─► StreamEmitter ─► SAB ring ─► writer
 *     one wake-up per reading, at any rate:
 *       wait mode   (every method answered synchronously, the resource holds no handles of its
 *                   own): Atomics.wait on the thread's control word with the deadline as
 *                   timeout. A control call (stop, rebind) sets and notifies the word: the
 *                   thread wakes, turns its event loop once (the message is read), sleeps on.
 *       loop mode   (a method returned a promise, or the resource holds sockets/timers): one
 *                   timer to the deadline, so I/O callbacks and control run while it sleeps.
 *     the event loop also turns at least every YIELD_EVERY_MS while readings run back to back,
 *     and in wait mode once in a while (WAIT_MODE_YIELD_MS) before a sleep
 *     late by ≥ 1 period: skip those deadlines, count them as missed (never bunch)
 */
import { Ctl, EdgecapError, ErrorCodes, logger } from '@edgecap/core';
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

/** A timer that fires this close to the deadline runs the reading (libuv timers have ms steps). */
const EARLY_OK_MS = 0.25;
/** How often (at most) wait mode re-checks that the resource still holds no handles of its own. */
const MODE_CHECK_MS = 1_000;
/** Frames up to this size are encoded, checksummed and copied in about a µs or less. */
const CLOCK_REREAD_BYTES = 4096;
const YIELD_EVERY_MS = 10;
/**
 * Wait mode turns the loop this rarely after a reading: control arrives through the control word,
 * and the resource holds no handles, so the loop has nothing but a safety net to run.
 */
const WAIT_MODE_YIELD_MS = 1_000;
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
  private readonly tokens = { v: 0 };
  /** Loop mode (see the top): some method is async, or the resource has handles of its own. */
  private loopMode = false;

  /**
   * `wake`: the thread's control word (@edgecap/core/thread-boot), notified by the main thread after each
   * control message; in-process (tests), a private word nobody notifies, so use loop mode.
   */
  constructor(
    private readonly init: CollectorInit,
    private readonly sendOversize: (msg: { ringId: number; token: number; frame: Uint8Array }) => void,
    private readonly wake: Int32Array | undefined = undefined,
  ) {
    if (!wake) this.loopMode = true;
  }

  /** Wait mode or loop mode, from what the thread holds now (our own ports excepted). */
  private needsLoop(): boolean {
    return process.getActiveResourcesInfo().some((r) => r !== 'MessagePort');
  }

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
    // a busy writer wakes every flush tick on its own: ring it early only when the ring is a quarter
    // full (or whenever it sleeps deep, with no tick: RingProducer.commit → Doorbell.ringIfDeep)
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
    const wake = this.wake;
    let now = performance.now();
    let lastYield = now;
    let modeCheckedAt = -Infinity;
    /** Just back from a sleep: run the due reading before any yield. */
    let justWoke = false;
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
      if (wait > EARLY_OK_MS) {
        if (!this.loopMode && wake && now - modeCheckedAt > MODE_CHECK_MS) {
          modeCheckedAt = now;
          this.loopMode = this.needsLoop();
        }
        if (this.loopMode || !wake) {
          // loop mode: one timer to the deadline
          await new Promise((r) => setTimeout(r, Math.min(Math.ceil(wait), 0x7fffffff)));
          now = lastYield = performance.now();
          continue;
        }
        if (now - lastYield > WAIT_MODE_YIELD_MS) {
          // wait mode, still awake after a reading: turn the loop before sleeping (promise
          // jobs, port traffic); no wake-up is spent on it
          await new Promise((r) => setImmediate(r));
          now = lastYield = performance.now();
          continue;
        }
        // wait mode: sleep to the deadline; a notify means a control message is queued
        if (Atomics.wait(wake, Ctl.WAKE, 0, wait) !== 'timed-out') {
          Atomics.store(wake, Ctl.WAKE, 0);
          await new Promise((r) => setImmediate(r));
          lastYield = performance.now();
        }
        now = performance.now();
        justWoke = true;
        continue;
      }
      if (!justWoke && now - lastYield > YIELD_EVERY_MS) {
        // readings back to back (catching up, or a slow method): the loop still turns, bounded
        await new Promise((r) => setImmediate(r));
        now = lastYield = performance.now();
        continue;
      }
      justWoke = false;
      // run s while it is due and still the earliest; yield checks stay bounded
      const yieldAt = lastYield + YIELD_EVERY_MS;
      do {
        const tReq = Math.floor((ORIGIN + now) * 1000);
        try {
          let v = s.fn(s.params);
          if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') {
            this.loopMode = true; // an async method needs the event loop between readings
            v = await v;
          }
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
      } while (s.deadline <= now + EARLY_OK_MS && s.deadline < other && now <= yieldAt && !this.stopping);
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
