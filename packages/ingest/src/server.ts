/**
 * The ingest server: the receiving end of sync.
 *
 *   edge ──TLS/HTTP2──► grpc-js Server ──strict deserializer (unknown fields → BadMessage)
 *                          │ auth: authorization: Bearer <key>  (sha256 + timingSafeEqual)
 *                          ▼
 *   Upload: metadata ─► validate ─► ALREADY_HAVE? ─► chunks ─► StagedUpload (size/sha256 running)
 *                                                      end ─► verify ─► capture check ─► storage.commit
 *                                                                                     └► response
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import type { FileMetadata__Output, ReportGapsRequest__Output, UploadRequest__Output } from '@edgecap/proto';
import { scanCapture } from './capture-check.js';
import { RequestRejected, invalid } from './errors.js';
import { checkFileId, checkFileName } from './paths.js';
import { acquireFileStorage, releaseFileStorage, FileStorage, type CaptureInfo, type IngestStorage, type NewFileRecord, type ReportedGap, type StagedUpload } from './storage.js';
import { PgStorage } from './pg/storage.js';
import { BadMessage, strictDataSyncService } from './wire.js';
import { DEFAULT_ACCESS_TOKEN_TTL_MS, authServiceDefinition, authServiceHandlers, verifyAccessToken, viamDataSyncService, viamServiceHandlers, type ViamCommitRequest } from '@edgecap/viam';

const log = logger('ingest');

export const INGEST_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024 * 1024;
/** Largest single gRPC message accepted: room for 8 MiB chunks plus framing. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 1024;
/** HTTP/2 receive windows (per stream and per connection) for upload throughput. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

export interface IngestServerOptions {
  /** host:port; port 0 picks a free port. IPv6 as [::1]:port. */
  listen: string;
  dataDir: string;
  tls?: { certFile: string; keyFile: string };
  /** Plain-text HTTP/2: only honoured on a loopback host. */
  insecure?: boolean;
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
}

export interface IngestServer {
  /** host:port actually bound. */
  address: string;
  port: number;
  /** Stop accepting calls, let running ones finish, close storage. */
  close(): Promise<void>;
  /** Cancel running calls and stop now. */
  forceClose(): void;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]+):(\d+)$/.exec(listen);
  if (!m) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `listen address ${JSON.stringify(listen)} must be HOST:PORT (IPv6 as [::1]:PORT)`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `listen port ${m[2]} is out of range`);
  return { host: m[1]!, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

const hashKey = (k: string): Buffer => createHash('sha256').update(k, 'utf8').digest();

/** Constant-time lookup of an API key among the configured ones (the key, or undefined). */
export function makeKeyMatcher(apiKeys: string[]): (secret: string) => string | undefined {
  const hashes = apiKeys.map((k) => [k, hashKey(k)] as const);
  return (secret) => {
    const h = hashKey(secret);
    let found: string | undefined;
    for (const [k, kh] of hashes) if (timingSafeEqual(h, kh)) found = k;
    return found;
  };
}

/**
 * `authorization: Bearer <credential>`: a configured API key (constant-time), or an access token
 * that proto.rpc.v1.AuthService issued for one (a JWT signed with it, unexpired).
 */
export function makeAuthorizer(apiKeys: string[]): (md: grpc.Metadata) => boolean {
  const match = makeKeyMatcher(apiKeys);
  return (md) => {
    const v = md.get('authorization')[0];
    if (typeof v !== 'string' || !v.startsWith('Bearer ')) return false;
    const cred = v.slice(7);
    return match(cred) !== undefined || verifyAccessToken(cred, apiKeys);
  };
}

const DATA_TYPES: Record<string, NewFileRecord['data_type']> = {
  DATA_TYPE_TABULAR: 'tabular',
  DATA_TYPE_BINARY: 'binary',
  DATA_TYPE_FILE: 'file',
};

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof RequestRejected) return { code: err.status, details: err.message };
  if (err instanceof EdgecapError && err.code === ErrorCodes.CLOSED) return { code: grpc.status.UNAVAILABLE, details: 'ingest server is shutting down' };
  if (err instanceof EdgecapError && err.code === ErrorCodes.UNAVAILABLE) {
    log.warn({ err: err.message }, 'storage unavailable');
    return { code: grpc.status.UNAVAILABLE, details: `storage unavailable: ${err.message}` };
  }
  log.error({ err }, 'ingest request failed');
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

/** Validated upload metadata, as the storage will record it. */
function checkMetadata(md: FileMetadata__Output, maxFileBytes: number, fileRoot: string): NewFileRecord & { sha256raw: Buffer } {
  const fileId = checkFileId(md.file_id);
  const dataType = DATA_TYPES[md.data_type as unknown as string];
  if (!dataType) throw invalid(`metadata.data_type ${String(md.data_type)} is not one of DATA_TYPE_TABULAR, DATA_TYPE_BINARY, DATA_TYPE_FILE`);
  const size = Number(md.size);
  if (!Number.isSafeInteger(size) || size < 0) throw invalid(`metadata.size ${String(md.size)} is not a valid byte count`);
  if (size > maxFileBytes) throw invalid(`file size ${size} exceeds the server limit of ${maxFileBytes} bytes`, { size, limit: maxFileBytes });
  const sha = Buffer.from(md.sha256 ?? []);
  if (sha.length !== 32) throw invalid(`metadata.sha256 must be 32 bytes, got ${sha.length}`);
  let fileName: string | undefined;
  if (dataType === 'file') {
    checkFileName(md.file_name, `${fileRoot}/files/x/y`);
    fileName = md.file_name;
  }
  const rec: NewFileRecord & { sha256raw: Buffer } = {
    file_id: fileId,
    part_id: md.part_id,
    data_type: dataType,
    resource_kind: md.resource_kind,
    resource_name: md.resource_name,
    method: md.method,
    tags: [...(md.tags ?? [])],
    size,
    sha256: sha.toString('hex'),
    mtime_ms: Number(md.mtime_ms ?? 0),
    source: md.source,
    sha256raw: sha,
  };
  if (fileName !== undefined) rec.file_name = fileName;
  return rec;
}

/** Capture files must decode as edgecap capture files with the announced id. */
function checkCapture(bytes: Uint8Array, fileId: string): { info: CaptureInfo; kind: string; name: string; method: string; part_id?: string } {
  const s = scanCapture(bytes);
  if (s.fatal !== undefined || !s.header) throw invalid(`not a valid edgecap capture file: ${s.fatal ?? 'no header'}`);
  if (s.header.id !== fileId) throw invalid(`capture file header id ${JSON.stringify(s.header.id)} does not match metadata.file_id ${JSON.stringify(fileId)}`);
  const seqs = s.seqs;
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i]! < seqs[i - 1]!) {
      seqs.sort((a, b) => a - b);
      break;
    }
  }
  const ranges: [number, number][] = [];
  for (const q of seqs) {
    const last = ranges.at(-1);
    if (last && q <= last[1] + 1) last[1] = Math.max(last[1], q);
    else ranges.push([q, q]);
  }
  const info: CaptureInfo = {
    readings: seqs.length,
    first_seq: seqs[0],
    last_seq: seqs.at(-1),
    ranges,
    gaps: s.gaps,
    problems: s.problems,
    header_type: s.header.type,
  };
  if (s.header.mime_type) info.mime_type = s.header.mime_type;
  const out: ReturnType<typeof checkCapture> = { info, kind: s.header.kind, name: s.header.name, method: s.header.method };
  if (s.header.part_id) out.part_id = s.header.part_id;
  return out;
}

type UploadCall = grpc.ServerReadableStream<UploadRequest__Output | BadMessage, unknown>;

/**
 * Feed the call's messages one at a time to `onMessage` (paused while it runs: disk writes
 * apply backpressure to the sender). `onMessage` returns true to stop reading early.
 */
function consume<T>(call: grpc.ServerReadableStream<T, unknown>, onMessage: (m: T) => Promise<boolean>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let chain: Promise<unknown> = Promise.resolve();
    let done = false;
    const fail = (e: unknown): void => {
      if (done) return;
      done = true;
      call.pause();
      reject(e);
    };
    call.on('data', (m: T) => {
      call.pause();
      chain = chain
        .then(() => (done ? true : onMessage(m)))
        .then((stop) => {
          if (done) return;
          if (stop) {
            done = true;
            resolve();
          } else call.resume();
        }, fail);
    });
    call.on('end', () => {
      chain = chain.then(() => {
        if (!done) {
          done = true;
          resolve();
        }
      });
    });
    call.on('error', fail);
    call.on('cancelled', () => fail(new RequestRejected(grpc.status.CANCELLED, 'upload cancelled by the client')));
  });
}

async function handleUpload(call: UploadCall, storage: IngestStorage, maxFileBytes: number, fileRoot: string): Promise<Record<string, unknown>> {
  let staged: StagedUpload | undefined;
  let meta: ReturnType<typeof checkMetadata> | undefined;
  let early: Record<string, unknown> | undefined;
  try {
    await consume(call, async (msg) => {
      if (msg instanceof BadMessage) throw invalid(msg.reason);
      if (!meta) {
        if (msg.packet !== 'metadata' || !msg.metadata) {
          throw invalid(msg.packet === 'chunk' ? 'first message must be metadata, got a chunk' : 'first message must be metadata, got an empty message');
        }
        meta = checkMetadata(msg.metadata, maxFileBytes, fileRoot);
        const have = await storage.get(meta.file_id);
        if (have) {
          // Committed before: answer now, store nothing, read no further.
          early = { file_id: meta.file_id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: have.size };
          return true;
        }
        staged = await storage.stage();
        return false;
      }
      if (msg.packet === 'metadata') throw invalid('metadata sent twice in one upload');
      if (msg.packet !== 'chunk') throw invalid('message has neither metadata nor chunk');
      const chunk = msg.chunk;
      if (staged!.bytes + chunk.length > meta.size) {
        throw invalid(`size mismatch: received more than the declared ${meta.size} bytes`, { declared: meta.size });
      }
      await staged!.write(chunk);
      return false;
    });
    if (early) return early;
    if (!meta || !staged) throw invalid('upload ended without metadata');
    const { bytes, sha256 } = await staged.finish();
    if (bytes !== meta.size) throw invalid(`size mismatch: metadata.size is ${meta.size} bytes, received ${bytes}`, { declared: meta.size, received: bytes });
    if (sha256 !== meta.sha256) throw invalid(`checksum mismatch: sha256 of the received bytes is ${sha256}, metadata.sha256 is ${meta.sha256}`);
    const { sha256raw: _, ...rec } = meta;
    if (rec.data_type !== 'file') describeCapture(rec, await staged.read());
    const st = staged;
    staged = undefined; // commit owns it now (renamed or discarded)
    const res = await storage.commit(st, rec);
    log.info({ file_id: rec.file_id, status: res.status, bytes }, 'upload');
    return {
      file_id: rec.file_id,
      status: res.status === 'committed' ? 'UPLOAD_STATUS_COMMITTED' : 'UPLOAD_STATUS_ALREADY_HAVE',
      stored_bytes: res.record.size,
    };
  } finally {
    if (staged) await (staged as StagedUpload).discard().catch(() => undefined);
  }
}

/** Check staged capture bytes against the record and fill in what the file itself says. */
function describeCapture(rec: NewFileRecord, bytes: Uint8Array): void {
  const c = checkCapture(bytes, rec.file_id);
  rec.capture = c.info;
  rec.resource_kind = c.kind;
  rec.resource_name = c.name;
  rec.method = c.method;
  if (!rec.part_id && c.part_id) rec.part_id = c.part_id;
}

/**
 * viam.app.datasync.v1 uploads (converted by @edgecap/viam into capture bytes whose id is the
 * upload's dedup key, or a file as sent) enter the same commit path: stored once per key.
 */
async function commitViam(storage: IngestStorage, req: ViamCommitRequest, fileRoot: string): Promise<'committed' | 'already_have'> {
  const fileId = checkFileId(req.file_id);
  if (await storage.get(fileId)) return 'already_have';
  let staged: StagedUpload | undefined = await storage.stage();
  try {
    for (const c of req.chunks) await staged.write(c);
    const { bytes, sha256 } = await staged.finish();
    const rec: NewFileRecord = { file_id: fileId, part_id: req.part_id, data_type: req.data_type, resource_kind: '', resource_name: '', method: '', tags: req.tags, size: bytes, sha256, mtime_ms: req.mtime_ms, source: req.source };
    if (req.data_type === 'file') {
      checkFileName(req.file_name ?? fileId, `${fileRoot}/files/x/y`);
      rec.file_name = req.file_name ?? fileId;
    } else describeCapture(rec, await staged.read());
    const st = staged;
    staged = undefined; // commit owns it now
    const res = await storage.commit(st, rec);
    log.info({ file_id: fileId, status: res.status, bytes, protocol: 'viam' }, 'upload');
    return res.status;
  } finally {
    if (staged) await staged.discard().catch(() => undefined);
  }
}

function checkGap(g: unknown, i: number): ReportedGap {
  const o = g as Record<string, unknown>;
  const from = Number(o.from_seq);
  const to = Number(o.to_seq);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw invalid(`gaps[${i}]: from_seq ${String(o.from_seq)} .. to_seq ${String(o.to_seq)} is not a valid inclusive range`);
  }
  for (const f of ['resource_name', 'method', 'reason'] as const) {
    if (typeof o[f] !== 'string' || (o[f] as string).length === 0) throw invalid(`gaps[${i}].${f} is empty`);
  }
  return {
    part_id: String(o.part_id ?? ''),
    resource_kind: String(o.resource_kind ?? ''),
    resource_name: o.resource_name as string,
    method: o.method as string,
    from_seq: from,
    to_seq: to,
    reason: o.reason as string,
    time_us: Number(o.time_us ?? 0),
  };
}

/** grpc-js exposes no server-side flow-control option; set the HTTP/2 windows on its private options (guarded). */
function tuneServerWindows(server: grpc.Server): void {
  const s = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (s.commonServerOptions && typeof s.commonServerOptions === 'object') {
    s.commonServerOptions.settings = { ...(s.commonServerOptions.settings ?? {}), initialWindowSize: FLOW_CONTROL_WINDOW };
  } else {
    log.debug('grpc-js internals changed: server flow-control window not tuned');
  }
}

function tuneSessions(server: grpc.Server): void {
  const s = server as unknown as { http2Servers?: Map<{ on(ev: 'session', cb: (sess: { setLocalWindowSize?(n: number): void }) => void): void }, unknown> };
  if (!(s.http2Servers instanceof Map)) return;
  for (const h of s.http2Servers.keys()) {
    h.on('session', (sess) => {
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
  let creds: grpc.ServerCredentials;
  if (opts.tls) {
    creds = grpc.ServerCredentials.createSsl(null, [{ private_key: fs.readFileSync(opts.tls.keyFile), cert_chain: fs.readFileSync(opts.tls.certFile) }], false);
  } else if (opts.insecure) {
    if (!isLoopback(host)) {
      throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `refusing plain-text (insecure) ingest on non-loopback address ${host}: use TLS (--tls-cert/--tls-key) or listen on 127.0.0.1`);
    }
    creds = grpc.ServerCredentials.createInsecure();
  } else {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, 'ingest server needs TLS (cert and key files); plain text is allowed only with insecure on a loopback address');
  }
  const keys = opts.apiKeys.filter((k) => k.length > 0);
  let authorized: (md: grpc.Metadata) => boolean;
  if (keys.length > 0) authorized = makeAuthorizer(keys);
  else if (isLoopback(host)) {
    // Development convenience: a loopback-only server without keys accepts every caller.
    log.warn('no API key configured: accepting unauthenticated calls (loopback only)');
    authorized = () => true;
  } else {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `ingest server on ${host} needs at least one API key (--api-key or EDGECAP_API_KEY); only a loopback server may run without one`);
  }
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
  const releaseStorage = (): Promise<void> => (storage instanceof FileStorage ? releaseFileStorage(storage) : storage.close());
  const fileRoot = storage instanceof FileStorage ? storage.dataDir : '/edgecap-postgres';

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
  } as grpc.ServerOptions);
  tuneServerWindows(server);

  const unauth = { code: grpc.status.UNAUTHENTICATED, details: 'missing or invalid API key (send authorization: Bearer <key>)' };
  const handlers: grpc.UntypedServiceImplementation = {
    Upload: (call: UploadCall, cb: grpc.sendUnaryData<unknown>) => {
      if (!authorized(call.metadata)) {
        cb(unauth);
        return;
      }
      handleUpload(call, storage, maxFileBytes, fileRoot).then(
        (res) => cb(null, res),
        (err) => {
          if (!(err instanceof RequestRejected)) return cb(toStatus(err));
          log.warn({ reason: err.message }, 'upload rejected');
          return cb(toStatus(err));
        },
      );
    },
    ReportGaps: (call: grpc.ServerUnaryCall<ReportGapsRequest__Output | BadMessage, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!authorized(call.metadata)) return cb(unauth);
      const req = call.request;
      if (req instanceof BadMessage) return cb(toStatus(invalid(req.reason)));
      let gaps: ReportedGap[];
      try {
        gaps = req.gaps.map(checkGap);
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
      if (!authorized(call.metadata)) return cb(unauth);
      if (call.request instanceof BadMessage) return cb(toStatus(invalid(call.request.reason)));
      return cb(null, { version: INGEST_VERSION, storage: storage.kind });
    },
  };
  server.addService(strictDataSyncService(), handlers);
  // viam-server's sync protocol beside ours: same port, TLS and API key (authorization: Bearer <key>).
  server.addService(viamDataSyncService(), viamServiceHandlers({ authorized, maxBytes: maxFileBytes, toStatus, commit: (req) => commitViam(storage, req, fileRoot) }));
  // ...and its auth handshake: an API key exchanged for an access token (see @edgecap/viam auth.ts).
  const keyMatcher = makeKeyMatcher(keys);
  server.addService(authServiceDefinition(), authServiceHandlers({
    matchKey: keys.length > 0 ? keyMatcher : (secret) => secret,
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
  tuneSessions(server);
  const address = net.isIPv6(host) ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;
  log.info({ address, tls: Boolean(opts.tls), dataDir: opts.dataDir, storage: storage.kind }, 'ingest server listening');

  let closing: Promise<void> | undefined;
  return {
    address,
    port: boundPort,
    close() {
      closing ??= new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => releaseStorage());
      return closing;
    },
    forceClose() {
      server.forceShutdown();
      closing ??= releaseStorage();
    },
  };
}
