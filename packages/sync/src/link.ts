/**
 * Slow links: liveness that follows acknowledged progress, a bound on what is queued ahead of
 * the link, and an edge-wide bandwidth cap.
 *
 *   upload ─► cap.take(n) ─► link.room(n) ─► call.write ─► link.wrote(n)
 *                                               │
 *   link: Health probe on the same channel ◄────┘ its answer proves every byte written before it
 *         reached the server (one TCP connection, in order) ─► acked, delivery rate, window
 *
 * Why probes: HTTP/2 gives no usable acknowledgement here. A write completes once the kernel
 * took the bytes (megabytes of socket buffer), and the ingest's 16 MiB flow-control window sends
 * WINDOW_UPDATE only after ~8 MiB. On a 32 KB/s link, minutes of data sat ahead of grpc-js's
 * keepalive ping, which then timed out and dropped a healthy connection. Keeping unacknowledged
 * bytes within `delivery rate × targetQueueMs` keeps any ping (keepalive, probe) seconds behind,
 * not minutes; on a fast link the window is far above what is ever in flight and costs nothing.
 */
import * as grpc from '@grpc/grpc-js';
import type { DataSyncClient } from '@edgecap/proto';

/** Default sync_stall_timeout_ms: a stream with no acknowledged progress for this long is cut. */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/**
 * Before the first measurement the window assumes the slowest link we promise to serve (the
 * issue's 32 KB/s): a ping is then at most targetQueueMs behind even there. The first answer,
 * a round trip later, sizes it to the real link.
 */
export const ASSUMED_MIN_BYTES_PER_SECOND = 32 * 1024;
/** The window never shrinks below one HTTP/2 frame. */
export const MIN_WINDOW_BYTES = 16 * 1024;
/** Queue ahead of the link the window aims at, at most (a quarter of the keepalive timeout when that is less). */
export const MAX_TARGET_QUEUE_MS = 2500;
/** Marks a link probe (a Health call that acknowledges bytes) apart from a connectivity probe. */
export const LINK_PROBE_HEADER = 'x-edgecap-probe';
/** The delivery rate is measured over about this much of busy link. */
const RATE_SPAN_MS = 5000;
/** After a failed probe, the next waits this long (the uploads' own watchdogs cut a dead link). */
const PROBE_RETRY_MS = 1000;

export interface LinkOptions {
  /** Longest a probe may go unanswered; also the uploads' stall timeout. */
  stallTimeoutMs: number;
  /** Queue the window aims at, ms of the measured delivery rate. */
  targetQueueMs: number;
  metadata: () => grpc.Metadata;
}

/**
 * One channel's (= one connection's) acknowledged progress. All uploads on the channel share it:
 * they share the connection's queue.
 */
export class LinkMonitor {
  /** Bytes given to grpc-js (call.write), all uploads together: what the window bounds. */
  issued = 0;
  /** Bytes whose write completed (in the socket): what a probe sent now can acknowledge. */
  written = 0;
  /** Bytes known to have reached the server. */
  acked = 0;
  /** Delivery rate, bytes/s (0 until measured). */
  rate = 0;
  /** Health probes sent (for tests and benchmarks). */
  probes = 0;
  /** (time, acked) since the link last went busy, spanning about RATE_SPAN_MS: the rate's base. */
  private history: { t: number; acked: number }[] = [];
  private probing = false;
  private closed = false;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly client: DataSyncClient, private readonly o: LinkOptions) {}

  /** Bytes given to the transport and not yet known to be at the server. */
  get inFlight(): number {
    return this.issued - this.acked;
  }

  /** Unacknowledged bytes allowed on this connection now. */
  get window(): number {
    const rate = this.rate > 0 ? this.rate : ASSUMED_MIN_BYTES_PER_SECOND;
    return Math.max(MIN_WINDOW_BYTES, Math.floor((rate * this.o.targetQueueMs) / 1000));
  }

  /** Called on every acknowledgement (progress for the watchdogs). Returns the unsubscribe. */
  onAck(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** `n` bytes given to call.write. */
  issue(n: number): void {
    if (this.inFlight <= 0) this.history = [{ t: Date.now(), acked: this.acked }];
    this.issued += n;
  }

  /** `n` issued bytes whose write completed. */
  wrote(n: number): void {
    this.written += n;
    // Probe at half a window in flight, so the answer frees room before the queue runs dry.
    if (this.waiters.size > 0 || this.inFlight >= this.window / 2) this.maybeProbe();
  }

  /** `n` issued bytes that will never complete (their call ended first). */
  abandon(n: number): void {
    this.issued -= n;
    this.poke();
  }

  /** Resolves once `n` more bytes fit the window (at once when nothing is in flight). */
  room(n: number, cancelled: () => boolean): Promise<void> {
    if (this.inFlight <= 0 || this.inFlight + n <= this.window) return Promise.resolve();
    return this.waitFor(() => this.inFlight <= 0 || this.inFlight + n <= this.window, cancelled);
  }

  /** Resolves once every byte issued so far is acknowledged. */
  drained(cancelled: () => boolean): Promise<void> {
    const until = this.issued;
    return this.acked >= until ? Promise.resolve() : this.waitFor(() => this.acked >= Math.min(until, this.issued), cancelled);
  }

  private waitFor(ok: () => boolean, cancelled: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        if (ok() || cancelled()) {
          this.waiters.delete(wake);
          resolve();
        }
      };
      this.waiters.add(wake);
      this.maybeProbe();
    });
  }

  /** Re-check waiters (after an acknowledgement, or when an upload ended or was cut). */
  poke(): void {
    for (const wake of [...this.waiters]) wake();
    if (this.waiters.size > 0) this.maybeProbe();
  }

  private maybeProbe(): void {
    if (this.closed || this.probing || this.written <= this.acked) return;
    const wait = this.retryAt - Date.now();
    if (wait > 0) {
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.maybeProbe();
      }, wait);
      return;
    }
    this.probing = true;
    this.probes++;
    // Only completed writes: bytes still queued in grpc-js could leave after the probe.
    const snapshot = this.written;
    const md = this.o.metadata();
    md.set(LINK_PROBE_HEADER, 'link');
    this.client.Health({}, md, { deadline: Date.now() + this.o.stallTimeoutMs }, (err: grpc.ServiceError | null) => {
      this.probing = false;
      if (err) {
        // The uploads' watchdogs decide what a silent link means; relearn the rate afterwards.
        this.rate = 0;
        this.retryAt = Date.now() + PROBE_RETRY_MS;
      } else this.acknowledge(snapshot);
      this.poke();
      if (this.waiters.size === 0 && this.inFlight >= this.window / 2) this.maybeProbe();
    });
  }

  private acknowledge(upTo: number): void {
    if (upTo <= this.acked) return;
    const now = Date.now();
    // Delivery rate over the last few seconds of busy link, not probe to probe: a probe answers
    // for the bytes completed when it left, and more may have been ahead of it, so single
    // intervals swing both ways.
    const h = this.history;
    h.push({ t: now, acked: upTo });
    while (h.length > 2 && now - h[1]!.t >= RATE_SPAN_MS) h.shift();
    const span = (now - h[0]!.t) / 1000;
    if (span > 0) this.rate = (upTo - h[0]!.acked) / span;
    this.acked = upTo;
    for (const fn of this.listeners) fn();
  }

  /** Stop probing; wake every waiter (they see their call ended). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.closed = true;
    this.poke();
  }
}

/**
 * An edge-wide pace shared by every upload thread: the user's bandwidth cap
 * (sync_max_bytes_per_second) and capture first's yield (capture-first.ts) set its rate. Three
 * Int64 words in a SharedArrayBuffer:
 *   TAT    theoretical arrival time (GCRA) in ns of the process-wide monotonic clock, advanced
 *          with compare-and-swap: bytes let through by time t never exceed rate × t + one burst,
 *          whatever the number of threads and uploads
 *   RATE   bytes per second now; 0 = no limit (every take passes at once). Changed while uploads
 *          run: a piece already reserved keeps the wait it got, the next one pays the new rate
 *   TAKEN  bytes reserved so far (a cancelled call's too): what the controller reads as sync's rate
 *   A piece reserved and then not sent (its call ended while it waited) is refunded: TAT moves
 *   back by its cost, never before now (refundBytes); a hold moves it forward (holdBytes)
 */
export interface RateLimitShare {
  buffer: SharedArrayBuffer;
}

const TAT = 0;
const RATE = 1;
const TAKEN = 2;

/** Burst the cap lets through at once, ms of the rate. */
export const RATE_BURST_MS = 100;
/**
 * Largest piece a paced upload writes at once. Each piece is a burst of work on both ends at full
 * speed; short bursts with sleeps between them let a capture thread that wakes in the middle of
 * one get a core within a fraction of a millisecond (measured: 1 kHz stream beside a drain held
 * to 10 MB/s, 12.8 missed deadlines/s with pieces of 1/8 s of the rate, 7.9/s with 64 KiB).
 */
export const PACED_PIECE_MAX = 64 * 1024;

/** A pace at `bytesPerSecond` (0 or omitted: no limit until setRate). */
export function createRateLimit(bytesPerSecond = 0): RateLimitShare {
  const share = { buffer: new SharedArrayBuffer(3 * 8) };
  setRate(share, bytesPerSecond);
  return share;
}

export function setRate(share: RateLimitShare, bytesPerSecond: number): void {
  if (!(bytesPerSecond >= 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`bytes per second must be ≥ 0, got ${bytesPerSecond}`);
  Atomics.store(new BigInt64Array(share.buffer), RATE, BigInt(Math.ceil(bytesPerSecond)));
}

/** Bytes per second now (0: no limit). */
export function rateOf(share: RateLimitShare): number {
  return Number(Atomics.load(new BigInt64Array(share.buffer), RATE));
}

/** Bytes reserved since the pace was made. */
export function bytesTaken(share: RateLimitShare): number {
  return Number(Atomics.load(new BigInt64Array(share.buffer), TAKEN));
}

/** Largest write the pace lets through in one piece: ~1/8 s of the rate, one frame at least, PACED_PIECE_MAX at most; no limit: Infinity. */
export function capPiece(share: RateLimitShare): number {
  const rate = rateOf(share);
  return rate === 0 ? Infinity : Math.max(MIN_WINDOW_BYTES, Math.min(PACED_PIECE_MAX, Math.floor(rate / 8)));
}

/** Reserve `n` bytes; returns ms to wait before sending them. */
export function reserveBytes(share: RateLimitShare, n: number): number {
  const words = new BigInt64Array(share.buffer);
  Atomics.add(words, TAKEN, BigInt(n));
  const rate = Atomics.load(words, RATE);
  if (rate === 0n) return 0;
  const cost = (BigInt(n) * 1_000_000_000n + rate - 1n) / rate;
  const burst = BigInt(RATE_BURST_MS * 1_000_000);
  for (;;) {
    const now = process.hrtime.bigint();
    const cur = Atomics.load(words, TAT);
    const next = (cur > now ? cur : now) + cost;
    if (Atomics.compareExchange(words, TAT, cur, next) === cur) {
      const wait = next - now - burst;
      return wait > 0n ? Number(wait / 1_000_000n) : 0;
    }
  }
}

/**
 * Give back `n` bytes reserved and never sent (their call ended while they waited): the pace's
 * schedule moves back by their cost at today's rate, never to before now (no credit beyond the
 * burst). They stay in TAKEN (what capture first reads sync's rate from only ever grows).
 */
export function refundBytes(share: RateLimitShare, n: number): void {
  const words = new BigInt64Array(share.buffer);
  const rate = Atomics.load(words, RATE);
  if (rate === 0n || n <= 0) return;
  const cost = (BigInt(n) * 1_000_000_000n + rate - 1n) / rate;
  for (;;) {
    const now = process.hrtime.bigint();
    const cur = Atomics.load(words, TAT);
    const back = cur - cost > now ? cur - cost : now;
    if (back >= cur || Atomics.compareExchange(words, TAT, cur, back) === cur) return;
  }
}

/**
 * Hold the pace for `ms` (capture first's rest window): the schedule moves to now + ms unless it
 * is already later, so every piece reserved from now on waits for the hold to end (plus its own
 * cost at the rate then). Pieces reserved before keep their wait (at most a burst). No effect
 * without a rate: with no limit nothing waits.
 */
export function holdBytes(share: RateLimitShare, ms: number): void {
  const words = new BigInt64Array(share.buffer);
  const until = process.hrtime.bigint() + BigInt(Math.ceil((ms + RATE_BURST_MS) * 1e6));
  for (;;) {
    const cur = Atomics.load(words, TAT);
    if (cur >= until || Atomics.compareExchange(words, TAT, cur, until) === cur) return;
  }
}

export async function takeBytes(share: RateLimitShare, n: number): Promise<void> {
  const ms = reserveBytes(share, n);
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}
