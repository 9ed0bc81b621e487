/**
 * viamServiceHandlers on a real grpc-js server (port 0, insecure) with a test staging store:
 * uploads that are cancelled, pass their deadline or break off commit nothing and leave no
 * staging behind; complete uploads commit the same bytes as the in-memory path
 * (readingsToCaptureBytes) and are staged chunk by chunk while the stream is still open.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  dedupFileId,
  fileItemDigest,
  readingsToCaptureBytes,
  sensorDataToReading,
  sensorItemDigest,
  viamDataSyncService,
  viamDedupKey,
  viamServiceHandlers,
  UPLOAD_STATUS_TRAILER,
  type SensorData__Output,
  type UploadMetadataLike,
  type ViamCommitRequest,
  type ViamServiceOptions,
  type ViamStaged,
} from '@edgecap/viam';

const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto');
const CHUNK = 64 * 1024;
const T0 = 1_700_000_100_000_000;
const ts = (us: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(us / 1e6), nanos: (us % 1e6) * 1000 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ── a test staging store ─────────────────────────────────────────────────────

class TestStaged implements ViamStaged {
  private parts: Buffer[] = [];
  bytes = 0;
  maxWrite = 0;
  writes = 0;
  discarded = false;
  owner: 'service' | 'commit' = 'service';
  constructor(
    readonly n: number,
    private readonly readDelayMs: number,
  ) {}
  async write(chunk: Uint8Array): Promise<void> {
    if (this.discarded) throw new Error('write after discard');
    this.parts.push(Buffer.from(chunk)); // a copy: the caller may reuse its chunk
    this.bytes += chunk.length;
    this.writes++;
    this.maxWrite = Math.max(this.maxWrite, chunk.length);
  }
  async *chunks(): AsyncIterable<Uint8Array> {
    const all = Buffer.concat(this.parts);
    for (let o = 0; o < all.length; o += CHUNK) {
      if (this.readDelayMs) await sleep(this.readDelayMs);
      yield Buffer.from(all.subarray(o, o + CHUNK));
    }
  }
  async discard(): Promise<void> {
    this.discarded = true;
    this.parts = [];
  }
  contents(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface Committed {
  req: Omit<ViamCommitRequest, 'staged'>;
  bytes: Buffer;
  who: unknown;
}

class TestStore {
  staged: TestStaged[] = [];
  commits: Committed[] = [];
  readDelayMs = 0;
  private seen = new Set<string>();
  stage = async (): Promise<ViamStaged> => {
    const s = new TestStaged(this.staged.length, this.readDelayMs);
    this.staged.push(s);
    return s;
  };
  commit = async (req: ViamCommitRequest, who: unknown): Promise<'committed' | 'already_have'> => {
    const s = req.staged as TestStaged;
    s.owner = 'commit';
    const { staged: _staged, ...rest } = req;
    this.commits.push({ req: rest, bytes: s.contents(), who });
    await s.discard(); // "stored": a test store keeps the copy above
    if (this.seen.has(req.file_id)) return 'already_have';
    this.seen.add(req.file_id);
    return 'committed';
  };
  /** Every staging area the service kept for itself has been discarded. */
  allServiceStagingDiscarded(): boolean {
    return this.staged.every((s) => s.owner === 'commit' || s.discarded);
  }
  reset(): void {
    this.staged = [];
    this.commits = [];
    this.readDelayMs = 0;
    this.seen.clear();
  }
}

// ── server and a proto-only client ───────────────────────────────────────────

type Res = { file_id: string; binary_data_id: string };
type Cb = (err: grpc.ServiceError | null, res?: Res) => void;
interface Client extends grpc.Client {
  DataCaptureUpload(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Cb): grpc.ClientUnaryCall;
  FileUpload(md: grpc.Metadata, opts: grpc.CallOptions, cb: Cb): grpc.ClientWritableStream<object>;
  StreamingDataCaptureUpload(md: grpc.Metadata, opts: grpc.CallOptions, cb: Cb): grpc.ClientWritableStream<object>;
}

const KEY = 'k-1';
const WHO = { key: KEY, parts: ['part-a'] };
class Denied extends Error {}

const store = new TestStore();
let stageCalls = 0;
let server: grpc.Server;
let client: Client;
let port = 0;

function bearer(key = KEY): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}

beforeAll(async () => {
  const opts: ViamServiceOptions<typeof WHO> = {
    authorize: (md) => (md.get('authorization')[0] === `Bearer ${KEY}` ? WHO : undefined),
    admit: (who, partId) => {
      if (!who.parts.includes(partId)) throw new Denied(`API key may not upload for part ${partId}`);
    },
    stage: () => {
      stageCalls++;
      return store.stage();
    },
    commit: (req, who) => store.commit(req, who),
    maxBytes: 4 * 1024 * 1024,
    toStatus: (e) => (e instanceof Denied ? { code: grpc.status.PERMISSION_DENIED, details: e.message } : { code: grpc.status.INTERNAL, details: String(e) }),
  };
  server = new grpc.Server();
  server.addService(viamDataSyncService(), viamServiceHandlers(opts));
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const def = protoLoader.loadSync(path.join(PROTO_DIR, 'viam/app/datasync/v1/data_sync.proto'), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { viam: { app: { datasync: { v1: { DataSyncService: new (a: string, c: grpc.ChannelCredentials) => Client } } } } };
  client = new pkg.viam.app.datasync.v1.DataSyncService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((r) => server.tryShutdown(() => r()));
});

afterEach(() => {
  store.reset();
  stageCalls = 0;
});

// ── upload fixtures ──────────────────────────────────────────────────────────

const baseMd = {
  part_id: 'part-a',
  component_type: 'rdk:component:camera',
  component_name: 'cam',
  method_name: 'GetImages',
  tags: ['site:a'],
  file_modify_time: ts(T0 + 5_000_000),
};

function binaryMd(headerMime = '') {
  return {
    upload_metadata: { ...baseMd, type: 'DATA_TYPE_BINARY_SENSOR', file_extension: '.jpeg', mime_type: headerMime },
    sensor_metadata: { time_requested: ts(T0), time_received: ts(T0 + 1234), mime_type: 'MIME_TYPE_IMAGE_JPEG' },
  };
}

const fileMd = { ...baseMd, component_type: '', component_name: '', method_name: '', type: 'DATA_TYPE_FILE', file_name: '/home/robot/logs/run.log', file_extension: '.log' };

type Method = 'FileUpload' | 'StreamingDataCaptureUpload';
const firstMessage = (m: Method, headerMime = ''): object => (m === 'FileUpload' ? { metadata: fileMd } : { metadata: binaryMd(headerMime) });
const dataMessage = (m: Method, d: Uint8Array): object => (m === 'FileUpload' ? { file_contents: { data: d } } : { data: d });

interface Outcome {
  err: grpc.ServiceError | null;
  res?: Res;
  trailer?: string;
}

/** Open a client stream; `done` settles with the answer (error or response + trailer). */
function open(m: Method, opts: grpc.CallOptions = {}): { call: grpc.ClientWritableStream<object>; done: Promise<Outcome> } {
  let trailer: string | undefined;
  let resolve!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => (resolve = r));
  let result: Omit<Outcome, 'trailer'> | undefined;
  let status = false;
  const settle = (): void => {
    if (result && status) resolve({ ...result, ...(trailer !== undefined ? { trailer } : {}) });
  };
  const call = client[m](bearer(), opts, (err, res) => {
    result = res ? { err, res } : { err };
    settle();
  });
  call.on('status', (s: grpc.StatusObject) => {
    const v = s.metadata?.get(UPLOAD_STATUS_TRAILER)[0];
    if (v !== undefined) trailer = String(v);
    status = true;
    settle();
  });
  return { call, done };
}

async function upload(m: Method, body: Uint8Array, headerMime = ''): Promise<Outcome> {
  const { call, done } = open(m);
  call.write(firstMessage(m, headerMime));
  for (let o = 0; o < body.length; o += CHUNK) call.write(dataMessage(m, body.subarray(o, o + CHUNK)));
  call.end();
  return done;
}

/** What the in-memory path (DataCaptureUpload / readingsToCaptureBytes) stores for this binary. */
function expectedBinary(body: Uint8Array, headerMime = ''): { id: string; bytes: Uint8Array } {
  const m = binaryMd(headerMime);
  const md = { ...m.upload_metadata, type: 'DATA_TYPE_BINARY_SENSOR', method_parameters: {}, dataset_ids: [], file_name: '', file_create_time: null } as unknown as UploadMetadataLike;
  const sd = { metadata: { ...m.sensor_metadata, annotations: null }, binary: Buffer.from(body), data: 'binary' } as unknown as SensorData__Output;
  const id = dedupFileId(viamDedupKey(md, [sensorItemDigest(sd)]));
  return { id, bytes: readingsToCaptureBytes(id, md, 'binary', [sensorDataToReading(sd)]) };
}

const unary = (req: object, md = bearer()): Promise<Outcome> =>
  new Promise((resolve) => {
    let trailer: string | undefined;
    const call = client.DataCaptureUpload(req, md, {}, (err, res) => setImmediate(() => resolve({ err, ...(res ? { res } : {}), ...(trailer !== undefined ? { trailer } : {}) })));
    call.on('status', (s: grpc.StatusObject) => {
      const v = s.metadata?.get(UPLOAD_STATUS_TRAILER)[0];
      if (v !== undefined) trailer = String(v);
    });
  });

// ── tests ────────────────────────────────────────────────────────────────────

describe('complete uploads', () => {
  it('StreamingDataCaptureUpload commits exactly the bytes readingsToCaptureBytes makes, for every bin length form', async () => {
    const sizes = [0, 1, 255, 256, 65_535, 65_536, 200_003];
    for (const headerMime of ['', 'image/jpeg', 'image/png']) {
      for (const n of sizes) {
        store.reset();
        const body = crypto.randomBytes(n);
        const out = await upload('StreamingDataCaptureUpload', body, headerMime);
        expect(out.err, `n=${n} mime=${headerMime}`).toBeNull();
        const exp = expectedBinary(body, headerMime);
        expect(out.res).toEqual({ file_id: exp.id, binary_data_id: exp.id });
        expect(out.trailer).toBe('committed');
        expect(store.commits).toHaveLength(1);
        const c = store.commits[0]!;
        expect(c.req.file_id).toBe(exp.id);
        expect(c.req.size).toBe(exp.bytes.length);
        expect(c.req.data_type).toBe('binary');
        expect(Buffer.compare(c.bytes, Buffer.from(exp.bytes)), `n=${n} mime=${headerMime}`).toBe(0);
        // raw staging + capture staging; the raw one discarded
        expect(store.staged).toHaveLength(2);
        expect(store.allServiceStagingDiscarded()).toBe(true);
      }
    }
  });

  it('the streamed binary and the same binary sent unary are stored identically (same id, same bytes)', async () => {
    const body = crypto.randomBytes(100_000);
    const streamed = await upload('StreamingDataCaptureUpload', body);
    const m = binaryMd();
    const viaUnary = await unary({ metadata: m.upload_metadata, sensor_contents: [{ metadata: m.sensor_metadata, binary: body }] });
    expect(streamed.err).toBeNull();
    expect(viaUnary.err).toBeNull();
    expect(viaUnary.res?.file_id).toBe(streamed.res?.file_id);
    expect(viaUnary.trailer).toBe('already_have');
    expect(store.commits).toHaveLength(2);
    expect(Buffer.compare(store.commits[0]!.bytes, store.commits[1]!.bytes)).toBe(0);
    expect(store.commits[0]!.who).toBe(WHO);
  });

  it('FileUpload commits the file as sent under its dedup id', async () => {
    const body = crypto.randomBytes(300_001);
    const out = await upload('FileUpload', body);
    expect(out.err).toBeNull();
    const id = dedupFileId(viamDedupKey({ ...fileMd, method_parameters: {}, dataset_ids: [], mime_type: '', file_create_time: null } as unknown as UploadMetadataLike, [fileItemDigest([body])]));
    expect(out.res).toEqual({ file_id: id, binary_data_id: id });
    expect(out.trailer).toBe('committed');
    expect(store.commits).toHaveLength(1);
    const c = store.commits[0]!;
    expect(c.req).toMatchObject({ file_id: id, part_id: 'part-a', data_type: 'file', size: body.length, source: 'viam', file_name: 'home/robot/logs/run.log', tags: ['site:a'], mtime_ms: Math.floor((T0 + 5_000_000) / 1000) });
    expect(Buffer.compare(c.bytes, body)).toBe(0);
    expect(store.staged).toHaveLength(1);
  });

  it('DataCaptureUpload (tabular, unary) stages its capture bytes and commits them', async () => {
    const md = { ...baseMd, component_type: 'rdk:component:sensor', component_name: 'thermo', method_name: 'Readings', type: 'DATA_TYPE_TABULAR_SENSOR' };
    const items = [0, 1].map((i) => ({ metadata: { time_requested: ts(T0 + i * 1000), time_received: ts(T0 + i * 1000 + 5) }, struct: { fields: { temp: { numberValue: 20 + i } } } }));
    const out = await unary({ metadata: md, sensor_contents: items });
    expect(out.err).toBeNull();
    expect(out.trailer).toBe('committed');
    expect(store.staged).toHaveLength(1);
    expect(store.commits).toHaveLength(1);
    const c = store.commits[0]!;
    expect(c.req.data_type).toBe('tabular');
    expect(c.req.size).toBe(c.bytes.length);
    expect(c.bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x45, 0x43, 0x41, 0x50, 0x0d, 0x0a, 0x01]));
  });
});

describe('staging is incremental (memory bounded by a chunk, not the file)', () => {
  for (const m of ['FileUpload', 'StreamingDataCaptureUpload'] as const) {
    it(`${m}: chunks reach staging while the stream is still open, one chunk per write`, async () => {
      const body = crypto.randomBytes(40 * CHUNK);
      const { call, done } = open(m);
      call.write(firstMessage(m));
      for (let i = 0; i < 20; i++) call.write(dataMessage(m, body.subarray(i * CHUNK, (i + 1) * CHUNK)));
      // the stream is open (no half-close): the first half must already be staged
      await until('the first half to be staged', () => (store.staged[0]?.bytes ?? 0) >= 20 * CHUNK);
      expect(store.commits).toHaveLength(0);
      for (let i = 20; i < 40; i++) call.write(dataMessage(m, body.subarray(i * CHUNK, (i + 1) * CHUNK)));
      call.end();
      const out = await done;
      expect(out.err).toBeNull();
      expect(store.commits).toHaveLength(1);
      const raw = store.staged[0]!;
      expect(raw.writes).toBe(40);
      for (const s of store.staged) expect(s.maxWrite).toBeLessThanOrEqual(CHUNK + 1024);
    });
  }
});

describe('incomplete uploads commit nothing and leave no staging', () => {
  for (const m of ['FileUpload', 'StreamingDataCaptureUpload'] as const) {
    it(`${m}: the client cancels mid-stream`, async () => {
      const body = crypto.randomBytes(10 * CHUNK);
      const { call, done } = open(m);
      call.write(firstMessage(m));
      for (let i = 0; i < 5; i++) call.write(dataMessage(m, body.subarray(i * CHUNK, (i + 1) * CHUNK)));
      await until('staged bytes', () => (store.staged[0]?.bytes ?? 0) >= 5 * CHUNK);
      call.cancel();
      const out = await done;
      expect(out.err?.code).toBe(grpc.status.CANCELLED);
      await until('staging discarded', () => store.staged.length > 0 && store.allServiceStagingDiscarded());
      await sleep(200); // nothing arrives late either
      expect(store.commits).toHaveLength(0);
      expect(store.allServiceStagingDiscarded()).toBe(true);
    });

    it(`${m}: the deadline passes mid-stream`, async () => {
      const body = crypto.randomBytes(10 * CHUNK);
      const { call, done } = open(m, { deadline: Date.now() + 400 });
      call.write(firstMessage(m));
      for (let i = 0; i < 5; i++) call.write(dataMessage(m, body.subarray(i * CHUNK, (i + 1) * CHUNK)));
      await until('staged bytes', () => (store.staged[0]?.bytes ?? 0) >= 5 * CHUNK);
      const out = await done; // never half-closed: the deadline ends it
      expect(out.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      await until('staging discarded', () => store.allServiceStagingDiscarded());
      await sleep(200);
      expect(store.commits).toHaveLength(0);
      expect(store.allServiceStagingDiscarded()).toBe(true);
    });
  }

  it('StreamingDataCaptureUpload: the deadline passes after the half-close, while the capture file is built', async () => {
    store.readDelayMs = 40; // reading the staged binary back takes ~ 40 ms a chunk
    const body = crypto.randomBytes(20 * CHUNK);
    const { call, done } = open('StreamingDataCaptureUpload', { deadline: Date.now() + 500 });
    call.write(firstMessage('StreamingDataCaptureUpload'));
    for (let i = 0; i < 20; i++) call.write(dataMessage('StreamingDataCaptureUpload', body.subarray(i * CHUNK, (i + 1) * CHUNK)));
    call.end();
    const out = await done;
    expect(out.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await until('staging discarded', () => store.staged.length > 0 && store.allServiceStagingDiscarded(), 10_000);
    await sleep(300);
    expect(store.commits).toHaveLength(0);
    expect(store.allServiceStagingDiscarded()).toBe(true);
  });

  for (const m of ['FileUpload', 'StreamingDataCaptureUpload'] as const) {
    it(`${m}: an invalid message mid-stream (metadata twice) → INVALID_ARGUMENT naming it`, async () => {
      const { call, done } = open(m);
      call.write(firstMessage(m));
      call.write(dataMessage(m, crypto.randomBytes(CHUNK)));
      call.write(firstMessage(m));
      call.end();
      const out = await done;
      expect(out.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(out.err?.details).toMatch(/metadata sent twice/);
      await until('staging discarded', () => store.allServiceStagingDiscarded());
      expect(store.staged.length).toBeGreaterThan(0);
      expect(store.commits).toHaveLength(0);
    });

    it(`${m}: past maxBytes mid-stream → INVALID_ARGUMENT, staging discarded`, async () => {
      const { call, done } = open(m);
      call.write(firstMessage(m));
      const c = crypto.randomBytes(CHUNK);
      for (let i = 0; i < 4 * 16 + 1; i++) call.write(dataMessage(m, c));
      call.end();
      const out = await done;
      expect(out.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(out.err?.details).toMatch(/exceeds the server limit of 4194304 bytes/);
      await until('staging discarded', () => store.allServiceStagingDiscarded());
      expect(store.commits).toHaveLength(0);
    });
  }
});

describe('an edge killed mid-upload commits nothing', () => {
  for (const [m, signal] of [
    ['FileUpload', 'SIGTERM'],
    ['StreamingDataCaptureUpload', 'SIGTERM'],
    ['FileUpload', 'SIGKILL'],
    ['StreamingDataCaptureUpload', 'SIGKILL'],
  ] as const) {
    it(`${m}: ${signal} after 8 chunks (${signal === 'SIGTERM' ? 'the edge cancels its calls and exits' : 'the connection drops'})`, async () => {
      const child = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/upload-then-hang.mjs'), String(port), m, '8', PROTO_DIR], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      try {
        await until('the child to send', () => (child.stdout.read() as Buffer | null)?.toString().includes('sent') === true, 10_000);
        await until('8 chunks staged', () => (store.staged[0]?.bytes ?? 0) >= 8 * CHUNK, 10_000);
      } finally {
        child.kill(signal);
        await exited;
      }
      await until('staging discarded', () => store.allServiceStagingDiscarded());
      await sleep(200);
      expect(store.commits).toHaveLength(0);
      expect(store.allServiceStagingDiscarded()).toBe(true);
    });
  }
});

describe('admission before staging', () => {
  const foreign = { ...baseMd, part_id: 'part-b' };
  it('FileUpload for a part the key may not upload for → PERMISSION_DENIED, stage never called', async () => {
    const { call, done } = open('FileUpload');
    call.write({ metadata: { ...fileMd, part_id: 'part-b' } });
    call.write({ file_contents: { data: crypto.randomBytes(1000) } });
    call.end();
    const out = await done;
    expect(out.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(out.err?.details).toMatch(/part-b/);
    expect(stageCalls).toBe(0);
    expect(store.commits).toHaveLength(0);
  });

  it('StreamingDataCaptureUpload for a foreign part → PERMISSION_DENIED, stage never called', async () => {
    const m = binaryMd();
    const { call, done } = open('StreamingDataCaptureUpload');
    call.write({ metadata: { ...m, upload_metadata: { ...m.upload_metadata, part_id: 'part-b' } } });
    call.write({ data: crypto.randomBytes(1000) });
    call.end();
    const out = await done;
    expect(out.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(stageCalls).toBe(0);
    expect(store.commits).toHaveLength(0);
  });

  it('DataCaptureUpload for a foreign part → PERMISSION_DENIED, stage never called', async () => {
    const out = await unary({ metadata: { ...foreign, type: 'DATA_TYPE_TABULAR_SENSOR' }, sensor_contents: [{ metadata: { time_requested: ts(T0) }, struct: { fields: { a: { numberValue: 1 } } } }] });
    expect(out.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(stageCalls).toBe(0);
    expect(store.commits).toHaveLength(0);
  });

  it('a wrong key → UNAUTHENTICATED, stage never called', async () => {
    const out = await unary({ metadata: { ...baseMd, type: 'DATA_TYPE_TABULAR_SENSOR' }, sensor_contents: [{ struct: { fields: {} } }] }, bearer('nope'));
    expect(out.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(stageCalls).toBe(0);
  });
});
