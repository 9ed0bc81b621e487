/**
 * Is the ingest there: the ONE connectivity backoff, the offline probe cadence, and the channel
 * for Health and ReportGaps with its address fail-over.
 *
 *   round start ─► Health ─► answered ─► (offline? backOnline) ─► ReportGaps ─► the round goes on
 *                    └ link/auth/server ─► linkFailure: ONE backoff for everything, a sync-error
 *   offline (the last failure was `link`) ─► one Health probe every probeIntervalMs, whatever the
 *            backoff says ─► answered ─► backOnline: backoff reset, a new channel epoch
 *   an upload's outcome (settle.ts) ─► ok: succeeded() | link/auth/server: linkFailure
 */
import type * as grpc from '@grpc/grpc-js';
import { Backoff, ErrorCodes, logger, type Clock } from '@edgecap/core';
import type { StateStore } from '@edgecap/store';
import type { DataSyncClient, Gap } from '@edgecap/proto';
import { classifyStatus, statusName, type FailureKind } from './errors.js';
import { addressesOf, callMetadata, makeClient } from './target.js';
import type { Uploader } from './uploader.js';
import type { Notices, SyncErrorEvent, SyncOptions, SyncResult } from './types.js';

const log = logger('sync');

export interface LinkHealthContext {
  opts: SyncOptions;
  clock: Clock;
  random: () => number;
  /** The wire protocol's side of things: how to probe, whether gaps are reported. */
  uploader: Uploader;
  /** sync_probe_interval_ms (checked by the engine). */
  probeIntervalMs: number;
  notices: Notices;
  /** The running round's abort signal, if one runs: stop() cancels its Health / ReportGaps calls. */
  signal(): AbortSignal | undefined;
}

export class LinkHealth {
  /** The ONE connectivity backoff: while it is not ready, no file is attempted. */
  readonly link: Backoff;
  readonly probeIntervalMs: number;
  private readonly opts: SyncOptions;
  private readonly clock: Clock;
  private readonly uploader: Uploader;
  private readonly notices: Notices;
  private readonly signal: () => AbortSignal | undefined;
  private client: DataSyncClient | undefined;
  /**
   * Which of several ingest addresses this edge uses. Each edge starts at a random one, so a
   * fleet spreads over the nodes; on failure it moves to the next (fail-over).
   */
  #addrIdx = 0;
  /** The last failure was the link itself: probe at probeIntervalMs until it answers. */
  #offline = false;
  /** Outages ended so far (backOnline): upload tasks carry it; a thread seeing a newer one reconnects. */
  #channelEpoch = 0;
  /** clock time of the last Health call (the round's or the cadence's). */
  #lastProbeAt = 0;

  constructor(ctx: LinkHealthContext) {
    this.opts = ctx.opts;
    this.clock = ctx.clock;
    this.uploader = ctx.uploader;
    this.notices = ctx.notices;
    this.signal = ctx.signal;
    this.link = new Backoff({ ...ctx.opts.backoff, clock: ctx.clock, random: ctx.random });
    this.#addrIdx = Math.floor(ctx.random() * addressesOf(ctx.opts.ingest).length);
    this.probeIntervalMs = ctx.probeIntervalMs;
  }

  /** The ingest address new uploads use (an index into the target's addresses). */
  get addrIdx(): number {
    return this.#addrIdx;
  }

  get offline(): boolean {
    return this.#offline;
  }

  get channelEpoch(): number {
    return this.#channelEpoch;
  }

  get lastProbeAt(): number {
    return this.#lastProbeAt;
  }

  /**
   * The channel for Health and ReportGaps. Its own subchannel, dropped after every link failure:
   * the next probe connects afresh instead of failing fast while grpc-js's reconnect backoff of
   * the old connection runs (a probe must see the link the moment it is back).
   */
  private mainClient(): DataSyncClient {
    if (!this.client) this.client = makeClient(this.opts.ingest, this.#addrIdx, { 'grpc.use_local_subchannel_pool': 1 });
    return this.client;
  }

  /** Close the Health / ReportGaps channel (the next call connects afresh). */
  dropClient(): void {
    this.client?.close();
    this.client = undefined;
  }

  /**
   * An outage ended (a probe got through). The upload threads' channels from before it may be
   * connections that died silently (a rebooted NAT or modem answers only what is sent, and an
   * idle connection sends nothing until its keepalive, up to 40 s later): tasks of the new epoch
   * make those threads close them and connect afresh.
   */
  backOnline(): void {
    this.link.succeed();
    this.#offline = false;
    this.#channelEpoch++;
  }

  probeDue(): boolean {
    return this.#offline && this.clock.now() >= this.#lastProbeAt + this.probeIntervalMs;
  }

  /**
   * One reachability probe (the Health RPC; for viam, whose API has none, a channel connect).
   * It does not touch the backoff. False: still unreachable (the engine then recounts the backlog,
   * so the pending counts stay right through an outage).
   */
  async probe(): Promise<boolean> {
    const timeoutMs = this.opts.probeTimeoutMs ?? 5000;
    let err: { code?: number; message: string } | undefined;
    if (this.uploader.probe === 'connect') {
      this.#lastProbeAt = this.clock.now();
      const client = this.mainClient() as unknown as grpc.Client;
      err = await new Promise<{ code?: number; message: string } | undefined>((resolve) => client.waitForReady(Date.now() + timeoutMs, (e) => resolve(e ? { code: 14, message: e.message } : undefined)));
    } else {
      const r = await this.unary('Health', {}, timeoutMs);
      // Any answer but the link's own failure means the server is there (auth etc.: the round says).
      if (r.err && classifyStatus(r.err.code) === 'link') err = r.err;
    }
    if (!err) return true;
    this.dropClient();
    const n = addressesOf(this.opts.ingest).length;
    if (n > 1) this.#addrIdx = (this.#addrIdx + 1) % n; // probe the next address next time
    log.debug({ status: statusName(err.code) }, 'ingest still unreachable');
    return false;
  }

  /**
   * A round's start: the Health probe, then the capture gaps not reported yet. False: the round
   * waits (the failure went to linkFailure; the engine counts the backlog as deferred).
   */
  async roundStart(store: StateStore, res: SyncResult): Promise<boolean> {
    // A protocol without Health (viam's): there the uploads themselves probe the link.
    const health = this.uploader.probe === 'health';
    const probe: { err?: grpc.ServiceError } = health ? await this.unary('Health', {}, this.opts.probeTimeoutMs ?? 5000) : {};
    if (probe.err) {
      const kind = classifyStatus(probe.err.code);
      this.linkFailure(kind, probe.err, res);
      if (kind === 'link') this.dropClient();
      return false;
    }
    // The link is back. (A Health answer says nothing about the server's storage or our key:
    // a backoff those started is reset by an upload that goes through, not by a probe.)
    if (health && this.#offline) this.backOnline();
    if (this.uploader.reportsGaps && !(await this.reportGaps(store, res))) return false;
    return true;
  }

  /** An upload went through: the backoff ends and the link is up (its channels just worked: same epoch). */
  succeeded(): void {
    this.link.succeed();
    this.#offline = false;
  }

  private unary(method: 'Health' | 'ReportGaps', req: object, timeoutMs: number): Promise<{ err?: grpc.ServiceError; res?: unknown }> {
    const client = this.mainClient() as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => grpc.ClientUnaryCall>;
    if (method === 'Health') this.#lastProbeAt = this.clock.now();
    return new Promise((resolve) => {
      const call = client[method]!.call(this.client, req, callMetadata(this.opts.ingest), { deadline: Date.now() + timeoutMs }, (err, r) =>
        resolve(err ? { err } : { res: r }),
      );
      const onAbort = (): void => call.cancel();
      this.signal()?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A failure that makes the whole round wait (`link`, `auth`, `server`): one backoff for
   * everything, surfaced as a sync error. Only `link` means offline (probes at their cadence).
   */
  linkFailure(kind: FailureKind, err: { code?: number; details?: string; message: string }, res: SyncResult): void {
    this.link.fail();
    this.#offline = kind === 'link';
    const nextRetryAt = this.link.nextAttemptAt;
    const status = statusName(err.code);
    const why = err.details || err.message;
    let message: string;
    let code: string;
    if (kind === 'auth') {
      code = ErrorCodes.UNAUTHENTICATED;
      message = `ingest server refused our credentials (${status}): ${why} — check ingest.api_key`;
    } else if (kind !== 'link') {
      // Its storage, fds or load: the files wait (nothing goes to failed/) and are retried.
      code = ErrorCodes.UNAVAILABLE;
      message = `ingest server could not take the upload (${status}): ${why} — files wait and are retried`;
    } else {
      code = ErrorCodes.UNAVAILABLE;
      message = `ingest server unreachable (${status}): ${why}`;
      const n = addressesOf(this.opts.ingest).length;
      if (n > 1) {
        // Fail over: next address for the probe and for new uploads.
        this.#addrIdx = (this.#addrIdx + 1) % n;
        this.client?.close();
        this.client = undefined;
      }
    }
    this.notices.lastError = message;
    res.errors.push(message);
    log.warn({ code, nextRetryAt }, message);
    this.notices.events.emit('sync-error', { message, code, nextRetryAt } satisfies SyncErrorEvent);
  }

  private async reportGaps(store: StateStore, res: SyncResult): Promise<boolean> {
    const gaps = store.unreportedGaps();
    if (gaps.length === 0) return true;
    const wire: Gap[] = gaps.map((g) => ({
      part_id: this.opts.partId,
      resource_kind: g.kind,
      resource_name: g.name,
      method: g.method,
      from_seq: g.from_seq,
      to_seq: g.to_seq,
      reason: g.reason,
      time_us: g.time_us,
    }));
    const r = await this.unary('ReportGaps', { gaps: wire }, 10_000);
    if (r.err) {
      const kind = classifyStatus(r.err.code);
      if (kind === 'link' || kind === 'auth') {
        this.linkFailure(kind, r.err, res);
        if (kind === 'link') this.dropClient();
        return false;
      }
      const msg = `ReportGaps failed (${statusName(r.err.code)}): ${r.err.details}`;
      res.errors.push(msg);
      log.warn(msg);
      return true; // gaps stay unreported; uploads go on
    }
    store.markGapsReported(gaps);
    return true;
  }
}
