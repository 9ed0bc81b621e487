/**
 * When has a client stream really ended? grpc-js (and Node's http2) cancel a call by closing
 * the request side first (END_STREAM) and resetting the stream right after (RST_STREAM): the
 * server sees a clean-looking half-close, its `for await` over the call ends normally, and the
 * cancel ('cancelled', `call.cancelled`) arrives a moment later. Committing at the half-close
 * stored truncated uploads (issue #12).
 *
 *   client:  DATA ... DATA  END_STREAM  RST_STREAM  ...............  PING ACK
 *   server:                 └ half-close            PING ──────────►┘ → every frame the client
 *                                                                       sent before is processed
 *
 * So after the half-close the server sends an HTTP/2 PING on the call's connection and waits
 * for its ACK: a RST_STREAM the client sent with the END_STREAM has been processed by then
 * (frames are handled in order), and grpc-js has marked the call cancelled. One PING per
 * connection is in flight at a time; calls that end meanwhile share the next one.
 *
 * grpc-js does not expose a call's connection: it is found on the call's private fields and,
 * where that fails (a future grpc-js), a fixed grace period stands in for the PING.
 */
import type { EventEmitter } from 'node:events';
import type { ClientHttp2Session, ServerHttp2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';

/** The call can no longer deliver a complete upload: nothing is committed, staging is discarded. */
export class IncompleteUpload extends Error {
  constructor(readonly status: Partial<grpc.StatusObject>) {
    super(status.details);
  }
}

export type WatchedCall = EventEmitter & { cancelled: boolean; getDeadline(): grpc.Deadline };

/** Without a PING: how long to wait after a half-close for a cancel to follow it. */
export const END_GRACE_MS = 50;
/** A connection that does not answer a PING in this time is treated as gone. */
export const END_PING_TIMEOUT_MS = 10_000;

const deadlineMs = (d: grpc.Deadline): number => (d instanceof Date ? d.getTime() : d);

/**
 * Whether a call is still good for a commit: not cancelled (grpc-js sets `cancelled` when the
 * client resets the stream, the connection drops, or it answers DEADLINE_EXCEEDED itself) and not
 * past its deadline (the deadline timer may not have run yet). Stream errors surface through
 * the iteration (messagesOf); a late 'error' (the stream destroyed after its end) is ignored here.
 */
export function watchCall(call: WatchedCall): { check: () => void } {
  let cancelled = false;
  call.once('cancelled', () => (cancelled = true));
  call.on('error', () => undefined); // an 'error' with no listener would crash the process
  return {
    check() {
      if (cancelled || call.cancelled) throw new IncompleteUpload({ code: grpc.status.CANCELLED, details: 'upload cancelled by the client' });
      if (Date.now() >= deadlineMs(call.getDeadline())) throw new IncompleteUpload({ code: grpc.status.DEADLINE_EXCEEDED, details: 'upload passed its deadline' });
    },
  };
}

/**
 * The messages of a client stream, ending normally only on a half-close the client stands by
 * (see the top of this file): a stream that is cancelled, passes its deadline, errors or stops
 * without half-closing throws.
 */
export async function* messagesOf<T>(call: grpc.ServerReadableStream<T, unknown>, watch: { check: () => void }): AsyncGenerator<T> {
  try {
    for await (const m of call as AsyncIterable<T>) {
      watch.check();
      yield m;
    }
  } catch (e) {
    watch.check();
    throw e;
  }
  watch.check();
  if (!call.readableEnded) throw new IncompleteUpload({ code: grpc.status.CANCELLED, details: 'upload stream ended without a half-close' });
  await confirmEnd(call);
  watch.check();
}

type Session = ServerHttp2Session | ClientHttp2Session;

/** One PING in flight per connection; callers that come while it flies share the next one. */
class Pinger {
  private inflight: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  constructor(private readonly session: Session) {}

  /** Resolves on the ACK of a PING sent after this call. */
  confirm(): Promise<void> {
    if (!this.inflight) {
      this.inflight = this.send().finally(() => (this.inflight = undefined));
      return this.inflight;
    }
    this.next ??= this.inflight
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.confirm();
      });
    return this.next;
  }

  /** Rejects with ConnectionGone when the connection closed or the PING failed on it. */
  private send(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.session.destroyed || this.session.closed) return reject(new ConnectionGone());
      try {
        const sent = this.session.ping((err) => (err ? reject(new ConnectionGone()) : resolve()));
        if (!sent) reject(new Error('PING not sent'));
      } catch (e) {
        reject(e);
      }
    });
  }
}

class ConnectionGone extends Error {}

const pingers = new WeakMap<Session, Pinger>();

/** The call's HTTP/2 connection, from grpc-js's private fields (undefined when they moved). */
function sessionOf(call: object): Session | undefined {
  try {
    let c = (call as { call?: unknown }).call as { stream?: { session?: Session }; nextCall?: unknown } | undefined;
    for (let hops = 0; c && hops < 16; hops++) {
      const s = c.stream?.session;
      if (s && typeof s.ping === 'function') return s;
      c = c.nextCall as typeof c;
    }
  } catch {
    // fall through: no PING, the grace period
  }
  return undefined;
}

/**
 * Wait until a cancel sent together with the half-close would have arrived: the ACK of a PING
 * sent now (then one macrotask for grpc-js to mark the call cancelled), or END_GRACE_MS when no
 * PING can be sent. Returns early on 'cancelled'. A connection that closes first makes the upload
 * CANCELLED; one that does not answer in END_PING_TIMEOUT_MS, UNAVAILABLE.
 */
export function confirmEnd(call: WatchedCall, opts: { graceMs?: number; timeoutMs?: number } = {}): Promise<void> {
  if (call.cancelled) return Promise.resolve();
  const graceMs = opts.graceMs ?? END_GRACE_MS;
  return new Promise<void>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      call.off('cancelled', onCancel);
      if (err) reject(err);
      else resolve();
    };
    const onCancel = (): void => finish();
    call.once('cancelled', onCancel);
    timers.push(
      setTimeout(() => finish(new IncompleteUpload({ code: grpc.status.UNAVAILABLE, details: 'the connection did not confirm the end of the upload' })), opts.timeoutMs ?? END_PING_TIMEOUT_MS),
    );
    const grace = (): void => void timers.push(setTimeout(() => finish(), graceMs));
    const session = sessionOf(call);
    if (!session) return grace();
    let p = pingers.get(session);
    if (!p) pingers.set(session, (p = new Pinger(session)));
    p.confirm().then(
      () => setImmediate(() => finish()),
      (e) => (e instanceof ConnectionGone ? finish(new IncompleteUpload({ code: grpc.status.CANCELLED, details: 'the connection closed before the end of the upload was confirmed' })) : grace()),
    );
  });
}
