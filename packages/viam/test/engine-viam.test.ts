/**
 * Our edge client in viam mode (SyncEngine, ingest.protocol 'viam') against our ingest, end
 * to end over TLS: capture files made with @edgecap/format (tabular; binary with a small and
 * a > 1 MiB item), an additional file and a viam-server .capture file are uploaded over
 * viam.app.datasync.v1, exported exactly once and deleted locally; the same files synced
 * again (a lost ack re-send) change nothing in the export.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listReceived } from '@edgecap/ingest';
import { FrameEncoder, FrameType, encodeFileStart, encodeFrame } from '@edgecap/format';
import { SyncEngine, type SyncOptions } from '@edgecap/sync';
import { encodeViamCapture, objectToStruct, usToTimestamp } from '@edgecap/viam';
import { API_KEY, allReadings, tlsIngestFixture } from './helpers.js';

const T0 = 1_700_000_200_000_000;

function ourCapture(kind: string, name: string, method: string, items: unknown[], binary: boolean): Buffer {
  const start = encodeFileStart({ kind, name, method, type: binary ? 'binary' : 'tabular', tags: ['cap-tag'], start_us: T0, ...(binary ? { mime_type: 'image/jpeg' } : {}) });
  const enc = new FrameEncoder();
  return Buffer.concat([start.bytes, ...items.map((d, i) => encodeFrame(FrameType.READING, enc.readingPayload(i, T0 + i * 1000, T0 + i * 1000 + 7, d)))]);
}

const sha = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

describe('SyncEngine with ingest.protocol viam', () => {
  const ing = tlsIngestFixture('engine');

  it('uploads, exports exactly once, deletes locally; re-sends are stored once', async () => {
    const captureDir = path.join(ing.dir, 'capture');
    const extra = path.join(ing.dir, 'extra');
    const stateDir = path.join(ing.dir, 'state');
    fs.mkdirSync(path.join(captureDir, 'sensor', 'temp', 'Readings'), { recursive: true });
    fs.mkdirSync(path.join(captureDir, 'camera', 'cam', 'ReadImage'), { recursive: true });
    fs.mkdirSync(path.join(captureDir, 'viam'), { recursive: true });
    fs.mkdirSync(path.join(extra, 'logs'), { recursive: true });

    const small = crypto.randomBytes(50_000);
    const big = crypto.randomBytes(1_300_000);
    const extraBytes = crypto.randomBytes(150_000);
    const files: Record<string, Buffer> = {
      [path.join(captureDir, 'sensor', 'temp', 'Readings', 'a.capture')]: ourCapture('sensor', 'temp', 'Readings', [0, 1, 2, 3].map((i) => ({ t: 20 + i, unit: 'C', nested: { ok: i % 2 === 0 } })), false),
      [path.join(captureDir, 'camera', 'cam', 'ReadImage', 'b.capture')]: ourCapture('camera', 'cam', 'ReadImage', [small, big], true),
      [path.join(captureDir, 'viam', 'v.capture')]: Buffer.from(
        encodeViamCapture({ component_type: 'rdk:component:sensor', component_name: 'viam-sensor', method_name: 'Readings', type: 'DATA_TYPE_TABULAR_SENSOR', tags: [] }, [
          { metadata: { time_requested: usToTimestamp(T0), time_received: usToTimestamp(T0 + 1) }, struct: objectToStruct({ a: 1 }) },
          { metadata: { time_requested: usToTimestamp(T0 + 5), time_received: usToTimestamp(T0 + 6) }, struct: objectToStruct({ a: 2 }) },
        ]),
      ),
      [path.join(extra, 'logs', 'app.log')]: extraBytes,
    };
    const mtime = new Date(Date.now() - 60_000);
    const write = (): void => {
      for (const [p, b] of Object.entries(files)) {
        fs.writeFileSync(p, b);
        fs.utimesSync(p, mtime, mtime); // the same file as before, as after a lost ack
      }
    };
    const opts: SyncOptions = {
      captureDir,
      stateDir,
      additionalSyncPaths: [extra],
      fileLastModifiedMs: 0,
      intervalMs: 60_000,
      threads: 2,
      partId: 'part-e',
      tags: ['site:b'],
      ingest: { address: `127.0.0.1:${ing.server.port}`, caFile: ing.caFile, serverName: 'localhost', apiKey: API_KEY, protocol: 'viam' },
    };

    write();
    const engine = new SyncEngine(opts);
    try {
      const r1 = await engine.syncNow();
      expect(r1.errors).toEqual([]);
      expect(r1.uploaded).toBe(4);
      for (const p of Object.keys(files)) expect(fs.existsSync(p)).toBe(false);

      // The same files again (a lost ack: the edge re-sends whole files).
      write();
      const r2 = await engine.syncNow();
      expect(r2.errors).toEqual([]);
      expect(r2.alreadyHad).toBe(4);
      for (const p of Object.keys(files)) expect(fs.existsSync(p)).toBe(false);
    } finally {
      await engine.stop();
    }

    const readings = await allReadings(ing.dataDir);
    const temp = readings.filter((r) => r.resource === 'temp');
    expect(temp.map((r) => [r.seq, r.time_requested_us, r.time_received_us])).toEqual([0, 1, 2, 3].map((i) => [i, T0 + i * 1000, T0 + i * 1000 + 7]));
    expect(temp[1]).toMatchObject({ part_id: 'part-e', resource_kind: 'sensor', method: 'Readings', data: { t: 21, unit: 'C', nested: { ok: false } } });
    // Binary: one upload per item (small unary, big streamed), each once.
    const cam = readings.filter((r) => r.resource === 'cam');
    expect(cam.map((r) => r.data).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual(
      [
        { binary: { size: small.length, sha256: sha(small), mime_type: 'image/jpeg' } },
        { binary: { size: big.length, sha256: sha(big), mime_type: 'image/jpeg' } },
      ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
    expect(readings.filter((r) => r.resource === 'viam-sensor').map((r) => r.data)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(readings).toHaveLength(4 + 2 + 2);

    const received = await listReceived(ing.dataDir);
    const f = received.filter((e) => e.type === 'file');
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ type: 'file', file_name: 'logs/app.log', sha256: sha(extraBytes), part_id: 'part-e' });
    expect(received.filter((e) => e.type === 'capture')).toHaveLength(1 + 2 + 1);
  });
});
