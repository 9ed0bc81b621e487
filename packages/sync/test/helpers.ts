/**
 * Test helpers: a real grpc-js DataSync server on port 0 that can be told to fail
 * (convention 12), a TCP proxy that can cut a connection mid-stream, TLS material,
 * and capture/arbitrary file makers.
 */
import { EventEmitter } from 'node:events';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { dataSyncService, type FileMetadata__Output, type Gap__Output, type UploadRequest__Output, type UploadResponse } from '@edgecap/proto';
import { FrameEncoder, FrameType, encodeFileStart, encodeFrame, timeStamp } from '@edgecap/format';

export interface Stored {
  meta: FileMetadata__Output;
  data: Buffer;
  /** How many times this id was stored (exactly once ⇒ 1). */
  stores: number;
  alreadyHave: number;
}

export type HangMode = 'before-commit' | 'after-commit';

export interface Faults {
  /** Health and Upload both fail with this status while set ("server down"). */
  down?: grpc.status;
  /** Upload fails with `code` for the next `times` Upload calls. */
  failUploads?: { code: grpc.status; times: number };
  /** Never answer this upload: before committing it, or after (a lost ack). */
  hang?: (m: FileMetadata__Output) => HangMode | undefined;
  /** Reject matching uploads as INVALID_ARGUMENT with this message. */
  reject?: (m: FileMetadata__Output) => string | undefined;
  /** Refuse an UploadBatch of more files than this as a whole (INVALID_ARGUMENT), as the ingest's maxBatchFiles does. */
  maxBatchFiles?: number;
}

export class TestServer extends EventEmitter {
  readonly stored = new Map<string, Stored>();
  readonly hits = { Health: 0, Upload: 0, ReportGaps: 0, UploadBatch: 0 };
  readonly gaps: Gap__Output[] = [];
  faults: Faults = {};
  port = 0;
  private server: grpc.Server | undefined;
  private hung: grpc.ServerReadableStream<UploadRequest__Output, UploadResponse>[] = [];

  /** Files per UploadBatch call answered (batch: true). */
  readonly batchSizes: number[] = [];

  /** batch: answer UploadBatch (default: UNIMPLEMENTED, as an ingest older than it). */
  constructor(private readonly opts: { tls?: { cert: Buffer; key: Buffer }; apiKey?: string; batch?: boolean } = {}) {
    super();
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private authed(md: grpc.Metadata): boolean {
    if (!this.opts.apiKey) return true;
    return md.get('authorization')[0] === `Bearer ${this.opts.apiKey}`;
  }

  /** Bind (port 0 the first time; the same port again after close(), a server that came back). */
  async start(): Promise<void> {
    this.server = new grpc.Server();
    const creds = this.opts.tls
      ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: this.opts.tls.cert, private_key: this.opts.tls.key }], false)
      : grpc.ServerCredentials.createInsecure();
    this.server.addService(dataSyncService(), {
      Health: (call: grpc.ServerUnaryCall<object, object>, cb: grpc.sendUnaryData<object>) => {
        // Link probes (link.ts: acknowledging upload bytes) are not connectivity probes.
        if (call.metadata.get('x-edgecap-probe')[0] !== 'link') this.hits.Health++;
        if (!this.authed(call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad api key' });
        if (this.faults.down !== undefined) return cb({ code: this.faults.down, details: 'test server is down' });
        cb(null, { version: 'test', storage: 'memory' });
      },
      ReportGaps: (call: grpc.ServerUnaryCall<{ gaps: Gap__Output[] }, object>, cb: grpc.sendUnaryData<object>) => {
        this.hits.ReportGaps++;
        if (!this.authed(call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad api key' });
        if (this.faults.down !== undefined) return cb({ code: this.faults.down, details: 'test server is down' });
        this.gaps.push(...call.request.gaps);
        cb(null, { accepted: call.request.gaps.length });
      },
      UploadBatch: (call: grpc.ServerReadableStream<UploadRequest__Output, object>, cb: grpc.sendUnaryData<object>) => {
        this.hits.UploadBatch++;
        if (!this.opts.batch) return cb({ code: grpc.status.UNIMPLEMENTED, details: 'this test server has no UploadBatch' });
        if (!this.authed(call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad api key' });
        if (this.faults.down !== undefined) return cb({ code: this.faults.down, details: 'test server is down' });
        const files: { meta: FileMetadata__Output; chunks: Buffer[] }[] = [];
        call.on('data', (m: UploadRequest__Output) => {
          if (m.packet === 'metadata' && m.metadata) files.push({ meta: m.metadata, chunks: [] });
          else if (m.packet === 'chunk' && m.chunk) files.at(-1)?.chunks.push(m.chunk);
        });
        call.on('error', () => undefined); // client went away: nothing is committed
        call.on('end', () => {
          const max = this.faults.maxBatchFiles;
          if (max !== undefined && files.length > max) return cb({ code: grpc.status.INVALID_ARGUMENT, details: `upload batch has more than ${max} files (limit maxBatchFiles)` });
          this.batchSizes.push(files.length);
          const results = files.map(({ meta, chunks }) => {
            const reason = this.faults.reject?.(meta);
            const v = reason ? { code: grpc.status.INVALID_ARGUMENT, details: reason } : this.commitOne(meta, Buffer.concat(chunks));
            if ('code' in v) return { file_id: meta.file_id, status: 'UPLOAD_STATUS_REJECTED', stored_bytes: 0, code: v.code, message: v.details };
            return { ...v, code: 0, message: '' };
          });
          cb(null, { results });
        });
      },
      Upload: (call: grpc.ServerReadableStream<UploadRequest__Output, UploadResponse>, cb: grpc.sendUnaryData<UploadResponse>) => {
        this.hits.Upload++;
        if (!this.authed(call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad api key' });
        if (this.faults.down !== undefined) return cb({ code: this.faults.down, details: 'test server is down' });
        const f = this.faults.failUploads;
        if (f && f.times > 0) {
          f.times--;
          return cb({ code: f.code, details: 'told to fail' });
        }
        let meta: FileMetadata__Output | undefined;
        const chunks: Buffer[] = [];
        let answered = false;
        const answer = (err: grpc.ServiceError | Partial<grpc.StatusObject> | null, res?: UploadResponse): void => {
          if (answered) return;
          answered = true;
          cb(err, res);
        };
        call.on('data', (m: UploadRequest__Output) => {
          if (answered) return;
          if (!meta) {
            if (m.packet !== 'metadata' || !m.metadata) return answer({ code: grpc.status.INVALID_ARGUMENT, details: 'first message must be metadata' });
            const first = m.metadata;
            meta = first;
            this.emit('upload-start', first);
            const reason = this.faults.reject?.(first);
            if (reason) return answer({ code: grpc.status.INVALID_ARGUMENT, details: reason });
            return;
          }
          if (m.packet !== 'chunk' || !m.chunk) return answer({ code: grpc.status.INVALID_ARGUMENT, details: 'expected chunk' });
          chunks.push(m.chunk);
          this.emit('chunk', meta, m.chunk.length);
        });
        call.on('error', () => undefined); // client went away: nothing is committed
        call.on('end', () => {
          if (answered) return;
          if (!meta) return answer({ code: grpc.status.INVALID_ARGUMENT, details: 'no metadata' });
          const data = Buffer.concat(chunks);
          const hang = this.faults.hang?.(meta);
          if (hang === 'before-commit') {
            this.hung.push(call);
            this.emit('hung', meta);
            return;
          }
          const v = this.commitOne(meta, data);
          if ('code' in v) return answer(v);
          const res = v;
          if (hang === 'after-commit') {
            this.hung.push(call);
            this.emit('hung', meta);
            return;
          }
          answer(null, res);
        });
      },
    });
    const server = this.server;
    this.port = await new Promise<number>((res, rej) => server.bindAsync(`127.0.0.1:${this.port}`, creds, (e, p) => (e ? rej(e) : res(p))));
  }

  /** The ingest's verdict on one whole file: size and digest, then dedup by id with a content check. */
  private commitOne(meta: FileMetadata__Output, data: Buffer): UploadResponse | { code: grpc.status; details: string } {
    if (data.length !== meta.size) return { code: grpc.status.INVALID_ARGUMENT, details: `size mismatch: got ${data.length}, metadata says ${meta.size}` };
    if (!crypto.createHash('sha256').update(data).digest().equals(meta.sha256)) return { code: grpc.status.INVALID_ARGUMENT, details: 'sha256 mismatch' };
    const prev = this.stored.get(meta.file_id);
    if (prev && !prev.data.equals(data)) {
      // As the ingest answers: the same id already committed with other content.
      const digest = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
      return { code: grpc.status.ALREADY_EXISTS, details: `file ${meta.file_id} already committed with sha256 ${digest(prev.data)}, this upload has sha256 ${digest(data)}` };
    }
    let res: UploadResponse;
    if (prev) {
      prev.alreadyHave++;
      res = { file_id: meta.file_id, status: 'UPLOAD_STATUS_ALREADY_HAVE', stored_bytes: prev.data.length };
    } else {
      this.stored.set(meta.file_id, { meta, data, stores: 1, alreadyHave: 0 });
      res = { file_id: meta.file_id, status: 'UPLOAD_STATUS_COMMITTED', stored_bytes: data.length };
    }
    this.emit('committed', meta);
    return res;
  }

  /** Gone: every connection reset, the port refuses (start() again to come back on the same port). */
  async close(): Promise<void> {
    this.server?.forceShutdown();
    this.server = undefined;
  }
}

/** A TCP forwarder that can cut connections after N client→server bytes (a real mid-stream drop). */
export class DropProxy {
  port = 0;
  /** Cut the connection once this many client→server bytes went through; `times` cuts, then transparent. */
  drop: { afterBytes: number; times: number } | undefined;
  drops = 0;
  private server: net.Server;
  private socks = new Set<net.Socket>();

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      const up = net.connect(this.targetPort, '127.0.0.1');
      this.socks.add(client).add(up);
      let n = 0;
      const kill = (): void => {
        client.destroy();
        up.destroy();
      };
      client.on('data', (d) => {
        n += d.length;
        const dr = this.drop;
        if (dr && dr.times > 0 && n >= dr.afterBytes) {
          dr.times--;
          this.drops++;
          kill();
          return;
        }
        up.write(d);
      });
      up.on('data', (d) => client.write(d));
      client.on('close', kill).on('error', kill);
      up.on('close', kill).on('error', kill);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-sync-${prefix}-`));
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('which', ['openssl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Self-signed cert for 127.0.0.1/localhost, via the openssl CLI. */
export function makeTls(dir: string): { cert: Buffer; key: Buffer; certFile: string } {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), certFile };
}

/** A finished capture file with `n` readings; returns its path and header id. */
export function makeCapture(captureDir: string, name: string, n: number, opts: { type?: 'tabular' | 'binary'; ext?: string; payloadBytes?: number } = {}): { path: string; id: string; bytes: Buffer } {
  const key = { kind: 'sensor', name, method: 'Readings' };
  const startUs = Date.now() * 1000;
  const { bytes: head, header } = encodeFileStart({ ...key, type: opts.type ?? 'tabular', tags: ['t1'], start_us: startUs });
  const enc = new FrameEncoder();
  const parts: Uint8Array[] = [head];
  const pad = 'x'.repeat(opts.payloadBytes ?? 16);
  for (let i = 0; i < n; i++) parts.push(encodeFrame(FrameType.READING, enc.readingPayload(i, startUs + i, startUs + i, { v: i, pad }).slice()));
  const bytes = Buffer.concat(parts);
  const dir = path.join(captureDir, key.kind, key.name, key.method);
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, `${timeStamp(startUs)}-${header.id}${opts.ext ?? '.capture'}`);
  fs.writeFileSync(p, bytes);
  return { path: p, id: header.id, bytes };
}

/** An arbitrary file, aged `ageMs` (mtime in the past). */
export function makeFile(root: string, rel: string, content: string | Buffer, ageMs = 60_000): string {
  const p = path.join(root, ...rel.split('/'));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  const t = (Date.now() - ageMs) / 1000;
  fs.utimesSync(p, t, t);
  return p;
}

export function byName(server: TestServer): Map<string, Stored> {
  const m = new Map<string, Stored>();
  for (const s of server.stored.values()) m.set(s.meta.file_name, s);
  return m;
}

export function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}
