/**
 * A TCP proxy that cuts real connections on command: drop (close both sides), reset (RST),
 * stall (stop forwarding for a while). Used to fault the edge↔ingest link mid-upload.
 * `bytesPerSecond` throttles the client→server direction (all connections together), so a
 * test can count on an upload still being in flight when it strikes.
 */
import net from 'node:net';

export class FaultyProxy {
  private server: net.Server;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  private stalled = false;
  port = 0;
  stats = { connections: 0, drops: 0, resets: 0, stalls: 0 };

  /** When the throttled direction may send next (ms since epoch). */
  private nextSendAt = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1', private readonly bytesPerSecond = 0) {
    this.server = net.createServer((a) => {
      this.stats.connections++;
      const b = net.connect(this.targetPort, this.targetHost);
      const pair = { a, b };
      this.pairs.add(pair);
      const forward = (from: net.Socket, to: net.Socket, throttled: boolean): void => {
        from.on('data', (d) => {
          if (this.stalled) from.pause();
          if (!to.write(d)) from.pause();
          if (throttled) this.throttle(from, d.length);
        });
        to.on('drain', () => {
          if (!this.stalled) from.resume();
        });
      };
      forward(a, b, this.bytesPerSecond > 0);
      forward(b, a, false);
      const end = (): void => {
        this.pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('error', end).on('close', end);
      b.on('error', end).on('close', end);
    });
  }

  /** Pause `from` until `bytes` more fit the rate budget. */
  private throttle(from: net.Socket, bytes: number): void {
    const now = Date.now();
    this.nextSendAt = Math.max(this.nextSendAt, now) + (bytes * 1000) / this.bytesPerSecond;
    const wait = this.nextSendAt - now;
    if (wait < 1) return;
    from.pause();
    setTimeout(() => {
      if (!this.stalled && !from.destroyed) from.resume();
    }, wait);
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

  async stall(ms: number): Promise<void> {
    this.stats.stalls++;
    this.stalled = true;
    for (const p of this.pairs) {
      p.a.pause();
      p.b.pause();
    }
    await new Promise((r) => setTimeout(r, ms));
    this.stalled = false;
    for (const p of this.pairs) {
      p.a.resume();
      p.b.resume();
    }
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
