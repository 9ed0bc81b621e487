/**
 * viam image annotations (bounding boxes and classifications, with their ids) end to end:
 *  - a proto-only client uploads them (unary and streamed) over TLS: `edgecap export` prints
 *    them byte for byte, and the streamed item gets the unary item's id;
 *  - a viam-server `.capture` file written here field by field with viam's field numbers
 *    (protobufjs Writer, not our .proto) is read by the edge with them, uploaded both ways
 *    (converted over edgecap's protocol; as is over viam's, a call per image) keeping them, and
 *    shown by `edgecap inspect --json` (as is, and converted to edgecap's format);
 *  - MIME_TYPE_VIDEO_MP4 is accepted and stored as video/mp4;
 *  - the dedup digest of an item without annotations (or without classification ids) is the
 *    documented v1 formula, recomputed here independently;
 *  - more annotations on one item than limits.maxAnnotationsPerItem is INVALID_ARGUMENT, and
 *    nothing is stored;
 *  - capture files: the READING's 6th element reads back, files without it read as before, and
 *    the streamed-capture pieces match the in-memory encoding.
 */
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameEncoder, FrameType, encodeFileStart, encodeFrame, readCaptureBytes, type ReadingAnnotations } from '@edgecap/format';
import { listReceived, makeDevCert, startIngestServer, type IngestServer } from '@edgecap/ingest';
import { SyncEngine } from '@edgecap/sync';
import { createViamClient, mimeOfEnum, readViamCaptureBytes, readingsToCaptureBytes, sensorItemDigest, uploadViam, type SensorData__Output } from '@edgecap/viam';
import { msgpackBinHead, readingPayloadParts } from '../src/capture-stream.js';
import { extensionOfMime } from '../src/convert.js';
import { API_KEY, T0, bearer, protoOnlyClient, tmpDir, ts, type ProtoOnlyClient } from './helpers.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/bin/edgecap.js');
const run = promisify(execFile);
type Res = { file_id: string; binary_data_id: string };
const sha = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

async function edgecap(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, EDGECAP_LOG_LEVEL: 'warn' } });
  return stdout;
}

function unary(c: ProtoOnlyClient, req: object): Promise<Res> {
  return new Promise((resolve, reject) => c.DataCaptureUpload(req, bearer(), (e, r) => (e ? reject(e) : resolve(r!))));
}

function streamed(c: ProtoOnlyClient, msgs: object[]): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = c.StreamingDataCaptureUpload(bearer(), (e, r) => (e ? reject(e) : resolve(r!)));
    for (const m of msgs) call.write(m);
    call.end();
  });
}

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('the upload was accepted');
}

// What viam-server sends (loader shape) and what export / inspect must print for it, in order.
const BBOXES = [
  { id: 'bbox-7f3a', label: 'cat', x_min_normalized: 0.1, y_min_normalized: 0.25, x_max_normalized: 0.5, y_max_normalized: 0.75, confidence: 0.93 },
  { id: 'bbox-2', label: 'dog', x_min_normalized: 0, y_min_normalized: 0.125, x_max_normalized: 1, y_max_normalized: 0.875 }, // no confidence sent
];
const CLASSIFICATIONS = [
  { label: 'indoor', confidence: 0.8, id: 'cls-1' },
  { label: 'daytime' }, // neither confidence nor id
];
const EXPECTED: ReadingAnnotations = { bboxes: BBOXES, classifications: CLASSIFICATIONS };

// ── viam's wire format written field by field (numbers from viam's app/data/v1 and datasync/v1) ──

type W = protobuf.Writer;
const str = (w: W, field: number, s: string): W => (s ? w.uint32((field << 3) | 2).string(s) : w);
const dbl = (w: W, field: number, d: number | undefined): W => (d === undefined ? w : w.uint32((field << 3) | 1).double(d));
const msg = (w: W, field: number, body: (w: W) => void): W => {
  w.uint32((field << 3) | 2).fork();
  body(w);
  return w.ldelim();
};
const stamp = (w: W, field: number, us: number): W =>
  msg(w, field, (x) => {
    const t = ts(us);
    x.uint32(8).int64(t.seconds);
    if (t.nanos) x.uint32(16).int32(t.nanos);
  });

function viamSensorMetadata(w: W, tReq: number, mimeEnum: number, ann: ReadingAnnotations): void {
  stamp(w, 1, tReq);
  stamp(w, 2, tReq + 500);
  w.uint32(3 << 3).uint32(mimeEnum); // SensorMetadata.mime_type
  msg(w, 4, (a) => {
    for (const b of ann.bboxes) {
      msg(a, 1, (x) => {
        str(x, 1, b.id);
        str(x, 2, b.label);
        dbl(x, 3, b.x_min_normalized);
        dbl(x, 4, b.y_min_normalized);
        dbl(x, 5, b.x_max_normalized);
        dbl(x, 6, b.y_max_normalized);
        dbl(x, 7, b.confidence);
      });
    }
    for (const c of ann.classifications) {
      msg(a, 2, (x) => {
        str(x, 1, c.label);
        dbl(x, 2, c.confidence);
        str(x, 3, c.id ?? '');
      });
    }
  });
}

/** A viam-server `.capture` file of binary camera images, each with `ann`. */
function viamAnnotatedCapture(images: Uint8Array[], ann: ReadingAnnotations): Buffer {
  const delimited = (body: (w: W) => void): Uint8Array => {
    const w = protobuf.Writer.create();
    body(w);
    return protobuf.Writer.create().bytes(w.finish()).finish();
  };
  const parts = [
    delimited((w) => {
      str(w, 1, 'rdk:component:camera');
      str(w, 2, 'cam');
      str(w, 4, 'ReadImage');
      w.uint32(5 << 3).uint32(1); // DATA_TYPE_BINARY_SENSOR
      str(w, 7, '.jpeg');
      str(w, 8, 'viam-tag');
    }),
  ];
  images.forEach((img, i) =>
    parts.push(
      delimited((w) => {
        msg(w, 1, (m) => viamSensorMetadata(m, T0 + i * 100_000, 1 /* MIME_TYPE_IMAGE_JPEG */, ann));
        w.uint32((3 << 3) | 2).bytes(img); // SensorData.binary
      }),
    ),
  );
  return Buffer.concat(parts);
}

// ── the dedup digest, v1, as documented in convert.ts (recomputed without its code) ──

function lp(h: crypto.Hash, b: Uint8Array | string): void {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(buf.length));
  h.update(len).update(buf);
}
function v1BinaryDigest(tReq: number, tRecv: number, mime: string, annotations: string, bin: Uint8Array): string {
  const h = crypto.createHash('sha256');
  lp(h, `{"annotations":${annotations},"mime_type":"${mime}","time_received":${tRecv},"time_requested":${tReq}}`);
  lp(h, 'binary');
  lp(h, bin);
  return h.digest('hex');
}

describe('viam annotations and MIME_TYPE_VIDEO_MP4 through the ingest (proto-only client, TLS)', () => {
  let dir: string;
  let server: IngestServer;
  let dataDir: string;
  let caFile: string;
  let client: ProtoOnlyClient;
  const MAX = 4;

  beforeAll(async () => {
    dir = tmpDir('annot');
    const cert = makeDevCert(path.join(dir, 'tls'));
    caFile = cert.caFile;
    dataDir = path.join(dir, 'ingest');
    server = await startIngestServer({
      listen: '127.0.0.1:0',
      dataDir,
      tls: { certFile: cert.certFile, keyFile: cert.keyFile },
      apiKeys: [API_KEY],
      limits: { maxAnnotationsPerItem: MAX },
    });
    client = protoOnlyClient(`127.0.0.1:${server.port}`, caFile);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const exported = async (): Promise<string[]> => (await edgecap(['export', '--data', dataDir])).split('\n').filter((l) => l !== '');

  it('stores bounding boxes and classifications (with ids) with the image; export prints them byte for byte; streamed = unary', async () => {
    const img = crypto.randomBytes(20_000);
    const um = { part_id: 'part-a', component_type: 'rdk:component:camera', component_name: 'cam-annot', method_name: 'ReadImage', type: 'DATA_TYPE_BINARY_SENSOR', file_extension: '.jpeg', mime_type: 'image/jpeg', tags: [] };
    const sm = { time_requested: ts(T0), time_received: ts(T0 + 700), mime_type: 'MIME_TYPE_IMAGE_JPEG', annotations: EXPECTED };
    const r = await unary(client, { metadata: um, sensor_contents: [{ metadata: sm, binary: img }] });

    const lines = (await exported()).filter((l) => l.includes('"cam-annot"'));
    const line = JSON.stringify({
      part_id: 'part-a',
      resource_kind: 'rdk:component:camera',
      resource: 'cam-annot',
      method: 'ReadImage',
      seq: 0,
      time_requested_us: T0,
      time_received_us: T0 + 700,
      data: { binary: { size: img.length, sha256: sha(img), mime_type: 'image/jpeg', annotations: EXPECTED } },
      file_id: r.file_id,
      mime_type: 'image/jpeg',
    });
    expect(lines).toEqual([line]);

    // The same item streamed (StreamingDataCaptureUpload) is the same item: same id, stored once.
    const CH = 4096;
    const s = await streamed(client, [
      { metadata: { upload_metadata: um, sensor_metadata: sm } },
      ...Array.from({ length: Math.ceil(img.length / CH) }, (_, i) => ({ data: img.subarray(i * CH, (i + 1) * CH) })),
    ]);
    expect(s.file_id).toBe(r.file_id);
    expect((await exported()).filter((l) => l.includes('"cam-annot"'))).toEqual([line]);

    // A streamed item with other annotations is another item, and keeps its own.
    const other = { ...EXPECTED, classifications: [{ label: 'night', confidence: 0.5, id: 'cls-9' }] };
    const s2 = await streamed(client, [{ metadata: { upload_metadata: um, sensor_metadata: { ...sm, annotations: other } } }, { data: img }]);
    expect(s2.file_id).not.toBe(r.file_id);
    const got = (await exported()).filter((l) => l.includes(s2.file_id)).map((l) => JSON.parse(l) as { data: { binary: { annotations: unknown } } });
    expect(got.map((g) => g.data.binary.annotations)).toEqual([other]);
  }, 180_000);

  it('accepts MIME_TYPE_VIDEO_MP4 and stores it as video/mp4', async () => {
    expect(mimeOfEnum('MIME_TYPE_VIDEO_MP4')).toBe('video/mp4');
    expect(extensionOfMime('video/mp4')).toBe('.mp4');
    const clip = crypto.randomBytes(5_000);
    const r = await unary(client, {
      metadata: { part_id: 'part-a', component_type: 'rdk:component:camera', component_name: 'cam-video', method_name: 'GetVideo', type: 'DATA_TYPE_BINARY_SENSOR' },
      sensor_contents: [{ metadata: { time_requested: ts(T0), time_received: ts(T0 + 1), mime_type: 'MIME_TYPE_VIDEO_MP4' }, binary: clip }],
    });
    const lines = (await exported()).filter((l) => l.includes(r.file_id)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ resource: 'cam-video', mime_type: 'video/mp4', data: { binary: { size: clip.length, sha256: sha(clip), mime_type: 'video/mp4' } } })]);
  }, 120_000);

  it('refuses more annotations per item than limits.maxAnnotationsPerItem (unary and streamed), storing nothing', async () => {
    const um = { part_id: 'part-a', component_type: 'rdk:component:camera', component_name: 'cam-flood', method_name: 'ReadImage', type: 'DATA_TYPE_BINARY_SENSOR' };
    const box = (i: number): object => ({ id: `b${i}`, label: 'x', x_min_normalized: 0, y_min_normalized: 0, x_max_normalized: 1, y_max_normalized: 1 });
    const ann = (boxes: number, cls: number): object => ({ bboxes: Array.from({ length: boxes }, (_, i) => box(i)), classifications: Array.from({ length: cls }, (_, i) => ({ label: `c${i}` })) });
    const item = (a: object, n: number): object => ({ metadata: { time_requested: ts(T0 + n), time_received: ts(T0 + n), annotations: a }, binary: Buffer.from([n]) });

    for (const a of [ann(MAX + 1, 0), ann(2, MAX - 1), ann(0, MAX + 1)]) {
      const e = await refused(unary(client, { metadata: um, sensor_contents: [item(a, 1)] }));
      expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(e.details).toMatch(/annotations.*limit is 4/);
    }
    const e = await refused(streamed(client, [{ metadata: { upload_metadata: um, sensor_metadata: { time_requested: ts(T0), annotations: ann(MAX + 1, 0) } } }, { data: Buffer.from([1]) }]));
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await listReceived(dataDir)).filter((x) => x.type === 'capture' && x.resource === 'cam-flood')).toEqual([]);

    // exactly at the limit is fine
    await unary(client, { metadata: um, sensor_contents: [item(ann(2, MAX - 2), 2)] });
    expect((await listReceived(dataDir)).filter((x) => x.type === 'capture' && x.resource === 'cam-flood')).toHaveLength(1);
  });

  it('a viam-server .capture file with annotations: read by the edge, uploaded both ways, shown by inspect', async () => {
    const images = [crypto.randomBytes(3_000), crypto.randomBytes(4_000)];
    const bytes = viamAnnotatedCapture(images, EXPECTED);
    const c = readViamCaptureBytes(bytes);
    expect(c.problems).toEqual([]);
    expect(c.readings.map((r) => r.annotations)).toEqual([EXPECTED, EXPECTED]);

    // inspect --json on the viam-server file
    const vfile = path.join(dir, 'viam-annotated.capture');
    fs.writeFileSync(vfile, bytes);
    const shown = (await edgecap(['inspect', vfile, '--json'])).trim().split('\n').map((l) => JSON.parse(l) as { data: unknown });
    expect(shown.map((s) => s.data)).toEqual(images.map((img) => ({ binary: { size: img.length, sha256: sha(img), annotations: EXPECTED } })));

    // the edge's sync engine (edgecap protocol) converts and uploads it ...
    const captureDir = path.join(dir, 'capture');
    const sub = path.join(captureDir, 'camera', 'cam', 'ReadImage');
    fs.mkdirSync(sub, { recursive: true });
    const file = path.join(sub, '2024-01-01T00_00_00.capture');
    fs.writeFileSync(file, bytes);
    const engine = new SyncEngine({
      captureDir,
      stateDir: path.join(dir, 'state'),
      additionalSyncPaths: [],
      fileLastModifiedMs: 0,
      intervalMs: 60_000,
      threads: 1,
      partId: 'part-e',
      tags: [],
      ingest: { address: `127.0.0.1:${server.port}`, caFile, serverName: 'localhost', apiKey: API_KEY },
    });
    try {
      const r = await engine.syncNow();
      expect(r.errors).toEqual([]);
      expect(r.uploaded).toBe(1);
    } finally {
      await engine.stop();
    }
    // ... and uploads the same file over viam's protocol as viam-server would (one call per image)
    fs.writeFileSync(file, bytes);
    const vc = createViamClient(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(fs.readFileSync(caFile)));
    try {
      expect(await uploadViam({ path: file, kind: 'viam-capture', partId: 'part-e', apiKey: API_KEY }, vc)).toMatchObject({ ok: true, status: 'committed', calls: 2 });
    } finally {
      vc.close();
    }
    const summary = (img: Uint8Array): object => ({ binary: { size: img.length, sha256: sha(img), mime_type: 'image/jpeg', annotations: EXPECTED } });
    const lines = (await exported()).map((l) => JSON.parse(l) as { part_id: string; file_id: string; seq: number; data: unknown }).filter((x) => x.part_id === 'part-e');
    const byFile = new Map<string, unknown[]>();
    for (const l of lines) byFile.set(l.file_id, [...(byFile.get(l.file_id) ?? []), [l.seq, l.data]]);
    // converted: one file of both images; viam's protocol: a file per image; annotations on every one
    expect(byFile.size).toBe(3);
    expect([...byFile.values()]).toEqual(expect.arrayContaining([images.map((img, i) => [i, summary(img)]), [[0, summary(images[0]!)]], [[0, summary(images[1]!)]]]));

    // inspect --json on an edgecap capture file holding them
    const efile = path.join(dir, 'edgecap-annotated.capture');
    fs.writeFileSync(efile, readingsToCaptureBytes('00000000-0000-0000-0000-000000000001', { component_type: 'camera', component_name: 'cam', method_name: 'ReadImage' }, 'binary', c.readings));
    const shown2 = (await edgecap(['inspect', efile, '--json'])).trim().split('\n').map((l) => JSON.parse(l) as { data: unknown; mime_type?: string });
    expect(shown2.map((s) => [s.mime_type, s.data])).toEqual(images.map((img) => ['image/jpeg', { binary: { size: img.length, sha256: sha(img), annotations: EXPECTED } }]));

    // ... and that edgecap file sent over viam's protocol (the edge with ingest.protocol viam) keeps them too
    const vc2 = createViamClient(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(fs.readFileSync(caFile)));
    try {
      expect(await uploadViam({ path: efile, kind: 'capture', partId: 'part-c', apiKey: API_KEY }, vc2)).toMatchObject({ ok: true, status: 'committed', calls: 2 });
    } finally {
      vc2.close();
    }
    const sent = (await exported()).map((l) => JSON.parse(l) as { part_id: string; data: unknown }).filter((x) => x.part_id === 'part-c');
    expect(sent.map((x) => x.data)).toEqual(expect.arrayContaining(images.map(summary)));
    expect(sent).toHaveLength(2);
  }, 240_000);
});

describe('dedup digest', () => {
  const bin = Uint8Array.from([1, 2, 3, 250]);
  const item = (annotations: unknown): SensorData__Output =>
    ({ metadata: { time_requested: ts(T0), time_received: ts(T0 + 9), mime_type: 'MIME_TYPE_IMAGE_PNG', annotations }, data: 'binary', binary: bin }) as unknown as SensorData__Output;

  it('is unchanged (v1) for items without annotations and for classifications without ids', () => {
    expect(sensorItemDigest(item(null)).toString('hex')).toBe(v1BinaryDigest(T0, T0 + 9, 'MIME_TYPE_IMAGE_PNG', 'null', bin));
    const noIds = { bboxes: [{ id: 'b', label: 'l', x_min_normalized: 0.5, y_min_normalized: 0, x_max_normalized: 1, y_max_normalized: 1, confidence: 0.25 }], classifications: [{ label: 'c', confidence: 0.75, id: '' }] };
    expect(sensorItemDigest(item(noIds)).toString('hex')).toBe(v1BinaryDigest(T0, T0 + 9, 'MIME_TYPE_IMAGE_PNG', '{"bboxes":[["b","l",0.5,0,1,1,0.25]],"classifications":[["c",0.75]]}', bin));
  });

  it('covers every annotation field, ids included', () => {
    const base = { bboxes: [{ id: 'b', label: 'l', x_min_normalized: 0.5, y_min_normalized: 0, x_max_normalized: 1, y_max_normalized: 1, confidence: 0.25 }], classifications: [{ label: 'c', confidence: 0.75, id: 'k' }] };
    const d0 = sensorItemDigest(item(base)).toString('hex');
    expect(d0).toBe(v1BinaryDigest(T0, T0 + 9, 'MIME_TYPE_IMAGE_PNG', '{"bboxes":[["b","l",0.5,0,1,1,0.25]],"classifications":[["c",0.75,"k"]]}', bin));
    const variants = [
      { ...base, bboxes: [{ ...base.bboxes[0]!, id: 'b2' }] },
      { ...base, bboxes: [{ ...base.bboxes[0]!, label: 'l2' }] },
      { ...base, bboxes: [{ ...base.bboxes[0]!, y_max_normalized: 0.9 }] },
      { ...base, bboxes: [{ ...base.bboxes[0]!, confidence: undefined }] },
      { ...base, classifications: [{ ...base.classifications[0]!, id: 'k2' }] },
      { ...base, classifications: [{ ...base.classifications[0]!, confidence: undefined }] },
      { ...base, classifications: [] },
    ];
    const ds = variants.map((v) => sensorItemDigest(item(v)).toString('hex'));
    expect(new Set([d0, ...ds]).size).toBe(variants.length + 1);
  });
});

describe('capture files with annotations (format READING 6th element)', () => {
  const header = encodeFileStart({ kind: 'camera', name: 'cam', method: 'ReadImage', type: 'binary', tags: [], start_us: 0, mime_type: 'image/jpeg' }).bytes;
  const img = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]);

  it('reads annotations back; files without them (4/5-element READINGs) read as before', () => {
    const enc = new FrameEncoder();
    // without annotations the encoder writes the READINGs it always wrote: 5 and 4 elements
    const old5 = encodeFrame(FrameType.READING, enc.readingPayload(0, 10, 11, img, 'image/png').slice());
    const old4 = encodeFrame(FrameType.READING, enc.readingPayload(1, 20, 21, img).slice());
    expect([old5[12], old4[12]]).toEqual([0x95, 0x94]);
    const annotated = encodeFrame(FrameType.READING, enc.readingPayload(2, 30, 31, img, undefined, EXPECTED).slice());
    const both = encodeFrame(FrameType.READING, enc.readingPayload(3, 40, 41, img, 'image/png', EXPECTED).slice());
    const s = readCaptureBytes(Buffer.concat([header, old5, old4, annotated, both]));
    expect(s.problems).toEqual([]);
    expect(s.readings.map((r) => [r.seq, r.mime_type, r.annotations])).toEqual([
      [0, 'image/png', undefined],
      [1, undefined, undefined],
      [2, undefined, EXPECTED],
      [3, 'image/png', EXPECTED],
    ]);
    // a non-map in that slot is not annotations
    // msgpack [4, 50, 51, bin(img), nil, ['x']]
    const odd = encodeFrame(FrameType.READING, Uint8Array.from([0x96, 4, 50, 51, 0xc4, img.length, ...img, 0xc0, 0x91, 0xa1, 0x78]));
    expect(readCaptureBytes(Buffer.concat([header, odd])).readings[0]?.annotations).toBeUndefined();
  });

  it('the streamed capture pieces around the binary equal the in-memory READING payload', () => {
    const enc = new FrameEncoder();
    for (const n of [0, 200, 300, 70_000]) {
      const bin = crypto.randomBytes(n);
      for (const mime of [undefined, 'video/mp4']) {
        for (const ann of [undefined, EXPECTED]) {
          const { prefix, suffix } = readingPayloadParts(0, T0, T0 + 5, mime, ann);
          const whole = Buffer.from(enc.readingPayload(0, T0, T0 + 5, bin, mime, ann));
          expect(Buffer.concat([prefix, msgpackBinHead(n), bin, suffix]).equals(whole)).toBe(true);
        }
      }
    }
  });
});
