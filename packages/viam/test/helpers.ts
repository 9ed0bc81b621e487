/**
 * Test helpers for the viam protocol: a TLS ingest server on port 0 and a client built ONLY
 * from the .proto file (proto-loader + grpc-js), never from @edgecap/viam's client code.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll } from 'vitest';
import protobuf from 'protobufjs';
import * as protoLoader from '@grpc/proto-loader';
import { exportReadings, makeDevCert, startIngestServer, type DevCert, type ExportedReading, type IngestServer } from '@edgecap/ingest';

export const API_KEY = 'viam-test-key';
export const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto');
export const VIAM_PROTO_FILE = path.join(PROTO_DIR, 'viam/app/datasync/v1/data_sync.proto');

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-viam-${prefix}-`));
}

export async function startTlsIngest(dir: string, extra: { accessTokenTtlMs?: number } = {}): Promise<{ server: IngestServer; dataDir: string; cert: DevCert }> {
  const cert = makeDevCert(path.join(dir, 'tls'));
  const dataDir = path.join(dir, 'ingest');
  const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile: cert.certFile, keyFile: cert.keyFile }, apiKeys: [API_KEY], ...extra });
  return { server, dataDir, cert };
}

type Cb = (err: grpc.ServiceError | null, res?: { file_id: string; binary_data_id: string }) => void;
export interface TlsIngestFixture {
  dir: string;
  server: IngestServer;
  dataDir: string;
  caFile: string;
}

/** A TLS ingest for one describe block: started before its tests, closed and removed after. */
export function tlsIngestFixture(tag: string, extra: { accessTokenTtlMs?: number } = {}): TlsIngestFixture {
  const f = {} as TlsIngestFixture;
  beforeAll(async () => {
    f.dir = tmpDir(tag);
    const s = await startTlsIngest(f.dir, extra);
    Object.assign(f, { server: s.server, dataDir: s.dataDir, caFile: s.cert.caFile });
  });
  afterAll(async () => {
    await f.server?.close();
    if (f.dir) fs.rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}

export interface ProtoOnlyClient extends grpc.Client {
  DataCaptureUpload(req: object, md: grpc.Metadata, cb: Cb): grpc.ClientUnaryCall;
  FileUpload(md: grpc.Metadata, cb: Cb): grpc.ClientWritableStream<object>;
  StreamingDataCaptureUpload(md: grpc.Metadata, cb: Cb): grpc.ClientWritableStream<object>;
}

/** A DataSyncService client from the .proto alone. */
export function protoOnlyClient(address: string, caFile: string): ProtoOnlyClient {
  const def = protoLoader.loadSync(VIAM_PROTO_FILE, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { viam: { app: { datasync: { v1: { DataSyncService: new (a: string, c: grpc.ChannelCredentials) => ProtoOnlyClient } } } } };
  return new pkg.viam.app.datasync.v1.DataSyncService(address, grpc.credentials.createSsl(fs.readFileSync(caFile)));
}

export function bearer(key = API_KEY): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}

export async function allReadings(dataDir: string): Promise<ExportedReading[]> {
  const out: ExportedReading[] = [];
  for await (const r of exportReadings(dataDir)) out.push(r);
  return out;
}

export const ts = (us: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(us / 1e6), nanos: (us % 1e6) * 1000 });

export const T0 = 1_700_000_100_000_000;

/** A viam-server style .capture file made with protobufjs only. */
export function viamCaptureBytes(n: number): Buffer {
  const root = new protobuf.Root();
  root.resolvePath = (_o, t) => (t.startsWith('google/protobuf/') ? t : path.join(PROTO_DIR, t));
  root.loadSync('viam/app/datasync/v1/data_sync.proto', { keepCase: true });
  const Meta = root.lookupType('viam.app.datasync.v1.DataCaptureMetadata');
  const SD = root.lookupType('viam.app.datasync.v1.SensorData');
  const parts: Uint8Array[] = [
    Meta.encodeDelimited(
      Meta.fromObject({ component_type: 'rdk:component:movement_sensor', component_name: 'imu', method_name: 'LinearAcceleration', type: 'DATA_TYPE_TABULAR_SENSOR', file_extension: '.dat', tags: ['viam-tag'] }),
    ).finish(),
  ];
  for (let i = 0; i < n; i++) {
    parts.push(
      SD.encodeDelimited(
        SD.fromObject({
          metadata: { time_requested: ts(T0 + i * 10_000), time_received: ts(T0 + i * 10_000 + 100) },
          struct: { fields: { linear_acceleration: { structValue: { fields: { x: { numberValue: i }, y: { numberValue: -i / 4 }, z: { numberValue: 9.81 } } } } } },
        }),
      ).finish(),
    );
  }
  return Buffer.concat(parts);
}

