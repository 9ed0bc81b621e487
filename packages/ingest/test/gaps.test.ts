import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeFileStart, encodeFrame, FrameType } from '@edgecap/format';
import { exportReadings, gapReport, makeDevCert, removeReportedGaps, startIngestServer, type IngestServer, type ReportedGap } from '@edgecap/ingest';
import type { DataSyncClient, Gap } from '@edgecap/proto';
import { auth, captureMeta, makeCapture, makeClient, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

function reportGaps(client: DataSyncClient, gaps: Gap[], key = 'test-key-1'): Promise<{ accepted?: number; code?: number; details?: string }> {
  return new Promise((resolve) =>
    client.ReportGaps({ gaps }, auth(key), (err, res) => (err ? resolve({ code: err.code, details: err.details }) : resolve({ accepted: res!.accepted }))),
  );
}

describe('completeness report', () => {
  let dir: string;
  let dataDir: string;
  let server: IngestServer;
  let client: DataSyncClient;
  const janitorGap: Gap = { part_id: 'robot-1', resource_kind: 'sensor', resource_name: 'temp', method: 'Readings', from_seq: 13, to_seq: 14, reason: 'janitor', time_us: 9 };

  beforeAll(async () => {
    dir = tmpDir('gaps');
    dataDir = path.join(dir, 'data');
    const cert = makeDevCert(path.join(dir, 'tls'));
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: ['test-key-1'] });
    client = makeClient(`localhost:${server.port}`, cert.caFile);
    // seq 0-9 (+ GAP frame 10-12 ring_full recorded by the writer), then 15-19 in a later file
    const a = makeCapture({ seqs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], gaps: [[10, 12, 'ring_full']] });
    const b = makeCapture({ seqs: [15, 16, 17, 18, 19] });
    for (const c of [b, a]) expect(await upload(client, captureMeta(c), c.bytes)).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gap frame + reported gap explain every hole; ReportGaps is idempotent', async () => {
    expect(await reportGaps(client, [janitorGap])).toEqual({ accepted: 1 });
    expect(await reportGaps(client, [janitorGap])).toEqual({ accepted: 1 });
    const r = await gapReport(dataDir);
    expect(r.unexplained_gaps).toBe(0);
    expect(r.streams).toEqual([
      {
        part_id: 'robot-1',
        resource_kind: 'sensor',
        resource: 'temp',
        method: 'Readings',
        readings: 15,
        duplicates: 0,
        received: [
          { from_seq: 0, to_seq: 9 },
          { from_seq: 15, to_seq: 19 },
        ],
        gaps: [
          { from_seq: 10, to_seq: 12, explained: true, reasons: ['ring_full'] },
          { from_seq: 13, to_seq: 14, explained: true, reasons: ['janitor'] },
        ],
        unexplained_readings: 0,
      },
    ]);
  });

  it('without the reported gap, 13-14 is unexplained', async () => {
    const g: ReportedGap = { ...janitorGap } as ReportedGap;
    expect(await removeReportedGaps(dataDir, [g])).toBe(1);
    const r = await gapReport(dataDir);
    expect(r.unexplained_gaps).toBe(1);
    expect(r.streams[0]!.gaps).toEqual([
      { from_seq: 10, to_seq: 12, explained: true, reasons: ['ring_full'] },
      { from_seq: 13, to_seq: 14, explained: false, reasons: [] },
    ]);
    expect(r.streams[0]!.unexplained_readings).toBe(2);
  });

  it('a leading hole (first seqs never arrived) is reported as unexplained', async () => {
    const c = makeCapture({ name: 'late', seqs: [3, 4] });
    expect(await upload(client, captureMeta(c), c.bytes)).toMatchObject({ ok: true });
    const s = (await gapReport(dataDir)).streams.find((x) => x.resource === 'late')!;
    expect(s.gaps).toEqual([{ from_seq: 0, to_seq: 2, explained: false, reasons: [] }]);
  });

  it('hostile files on a real store: a reading nested 100,000 deep exports; 5k alternating seqs report bounded', async () => {
    const { bytes: start, header } = encodeFileStart({ kind: 'sensor', name: 'deep', method: 'Readings', type: 'tabular', tags: [], start_us: 1 });
    const depth = 100_000;
    const payload = new Uint8Array(4 + depth + 1);
    payload.set([0x94, 0, 1, 2]);
    payload.fill(0x91, 4, 4 + depth); // [[[...]]]
    payload[4 + depth] = 0x2a; // 42 at the bottom
    const deep = { id: header.id, bytes: Buffer.concat([start, encodeFrame(FrameType.READING, payload)]), kind: 'sensor', name: 'deep', method: 'Readings' };
    const up = await upload(client, captureMeta(deep), deep.bytes);
    expect(up, JSON.stringify(up)).toMatchObject({ ok: true });
    const got: { data: unknown }[] = [];
    for await (const r of exportReadings(dataDir)) if (r.resource === 'deep') got.push(r);
    expect(got).toHaveLength(1);
    let v = got[0]!.data;
    let d = 0;
    while (Array.isArray(v)) {
      v = v[0];
      d++;
    }
    expect([d, v]).toEqual([depth, 42]);

    const alt = makeCapture({ name: 'alt', seqs: Array.from({ length: 5_000 }, (_, i) => 2 * i) }); // under the server's per-file ranges limit
    const upAlt = await upload(client, captureMeta(alt), alt.bytes);
    expect(upAlt, JSON.stringify(upAlt)).toMatchObject({ ok: true });
    const st = (await gapReport(dataDir, { maxEntries: 5 })).streams.find((x) => x.resource === 'alt')!;
    expect(st.readings).toBe(5_000);
    expect(st.received).toHaveLength(5);
    expect(st.gaps).toHaveLength(5);
    expect(st.truncated).toEqual({ limit: 5, received: 5_000, gaps: 4_999, unexplained_gaps: 4_999 });
    expect(st.unexplained_readings).toBe(4_999);
  });

  it('a bad gap report is refused', async () => {
    expect(await reportGaps(client, [{ ...janitorGap, from_seq: 5, to_seq: 4 }])).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'gaps[0]: from_seq 5 .. to_seq 4 is not a valid inclusive range',
    });
    expect(await reportGaps(client, [janitorGap], 'nope')).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });
});
