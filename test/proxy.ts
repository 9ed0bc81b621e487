/**
 * A TCP proxy that cuts real connections on command: drop (close both sides), reset (RST),
 * stall (stop forwarding for a while, or until resumed). Used to fault the edge↔ingest link
 * mid-upload.
 *
 * Throttle: `bytesPerSecond` (a number) throttles the client→server direction; `{ up, down }`
 * throttles each direction on its own. Each throttled direction is one token bucket shared by all
 * connections (a link, not a per-connection limit): bytes are forwarded only as tokens allow,
 * the rest held (≤ one socket read) with the source paused, so the link queues little beyond
 * the kernel's socket buffers — as a slow modem link does, not a proxy that swallows megabytes.
 *
 * `blackhole()` is a route that vanished: connections are still accepted (SYN-ACK comes back)
 * but no byte passes either way, on old or new connections, until `restore()`.
 */
import net from 'node:net';

export interface ProxyThrottle {
  /** client → server, bytes per second (0 = unthrottled). */
  up?: number;
  /** server → client, bytes per second (0 = unthrottled). */
  down?: number;
  /** Bucket depth, ms of the rate (default 50 ms): the largest burst the link lets through. */
  burstMs?: number;
}

/** A token bucket refilled continuously at `rate` bytes/s, holding at most `depth` bytes. */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();
  readonly depth: number;

  constructor(readonly rate: number, burstMs = 50) {
    // At least one TCP segment's worth, so a burst never needs a fraction of a read.
    this.depth = Math.max(1460, (rate * burstMs) / 1000);
    this.tokens = this.depth;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.depth, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }

  /** Take up to `want` bytes' worth of tokens; returns how many were taken (whole bytes). */
  take(want: number): number {
    this.refill();
    const n = Math.min(want, Math.floor(this.tokens));
    this.tokens -= n;
    return n;
  }

  /** ms until `bytes` tokens (capped at the depth) are available. */
  waitFor(bytes: number): number {
    this.refill();
    const need = Math.min(bytes, this.depth) - this.tokens;
    return need <= 0 ? 0 : Math.ceil((need * 1000) / this.rate);
  }
}

/** One direction of one connection: forwards `from` → `to`, through `bucket` when set. */
class Pipe {
  private held: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  /** Bytes delivered to `to`. */
  forwarded = 0;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly bucket: TokenBucket | undefined,
    private readonly isStalled: () => boolean,
  ) {
    from.on('data', (d: Buffer) => {
      this.held = this.held ? Buffer.concat([this.held, d]) : d;
      this.pump();
    });
    to.on('drain', () => {
      this.waitingDrain = false;
      this.pump();
    });
  }

  /** Forward what the bucket allows; pause the source while anything is held. */
  pump(): void {
    if (this.timer || this.to.destroyed) return;
    while (this.held && !this.isStalled() && !this.waitingDrain) {
      const n = this.bucket ? this.bucket.take(this.held.length) : this.held.length;
      if (n > 0) {
        const part = this.held.subarray(0, n);
        this.held = n === this.held.length ? undefined : this.held.subarray(n);
        this.forwarded += n;
        if (!this.to.write(part)) this.waitingDrain = true;
        continue;
      }
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, Math.max(1, this.bucket!.waitFor(this.held.length)));
      break;
    }
    if (this.held || this.waitingDrain || this.isStalled()) this.from.pause();
    else this.from.resume();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export class FaultyProxy {
  private server: net.Server;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket; up: Pipe; down: Pipe }>();
  private stalled = false;
  /** Accepted while blackholed: held, not yet connected to the server. */
  private readonly held = new Set<net.Socket>();
  private blackholed = false;
  private readonly upBucket: TokenBucket | undefined;
  private readonly downBucket: TokenBucket | undefined;
  port = 0;
  stats = { connections: 0, drops: 0, resets: 0, stalls: 0, blackholes: 0, bytesUp: 0, bytesDown: 0 };

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1', throttle: number | ProxyThrottle = 0) {
    const t: ProxyThrottle = typeof throttle === 'number' ? { up: throttle } : throttle;
    this.upBucket = t.up ? new TokenBucket(t.up, t.burstMs) : undefined;
    this.downBucket = t.down ? new TokenBucket(t.down, t.burstMs) : undefined;
    this.server = net.createServer((a) => {
      this.stats.connections++;
      if (this.blackholed) {
        // Accept and hold: read nothing (the kernel queues the client's bytes), send nothing.
        a.pause();
        this.held.add(a);
        const forget = (): void => {
          this.held.delete(a);
          a.destroy();
        };
        a.on('error', forget).on('close', forget);
        return;
      }
      this.pipe(a);
    });
  }

  private pipe(a: net.Socket): void {
    const b = net.connect(this.targetPort, this.targetHost);
    const stalled = (): boolean => this.stalled;
    const pair = { a, b, up: new Pipe(a, b, this.upBucket, stalled), down: new Pipe(b, a, this.downBucket, stalled) };
    this.pairs.add(pair);
    const end = (): void => {
      if (!this.pairs.delete(pair)) return;
      this.stats.bytesUp += pair.up.forwarded;
      this.stats.bytesDown += pair.down.forwarded;
      pair.up.stop();
      pair.down.stop();
      a.destroy();
      b.destroy();
    };
    a.on('error', end).on('close', end);
    b.on('error', end).on('close', end);
    if (a.isPaused()) a.resume();
  }

  /** Bytes forwarded client → server so far, over all connections (open and closed). */
  get forwardedUp(): number {
    let n = this.stats.bytesUp;
    for (const p of this.pairs) n += p.up.forwarded;
    return n;
  }

  /** Open connections now. */
  get openConnections(): number {
    return this.pairs.size;
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  drop(): void {
    this.stats.drops++;
    for (const p of this.pairs) {
      p.a.destroy();
      p.b.destroy();
    }
  }

  reset(): void {
    this.stats.resets++;
    for (const p of this.pairs) {
      p.a.resetAndDestroy();
      p.b.resetAndDestroy();
    }
  }

  /** Stop forwarding in both directions (connections stay open, bytes stay queued) until resume(). */
  pause(): void {
    this.stats.stalls++;
    this.stalled = true;
    for (const p of this.pairs) {
      p.a.pause();
      p.b.pause();
    }
  }

  resume(): void {
    this.stalled = false;
    for (const p of this.pairs) {
      p.up.pump();
      p.down.pump();
    }
  }

  async stall(ms: number): Promise<void> {
    this.pause();
    await new Promise((r) => setTimeout(r, ms));
    this.resume();
  }

  /** No byte passes on any connection, old or new, until restore(); new ones are accepted and held. */
  blackhole(): void {
    this.stats.blackholes++;
    this.blackholed = true;
    this.stalled = true;
    for (const p of this.pairs) {
      p.a.pause();
      p.b.pause();
    }
  }

  /**
   * The route is back. `resume`: held connections go through to the server and paused ones flow
   * again, as TCP would once packets pass. `reset`: the state on the way was lost with the route
   * (a rebooted NAT or modem): every connection of the blackhole gets an RST, new ones pass.
   */
  restore(mode: 'resume' | 'reset' = 'resume'): void {
    this.blackholed = false;
    for (const a of [...this.held]) {
      this.held.delete(a);
      if (mode === 'reset') {
        a.resetAndDestroy();
        continue;
      }
      a.removeAllListeners('error').removeAllListeners('close');
      if (!a.destroyed) this.pipe(a);
    }
    if (mode === 'reset') {
      this.stalled = false;
      return this.reset();
    }
    this.resume();
  }

  async close(): Promise<void> {
    this.restore();
    this.drop();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
