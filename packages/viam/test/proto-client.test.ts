/**
 * A client built only from data_sync.proto (proto-loader + grpc-js) uploads tabular, small
 * binary (unary), large binary (> 1 MB, streamed in 64 KiB chunks) and a file (64 KiB chunks)
 * to our ingest over TLS, then re-sends each once more (as viam-server does after a lost
 * ack): the export shows every reading and the file exactly once.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listReceived, type IngestServer } from '@edgecap/ingest';
import { allReadings, bearer, protoOnlyClient, startTlsIngest, tmpDir, ts, type ProtoOnlyClient } from './helpers.js';

type Res = { file_id: string; binary_data_id: string };
const CHUNK = 64 * 1024;

function unary(c: ProtoOnlyClient, req: object, md = bearer()): Promise<Res> {
  return new Promise((resolve, reject) => c.DataCaptureUpload(req, md, (e, r) => (e ? reject(e) : resolve(r!))));
}

function stream(c: ProtoOnlyClient, method: 'FileUpload' | 'StreamingDataCaptureUpload', msgs: object[]): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = c[method](bearer(), (e, r) => (e ? reject(e) : resolve(r!)));
    for (const m of msgs) call.write(m);
    call.end();
  });
}

const sha = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

describe('viam.app.datasync.v1 on the ingest server (proto-only client, TLS)', () => {
  let dir: string;
  let server: IngestServer;
  let dataDir: string;
  let client: ProtoOnlyClient;

  beforeAll(async () => {
    dir = tmpDir('proto');
    const s = await startTlsIngest(dir);
    server = s.server;
    dataDir = s.dataDir;
    client = protoOnlyClient(`127.0.0.1:${server.port}`, s.cert.caFile);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores each upload once, however often it is re-sent', async () => {
    const t0 = 1_700_000_000_000_000;
    const base = { part_id: 'robot-part-1', component_type: 'rdk:component:sensor', component_name: 'thermo', method_name: 'Readings', tags: ['site:a'] };
    const tabular = {
      metadata: { ...base, type: 'DATA_TYPE_TABULAR_SENSOR', file_extension: '.dat' },
      sensor_contents: [0, 1, 2].map((i) => ({
        metadata: { time_requested: ts(t0 + i * 1000), time_received: ts(t0 + i * 1000 + 250) },
        struct: { fields: { temp: { numberValue: 20 + i / 2 }, unit: { stringValue: 'C' }, ok: { boolValue: true }, list: { listValue: { values: [{ numberValue: i }, { nullValue: 'NULL_VALUE' }] } } } },
      })),
    };
    const small = crypto.randomBytes(10_000);
    const cam = { part_id: 'robot-part-1', component_type: 'rdk:component:camera', component_name: 'cam', method_name: 'ReadImage', tags: [], mime_type: 'image/jpeg' };
    const smallReq = { metadata: { ...cam, type: 'DATA_TYPE_BINARY_SENSOR', file_extension: '.jpeg' }, sensor_contents: [{ metadata: { time_requested: ts(t0), time_received: ts(t0 + 5), mime_type: 'MIME_TYPE_IMAGE_JPEG' }, binary: small }] };
    const large = crypto.randomBytes(1_500_000);
    const largeMsgs = [
      { metadata: { upload_metadata: { ...cam, component_name: 'cam-hd', type: 'DATA_TYPE_BINARY_SENSOR', file_extension: '.pcd', mime_type: 'pointcloud/pcd' }, sensor_metadata: { time_requested: ts(t0 + 9), time_received: ts(t0 + 10) } } },
      ...Array.from({ length: Math.ceil(large.length / CHUNK) }, (_, i) => ({ data: large.subarray(i * CHUNK, (i + 1) * CHUNK) })),
    ];
    const file = crypto.randomBytes(200_000);
    const fileMsgs = [
      { metadata: { part_id: 'robot-part-1', type: 'DATA_TYPE_FILE', file_name: '/home/robot/logs/app', file_extension: '.log', tags: ['logs'] } },
      ...Array.from({ length: Math.ceil(file.length / CHUNK) }, (_, i) => ({ file_contents: { data: file.subarray(i * CHUNK, (i + 1) * CHUNK) } })),
    ];

    const first = [await unary(client, tabular), await unary(client, smallReq), await stream(client, 'StreamingDataCaptureUpload', largeMsgs), await stream(client, 'FileUpload', fileMsgs)];
    // Lost acks: viam-server sends the very same uploads again.
    const again = [await unary(client, tabular), await unary(client, smallReq), await stream(client, 'StreamingDataCaptureUpload', largeMsgs), await stream(client, 'FileUpload', fileMsgs)];
    expect(again.map((r) => r.file_id)).toEqual(first.map((r) => r.file_id));
    expect(new Set(first.map((r) => r.file_id)).size).toBe(4);
    for (const r of first) expect(r.file_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(first[0]!.binary_data_id).toBe('');
    expect(first[1]!.binary_data_id).toBe(first[1]!.file_id);

    // A changed payload is a different upload.
    const changed = structuredClone(tabular);
    changed.sensor_contents[0]!.struct.fields.temp = { numberValue: 99 };
    const third = await unary(client, changed);
    expect(third.file_id).not.toBe(first[0]!.file_id);

    // Same API key check as edgecap.sync.v1.
    await expect(unary(client, tabular, bearer('wrong'))).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    await expect(unary(client, { metadata: base, sensor_contents: [] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });

    const readings = await allReadings(dataDir);
    const thermo = readings.filter((r) => r.resource === 'thermo' && r.file_id === first[0]!.file_id);
    expect(thermo.map((r) => [r.seq, r.time_requested_us, r.time_received_us])).toEqual([
      [0, t0, t0 + 250],
      [1, t0 + 1000, t0 + 1250],
      [2, t0 + 2000, t0 + 2250],
    ]);
    expect(thermo[1]!.data).toEqual({ temp: 20.5, unit: 'C', ok: true, list: [1, null] });
    expect(thermo[0]!).toMatchObject({ part_id: 'robot-part-1', resource_kind: 'rdk:component:sensor', method: 'Readings' });
    const cams = readings.filter((r) => r.resource_kind === 'rdk:component:camera');
    expect(cams).toHaveLength(2);
    expect(cams.find((r) => r.resource === 'cam')!.data).toEqual({ binary: { size: small.length, sha256: sha(small), mime_type: 'image/jpeg' } });
    expect(cams.find((r) => r.resource === 'cam-hd')!.data).toEqual({ binary: { size: large.length, sha256: sha(large), mime_type: 'pointcloud/pcd' } });
    expect(readings).toHaveLength(3 + 2 + 3); // + the changed tabular upload

    const received = await listReceived(dataDir);
    const files = received.filter((e) => e.type === 'file');
    expect(files).toHaveLength(1);
    const f = files[0]!;
    expect(f.type === 'file' && f.file_name).toBe('home/robot/logs/app.log');
    expect(f.type === 'file' && f.sha256).toBe(sha(file));
    expect(fs.readFileSync(path.join(dataDir, f.type === 'file' ? f.path : '')).equals(file)).toBe(true);
    expect(received.filter((e) => e.type === 'capture')).toHaveLength(4);
  });
});
