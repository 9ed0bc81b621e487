import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadSyncProto, type DataSyncClient } from '@edgecap/proto';
import { isLoopback } from '@edgecap/core';
import { SyncConfigError } from './errors.js';

/** Where and how to reach the ingest server. */
export interface IngestTarget {
  /** `host:port`, or several for fail-over (rotated on connectivity failures). */
  address: string | string[];
  /** Plain-text HTTP/2; only allowed for loopback addresses. */
  insecure?: boolean;
  /** PEM CA bundle to trust (self-signed server certs); system roots otherwise. */
  caFile?: string;
  apiKey?: string;
  /**
   * viam protocol only: the API key's id. Set, the client first exchanges id + key for an access
   * token (proto.rpc.v1.AuthService/Authenticate, as viam-server does with app.viam.com) and
   * sends the token; unset, it sends the key itself as the bearer credential.
   */
  apiKeyId?: string;
  /**
   * TLS server name to verify (and :authority) when it differs from the address host. A host
   * name is also sent as SNI; an IP (here or in `address`) is checked against the certificate's
   * IP SANs and never sent as SNI (RFC 6066; Node 26 refuses it: patches/README.md).
   */
  serverName?: string;
  /** Wire protocol: edgecap.sync.v1 (default) or viam-server's viam.app.datasync.v1 (see @edgecap/viam). */
  protocol?: 'edgecap' | 'viam';
  /** HTTP/2 keepalive ping interval while calls run, ms (default 30000). */
  keepaliveMs?: number;
  /** How long a keepalive ping may go unanswered before the connection is dropped, ms (default 10000). */
  keepaliveTimeoutMs?: number;
}

export const DEFAULT_KEEPALIVE_MS = 30_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Flow-control window and message limits: a 1 MiB chunk must never wait on a 64 KiB window. */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export function addressesOf(t: IngestTarget): string[] {
  const list = (Array.isArray(t.address) ? t.address : [t.address]).map((a) => a.trim()).filter((a) => a.length > 0);
  if (list.length === 0) throw new SyncConfigError('ingest.address is empty', { field: 'ingest.address' });
  return list;
}

// One parser of addresses for the config check and this one (a leaf in core: no gRPC to load).
export { hostOf, isLoopback } from '@edgecap/core';

/** Validate a target up front: plain text is allowed only to loopback; the CA file must exist. */
export function checkTarget(t: IngestTarget): void {
  const list = addressesOf(t);
  if (t.apiKeyId !== undefined && t.protocol !== 'viam') throw new SyncConfigError('ingest.api_key_id is used only with ingest.protocol "viam"', { field: 'ingest.api_key_id' });
  if (t.apiKeyId !== undefined && !t.apiKey) throw new SyncConfigError('ingest.api_key_id needs ingest.api_key (the key itself)', { field: 'ingest.api_key' });
  if (t.insecure) {
    const bad = list.filter((a) => !isLoopback(a));
    if (bad.length > 0) {
      throw new SyncConfigError(
        `ingest.insecure is only allowed for loopback addresses (127.0.0.0/8, ::1, localhost); refusing plain text to ${bad.join(', ')}`,
        { field: 'ingest.insecure', addresses: bad },
      );
    }
  } else if (t.caFile !== undefined && !fs.existsSync(t.caFile)) {
    throw new SyncConfigError(`ingest.ca_file ${t.caFile} does not exist`, { field: 'ingest.ca_file' });
  }
}

export function channelOptions(t: IngestTarget): grpc.ChannelOptions {
  const o: grpc.ChannelOptions = {
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': t.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': t.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    // No per-call retry buffer (retries are off anyway): grpc-js would otherwise complete the
    // first MiB of writes at once, before the bytes reach the transport, and the slow-link window
    // (link.ts) could not tell what is really queued ahead of the link.
    'grpc.per_rpc_retry_buffer_size': 0,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 5_000,
    // Our own backoff decides retries; a fresh channel per address is what fail-over rotates.
    'grpc.enable_retries': 0,
  };
  if (t.serverName && !t.insecure) {
    o['grpc.ssl_target_name_override'] = t.serverName;
    o['grpc.default_authority'] = t.serverName;
  }
  return o;
}

export function credentialsFor(t: IngestTarget): grpc.ChannelCredentials {
  checkTarget(t);
  if (t.insecure) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(t.caFile ? fs.readFileSync(t.caFile) : null);
}

/** The address fail-over index `i` points at (it only ever grows: taken modulo the list). */
export function addressAt(t: IngestTarget, i: number): string {
  const list = addressesOf(t);
  return list[((i % list.length) + list.length) % list.length]!;
}

/**
 * An UploadRequest written with this key set to its encoded bytes is sent as those bytes (the
 * chunk read into a buffer with room for its tag and length in front: upload.ts frameChunk),
 * not encoded again by protobufjs, which would copy the chunk.
 */
export const PREFRAMED = Symbol('edgecap.sync.preframed');

let ctor: grpc.ServiceClientConstructor | undefined;

/** DataSync's client class, with Upload's and UploadBatch's serializers taking PREFRAMED messages as they are. */
function dataSyncClientClass(): grpc.ServiceClientConstructor {
  if (!ctor) {
    const svc = loadSyncProto().edgecap.sync.v1.DataSync.service;
    const up = svc.Upload!;
    const encode = up.requestSerialize;
    const serialize = (m: Record<symbol, unknown>): Buffer => (m[PREFRAMED] as Buffer | undefined) ?? encode(m);
    // UploadBatch streams the same UploadRequest messages (batch.ts).
    const def: grpc.ServiceDefinition = { ...svc, Upload: { ...up, requestSerialize: serialize }, ...(svc.UploadBatch ? { UploadBatch: { ...svc.UploadBatch, requestSerialize: serialize } } : {}) };
    ctor = grpc.makeClientConstructor(def, 'edgecap.sync.v1.DataSync');
  }
  return ctor;
}

export function makeClient(t: IngestTarget, addressIndex: number, extra: grpc.ChannelOptions = {}): DataSyncClient {
  const address = addressAt(t, addressIndex);
  const Ctor = dataSyncClientClass();
  return new Ctor(address, credentialsFor(t), { ...channelOptions(t), ...extra }) as unknown as DataSyncClient;
}

export function callMetadata(t: IngestTarget): grpc.Metadata {
  const md = new grpc.Metadata();
  if (t.apiKey) md.set('authorization', `Bearer ${t.apiKey}`);
  return md;
}
