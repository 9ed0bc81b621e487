/**
 * The ingest server: the receiving end of sync.
 *
 *   edge ──TLS/HTTP2──► SessionCap (oldest idle connection closed at the cap) ──► grpc-js Server
 *                          │ strict deserializer (unknown fields → BadMessage)
 *                          │ identity from the credential (identity.ts): device key → its part only
 *                          ▼
 *   Upload: slot (global / connection / key) ─► metadata within firstMessageMs ─► bounds ─► actAs(part)
 *           ─► (part, id) committed? same content: ALREADY_HAVE, other: ALREADY_EXISTS
 *           ─► chunks ─► StagedUpload (size/sha256 running) + CaptureCheck (frames as they arrive)
 *              (progress watched: ≥ minBytesPerSecond per window)
 *           ─► clean half-close, not cancelled, sizes and digest equal ─► storage.commit ─► response
 *   Anything else (cancel, deadline, stall, error): staging discarded, nothing committed.
 *   (the per-file steps live in receive.ts: FileReceiver)
 *
 *   UploadBatch (batch.ts): ONE slot ─► [metadata, chunks]… each file through FileReceiver as above
 *           (≤ maxBatchFiles / maxBatchBytes) ─► a refused file gets its own REJECTED result, the rest go on
 *           ─► clean half-close ─► the verified files committed together (one group commit) ─► one result per file
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes, isLoopback, logger, readTlsFiles } from '@edgecap/core';

export { isLoopback };
import type { ReportGapsRequest__Output, UploadRequest__Output } from '@edgecap/proto';
import { CaptureCheck } from './capture-check.js';
import { handleUploadBatch } from './batch.js';
import { RequestRejected, invalid } from './errors.js';
import { UNAUTHENTICATED_DETAILS, actAs, makeIdentity } from './identity.js';
import type { Principal } from './keys.js';
import { ProgressWatch, SessionCap, UploadSlots, statusOfSystemError } from './limits.js';
import { DEFAULT_MAX_FILE_BYTES, INGEST_VERSION, parseListen, resolveLimits, type IngestLimits } from './settings.js';
import { checkFileId, checkFileName } from './paths.js';

export { checkNames } from './receive.js';
import { FileReceiver, checkNames, consume, describeCapture, type UploadContext } from './receive.js';
import { acquireFileStorage, releaseFileStorage, sameContent, FileStorage, type IngestStorage, type NewFileRecord, type ReportedGap, type StagedUpload } from './storage.js';
import { PgStorage } from './pg/storage.js';
import { BadMessage, strictDataSyncService } from './wire.js';
import { DEFAULT_ACCESS_TOKEN_TTL_MS, authServiceDefinition, authServiceHandlers, viamDataSyncService, viamServiceHandlers, type ViamCommitRequest } from '@edgecap/viam';

const log = logger('ingest');

/** Largest single gRPC message accepted: room for 8 MiB chunks plus framing. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 1024;
/** HTTP/2 receive windows (per stream and per connection) for upload throughput. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;
/**
 * Largest HTTP/2 DATA frame the server takes (default 16 KiB): a 1 MiB chunk then arrives in a
 * few frames instead of 64, each a callback and a piece grpc-js joins. A client on a slow link
 * still sends small frames: its link window (sync/src/link.ts) bounds each message.
 */
export const MAX_FRAME_BYTES = 1024 * 1024;

export interface IngestServerOptions {
  /** host:port; port 0 picks a free port. IPv6 as [::1]:port. */
  listen: string;
  dataDir: string;
  tls?: { certFile: string; keyFile: string };
  /** Plain-text HTTP/2: only honoured on a loopback host. */
  insecure?: boolean;
  /**
   * Fleet keys: may act as any part (development, single tenant). Device keys live in the
   * storage's registry (`edgecap keys create`) and act only as their own part.
   */
  apiKeys: string[];
  /** Largest file accepted (default 1 GiB). */
  maxFileBytes?: number;
  /**
   * Storage backend: 'files' (default: embedded files + LMDB in `dataDir`) or 'postgres'
   * (shared database at `pgUrl`; `dataDir` is then only node-local scratch for uploads in
   * progress, '' for the OS temp dir). Several nodes may share one database.
   */
  storage?: 'files' | 'postgres';
  /** PostgreSQL URL (storage 'postgres'), e.g. postgres://user:pass@host:5432/db. */
  pgUrl?: string;
  /** PostgreSQL pool size per node (default 10). */
  pgPoolSize?: number;
  /** Lifetime of the access tokens proto.rpc.v1.AuthService issues (default 1 h). */
  accessTokenTtlMs?: number;
  /** Bounds on what clients may hold and send (limits.ts; defaults from the fd limit). */
  limits?: Partial<IngestLimits>;
  /** PostgreSQL: how often the key registry is re-read (default 2000 ms). */
  keyRefreshMs?: number;
  /** close(): how long running calls may go on before they are cancelled and every connection dropped (default 10000 ms). */
  shutdownGraceMs?: number;
}

/** Default IngestServerOptions.shutdownGraceMs. */
const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

export interface IngestServer {
  /** host:port actually bound. */
  address: string;
  port: number;
  /** Stop accepting calls, let running ones finish (at most shutdownGraceMs, then forceClose), close storage. */
  close(): Promise<void>;
  /** Cancel running calls and stop now. */
  forceClose(): void;
}


export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof RequestRejected) return { code: err.status, details: err.message };
  if (err instanceof EdgecapError && err.code === ErrorCodes.CLOSED) return { code: grpc.status.UNAVAILABLE, details: 'ingest server is shutting down' };
  if (err instanceof EdgecapError && err.code === ErrorCodes.UNAVAILABLE) {
    log.warn({ err: err.message }, 'storage unavailable');
    return { code: grpc.status.UNAVAILABLE, details: `storage unavailable: ${err.message}` };
  }
  // The server's own resources (fds, memory, disk): the edge must wait and retry, not give up.
  const sys = statusOfSystemError(err) ?? statusOfSystemError((err as { cause?: unknown })?.cause);
  if (sys !== undefined) {
    log.warn({ err: (err as Error).message }, 'server resources exhausted');
    return { code: sys, details: `ingest server busy: ${(err as Error).message}` };
  }
  log.error({ err }, 'ingest request failed');
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

type UploadCall = grpc.ServerReadableStream<UploadRequest__Output | BadMessage, unknown>;

async function handleUpload(call: UploadCall, who: Principal, ctx: UploadContext): Promise<Record<string, unknown>> {
  const file = new FileReceiver(who, ctx);
  const watch = new ProgressWatch(ctx.limits, (e) => abortUpload(e));
  let abortUpload: (e: unknown) => void = () => undefined;
  try {
    await consume(
      call,
      async (msg) => {
        if (msg instanceof BadMessage) throw invalid(msg.reason);
        if (!file.started) {
          if (msg.packet !== 'metadata' || !msg.metadata) {
            throw invalid(msg.packet === 'chunk' ? 'first message must be metadata, got a chunk' : 'first message must be metadata, got an empty message');
          }
          watch.metadataAt();
          // Held already: answer now, read no further.
          return file.begin(msg.metadata);
        }
        if (msg.packet === 'metadata') throw invalid('metadata sent twice in one upload');
        if (msg.packet !== 'chunk') throw invalid('message has neither metadata nor chunk');
        watch.bytes(msg.chunk.length);
        await file.chunk(msg.chunk);
        return false;
      },
      (fail) => {
        abortUpload = fail;
      },
    );
    const got = await file.finish();
    if (got.kind === 'already_have') return { file_id: got.file_id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: got.stored_bytes };
    const { rec } = got;
    const res = await ctx.storage.commit(got.staged, rec); // commit owns the staging (placed or discarded)
    log.info({ file_id: rec.file_id, part_id: rec.part_id, status: res.status, bytes: rec.size }, 'upload');
    return {
      file_id: rec.file_id,
      status: res.status === 'committed' ? 'UPLOAD_STATUS_COMMITTED' : 'UPLOAD_STATUS_ALREADY_HAVE',
      stored_bytes: res.record.size,
    };
  } finally {
    watch.stop();
    await file.discard();
  }
}

/** Check staged bytes (viam conversions) the way an upload's chunks are checked: read back chunk by chunk. */
async function checkStagedCapture(staged: StagedUpload, fileId: string, limits: IngestLimits): Promise<ReturnType<CaptureCheck['finish']>> {
  const check = new CaptureCheck(fileId, { maxRanges: limits.maxRangesPerFile });
  for await (const c of staged.chunks()) check.push(c as Uint8Array);
  return check.finish();
}

/**
 * viam.app.datasync.v1 uploads (staged by @edgecap/viam as capture bytes whose id is the
 * upload's dedup key, or a file as sent) enter the same commit path: stored once per (part, key).
 */
async function commitViam(ctx: UploadContext, req: ViamCommitRequest, who: Principal): Promise<'committed' | 'already_have'> {
  const { storage, limits } = ctx;
  let staged: StagedUpload | undefined = req.staged as StagedUpload;
  try {
    const fileId = checkFileId(req.file_id);
    const partId = actAs(who, req.part_id, 'upload');
    checkNames({ part_id: partId, source: req.source }, req.tags, limits, 'metadata');
    const { bytes, sha256 } = await staged.finish();
    const have = await storage.get(partId, fileId);
    if (have && sameContent(have, bytes, sha256)) return 'already_have';
    const rec: NewFileRecord = { file_id: fileId, part_id: partId, data_type: req.data_type, resource_kind: '', resource_name: '', method: '', tags: req.tags, size: bytes, sha256, mtime_ms: req.mtime_ms, source: req.source };
    if (req.data_type === 'file') {
      checkFileName(req.file_name ?? fileId, `${ctx.fileRoot}/files/x/y`);
      rec.file_name = req.file_name ?? fileId;
    } else describeCapture(rec, await checkStagedCapture(staged, fileId, limits), who);
    const st = staged;
    staged = undefined; // commit owns it now
    const res = await storage.commit(st, rec);
    log.info({ file_id: fileId, part_id: partId, status: res.status, bytes, protocol: 'viam' }, 'upload');
    return res.status;
  } finally {
    if (staged) await staged.discard().catch(() => undefined);
  }
}

function checkGap(g: unknown, i: number, who: Principal, l: IngestLimits): ReportedGap {
  const o = g as Record<string, unknown>;
  const from = Number(o.from_seq);
  const to = Number(o.to_seq);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw invalid(`gaps[${i}]: from_seq ${String(o.from_seq)} .. to_seq ${String(o.to_seq)} is not a valid inclusive range`);
  }
  for (const f of ['resource_name', 'method', 'reason'] as const) {
    if (typeof o[f] !== 'string' || (o[f] as string).length === 0) throw invalid(`gaps[${i}].${f} is empty`);
  }
  const part = actAs(who, String(o.part_id ?? ''), `gaps[${i}]`);
  checkNames({ part_id: part, resource_kind: String(o.resource_kind ?? ''), resource_name: o.resource_name as string, method: o.method as string, reason: o.reason as string }, [], l, `gaps[${i}]`);
  return {
    part_id: part,
    resource_kind: String(o.resource_kind ?? ''),
    resource_name: o.resource_name as string,
    method: o.method as string,
    from_seq: from,
    to_seq: to,
    reason: o.reason as string,
    time_us: Number(o.time_us ?? 0),
  };
}

/**
 * Every call of `handlers` (the viam service's) holds an upload slot (from `acquire`, which
 * throws RESOURCE_EXHAUSTED when none is free) until it is answered, and its progress is watched
 * like an edgecap upload: messages are counted as the stream receives them, and a stalled call
 * is destroyed with DEADLINE_EXCEEDED (the handler then discards its staging and answers).
 */
function withUploadSlot(handlers: grpc.UntypedServiceImplementation, acquire: (call: grpc.ServerUnaryCall<unknown, unknown>) => () => void, limits: IngestLimits): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, h] of Object.entries(handlers)) {
    out[name] = ((call: grpc.ServerUnaryCall<unknown, unknown> & { push?: (m: unknown) => boolean; destroy?: (e: Error) => void }, cb: grpc.sendUnaryData<unknown>) => {
      let release: () => void;
      try {
        release = acquire(call);
      } catch (e) {
        cb(toStatus(e));
        return;
      }
      let watch: ProgressWatch | undefined;
      const push = call.push;
      if (typeof push === 'function' && typeof call.destroy === 'function') {
        const w = new ProgressWatch(limits, (e) => call.destroy!(e));
        watch = w;
        call.push = (m: unknown) => {
          if (m !== null) {
            w.metadataAt();
            w.bytes(messageBytes(m));
          }
          return push.call(call, m);
        };
      }
      (h as (c: unknown, cb: grpc.sendUnaryData<unknown>) => void)(call, (err, value, trailer, flags) => {
        watch?.stop();
        release();
        cb(err, value, trailer, flags);
      });
    }) as grpc.UntypedHandleCall;
  }
  return out;
}

/** Payload bytes of a viam streaming message (binary data or file contents). */
function messageBytes(m: unknown): number {
  const o = m as { data?: Uint8Array; file_contents?: { data?: Uint8Array } };
  return o.data?.length ?? o.file_contents?.data?.length ?? 0;
}

/** grpc-js exposes no server-side flow-control option; set the HTTP/2 windows on its private options (guarded). */
function tuneServerWindows(server: grpc.Server): void {
  const s = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (s.commonServerOptions && typeof s.commonServerOptions === 'object') {
    s.commonServerOptions.settings = { ...(s.commonServerOptions.settings ?? {}), initialWindowSize: FLOW_CONTROL_WINDOW, maxFrameSize: MAX_FRAME_BYTES };
  } else {
    log.debug('grpc-js internals changed: server flow-control window not tuned');
  }
}

/** Per session: the flow-control window, and the connection cap (grpc-js has no option for either). */
function tuneSessions(server: grpc.Server, cap: SessionCap, sockets: Set<net.Socket>): void {
  type Listener = { on(ev: 'session', cb: (sess: Parameters<SessionCap['add']>[0] & { setLocalWindowSize?(n: number): void }) => void): void; on(ev: 'connection' | 'secureConnection', cb: (sock: net.Socket) => void): void };
  const s = server as unknown as { http2Servers?: Map<Listener, unknown> };
  if (!(s.http2Servers instanceof Map)) {
    log.warn('grpc-js internals changed: connection cap not installed');
    return;
  }
  const track = (sock: net.Socket): void => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  };
  for (const h of s.http2Servers.keys()) {
    // Every connection (TCP and, with TLS, its TLS socket): what a close past its grace drops.
    h.on('connection', track);
    h.on('secureConnection', track);
    h.on('session', (sess) => {
      cap.add(sess);
      try {
        sess.setLocalWindowSize?.(FLOW_CONTROL_WINDOW);
      } catch {
        /* session already closing */
      }
    });
  }
}

export async function startIngestServer(opts: IngestServerOptions): Promise<IngestServer> {
  const { host, port } = parseListen(opts.listen);
  const graceMs = opts.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  if (!(graceMs >= 0 && Number.isFinite(graceMs))) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `shutdownGraceMs must be a number of ms ≥ 0, got ${String(opts.shutdownGraceMs)}`);
  let creds: grpc.ServerCredentials;
  if (opts.tls) {
    const { cert, key } = readTlsFiles(opts.tls, 'tls');
    creds = grpc.ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }], false);
  } else if (opts.insecure) {
    if (!isLoopback(host)) {
      throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `refusing plain-text (insecure) ingest on non-loopback address ${host}: use TLS (--tls-cert/--tls-key) or listen on 127.0.0.1`);
    }
    creds = grpc.ServerCredentials.createInsecure();
  } else {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, 'ingest server needs TLS (cert and key files); plain text is allowed only with insecure on a loopback address');
  }
  const keys = opts.apiKeys.filter((k) => k.length > 0);
  const limits = resolveLimits(opts.limits);
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;

  let storage: IngestStorage;
  if (opts.storage === 'postgres') {
    if (!opts.pgUrl) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, "storage 'postgres' needs pgUrl (--pg-url postgres://user:pass@host:5432/db)");
    storage = await PgStorage.open({
      url: opts.pgUrl,
      ...(opts.pgPoolSize ? { poolSize: opts.pgPoolSize } : {}),
      ...(opts.dataDir ? { stagingDir: `${opts.dataDir}/pg-staging` } : {}),
    });
  } else if (opts.storage === undefined || opts.storage === 'files') {
    const fsStorage = acquireFileStorage(opts.dataDir);
    fsStorage.recover();
    storage = fsStorage;
  } else {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `unknown storage ${JSON.stringify(opts.storage)}: use 'files' or 'postgres'`);
  }
  const releaseStorage = (): Promise<void> => {
    if (keyTimer) clearInterval(keyTimer);
    return storage instanceof FileStorage ? releaseFileStorage(storage) : storage.close();
  };
  const fileRoot = storage instanceof FileStorage ? storage.dataDir : '/edgecap-postgres';

  // The key registry: read through (LMDB) or mirrored and refreshed (PostgreSQL).
  let keyTimer: NodeJS.Timeout | undefined;
  let tokenSecret: string;
  try {
    if (storage.refreshKeys) {
      await storage.refreshKeys();
      keyTimer = setInterval(() => storage.refreshKeys!().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'key registry refresh failed')), opts.keyRefreshMs ?? 2000);
      keyTimer.unref();
    }
    tokenSecret = await storage.tokenSecret();
  } catch (e) {
    await releaseStorage();
    throw e;
  }
  if (keys.length === 0 && !isLoopback(host) && !storage.anyKeys()) {
    await releaseStorage();
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `ingest server on ${host} needs a key: device keys (edgecap keys create --part P) or a fleet key (--api-key or EDGECAP_API_KEY); only a loopback server may run without one`);
  }
  const openWhenNoKeys = keys.length === 0 && isLoopback(host);
  if (openWhenNoKeys && !storage.anyKeys()) log.warn('no API key configured: accepting unauthenticated calls (loopback only) until a device key exists');
  const identity = makeIdentity({ fleetKeys: keys, registry: storage, tokenSecret, openWhenNoKeys });
  const ctx: UploadContext = { storage, maxFileBytes, fileRoot, limits };
  const slots = new UploadSlots(limits);
  const cap = new SessionCap(limits.maxConnections);

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    'grpc.max_connection_idle_ms': limits.idleConnectionMs,
  } as grpc.ServerOptions);
  tuneServerWindows(server);

  const unauth = { code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS };
  const keyOf = (who: Principal): string => (who.kind === 'device' ? who.keyId : who.label);
  /** An upload call: the caller from its credential, an upload slot held until it ends. */
  const withSlot = (call: UploadCall, cb: grpc.sendUnaryData<unknown>, refused: string, handle: (call: UploadCall, who: Principal, ctx: UploadContext) => Promise<unknown>): void => {
    const who = identity.principal(call.metadata);
    if (!who) {
      cb(unauth);
      return;
    }
    let release: () => void;
    try {
      release = slots.acquire(call.getPeer(), keyOf(who));
    } catch (e) {
      cb(toStatus(e));
      return;
    }
    handle(call, who, ctx)
      .then(
        (res) => cb(null, res),
        (err) => {
          if (err instanceof RequestRejected) log.warn({ reason: err.message }, refused);
          cb(toStatus(err));
        },
      )
      .finally(release);
  };
  const handlers: grpc.UntypedServiceImplementation = {
    Upload: (call: UploadCall, cb: grpc.sendUnaryData<unknown>) => withSlot(call, cb, 'upload rejected', handleUpload),
    // A batch of small files holds ONE upload slot: its files arrive one after another on one
    // stream, and maxBatchBytes bounds what it holds in memory.
    UploadBatch: (call: UploadCall, cb: grpc.sendUnaryData<unknown>) => withSlot(call, cb, 'upload batch refused', handleUploadBatch),
    ReportGaps: (call: grpc.ServerUnaryCall<ReportGapsRequest__Output | BadMessage, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const who = identity.principal(call.metadata);
      if (!who) return cb(unauth);
      const req = call.request;
      if (req instanceof BadMessage) return cb(toStatus(invalid(req.reason)));
      if (req.gaps.length > limits.maxGapsPerReport) return cb(toStatus(invalid(`gaps: ${req.gaps.length} gaps in one call (limit ${limits.maxGapsPerReport}): send them in batches`, { limit: limits.maxGapsPerReport })));
      let gaps: ReportedGap[];
      try {
        gaps = req.gaps.map((g, i) => checkGap(g, i, who, limits));
      } catch (e) {
        return cb(toStatus(e));
      }
      storage.putGaps(gaps).then(
        (accepted) => cb(null, { accepted }),
        (e) => cb(toStatus(e)),
      );
      return undefined;
    },
    Health: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!identity.principal(call.metadata)) return cb(unauth);
      if (call.request instanceof BadMessage) return cb(toStatus(invalid(call.request.reason)));
      return cb(null, { version: INGEST_VERSION, storage: storage.kind });
    },
  };
  server.addService(strictDataSyncService(), handlers);
  // viam-server's sync protocol beside ours: same port, TLS and API key (authorization: Bearer <key>).
  // Uploads of both protocols share the slots; a viam upload holds one from its first message.
  server.addService(
    viamDataSyncService(),
    withUploadSlot(viamServiceHandlers<Principal>({
      authorize: (md) => identity.principal(md),
      admit: (who, partId) => void actAs(who, partId, 'upload'),
      stage: () => storage.stage(),
      maxBytes: maxFileBytes,
      maxAnnotations: limits.maxAnnotationsPerItem,
      toStatus,
      commit: (req, who) => commitViam(ctx, req, who),
    }), (call) => {
      const who = identity.principal(call.metadata);
      return who ? slots.acquire(call.getPeer(), keyOf(who)) : () => undefined;
    }, limits),
  );
  // ...and its auth handshake: an API key (or a part's robot secret) exchanged for an access token.
  server.addService(authServiceDefinition(), authServiceHandlers({
    authenticate: (entity, type, payload) => identity.authenticate(entity, type, payload),
    ttlMs: opts.accessTokenTtlMs ?? DEFAULT_ACCESS_TOKEN_TTL_MS,
    onAuthenticate: (entity, ok) => log.info({ entity, ok }, 'authenticate'),
  }));

  let boundPort: number;
  try {
    const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    boundPort = await new Promise<number>((resolve, reject) => server.bindAsync(target, creds, (err, p) => (err ? reject(err) : resolve(p))));
  } catch (e) {
    await releaseStorage();
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `cannot listen on ${opts.listen}: ${(e as Error).message}`, { cause: e });
  }
  const sockets = new Set<net.Socket>();
  tuneSessions(server, cap, sockets);
  const address = net.isIPv6(host) ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;
  log.info({ address, tls: Boolean(opts.tls), dataDir: opts.dataDir, storage: storage.kind }, 'ingest server listening');

  let closing: Promise<void> | undefined;
  /**
   * Cancel every call and drop every connection. The sockets are destroyed here, not left to the
   * sessions: a session whose connection was reset while it closed gracefully can stay destroyed
   * without ever emitting 'close' (seen on Node 22: its TLS socket open, no longer read, the TCP
   * connection long gone), and grpc-js's tryShutdown then waits for it forever.
   */
  const forceDown = (): void => {
    server.forceShutdown();
    for (const sock of sockets) sock.destroy();
  };
  return {
    address,
    port: boundPort,
    close() {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const graceful = await Promise.race([
          new Promise<true>((resolve) => server.tryShutdown(() => resolve(true))),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
        ]);
        clearTimeout(timer);
        if (!graceful) {
          log.warn({ graceMs, connections: sockets.size }, 'calls still running after the shutdown grace: cancelled, connections dropped');
          forceDown();
        }
        await releaseStorage();
      })();
      return closing;
    },
    forceClose() {
      forceDown();
      closing ??= releaseStorage();
    },
  };
}
