/**
 * viam-server's on-disk `.capture` layout, written here with protobufjs alone
 * (Type.encodeDelimited: uvarint length + message), is decoded by readViamCaptureFile;
 * every truncation and corruption of it is reported as problems, never a crash; the sync
 * engine (edgecap protocol) finds it in the capture dir, uploads it converted, deletes it;
 * the same file uploaded again over viam's protocol dedups to the same stored file.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { listReceived } from '@edgecap/ingest';
import { SyncEngine } from '@edgecap/sync';
import { createViamClient, probeViamCaptureFile, readViamCaptureBytes, readViamCaptureFile, uploadViam } from '@edgecap/viam';
import { encodeFileStart } from '@edgecap/format';
import { API_KEY, allReadings, tlsIngestFixture, viamCaptureBytes, T0 } from './helpers.js';


describe('viam-server .capture files', () => {
  const ing = tlsIngestFixture('capfile');

  it('decodes metadata and readings', () => {
    const file = path.join(ing.dir, 'a.capture');
    fs.writeFileSync(file, viamCaptureBytes(4));
    const c = readViamCaptureFile(file);
    expect(c.problems).toEqual([]);
    expect(c.metadata).toMatchObject({ component_type: 'rdk:component:movement_sensor', component_name: 'imu', method_name: 'LinearAcceleration', type: 'DATA_TYPE_TABULAR_SENSOR', tags: ['viam-tag'] });
    expect(c.readings).toHaveLength(4);
    expect(c.readings[2]).toEqual({ time_requested_us: T0 + 20_000, time_received_us: T0 + 20_100, data: { linear_acceleration: { x: 2, y: -0.5, z: 9.81 } } });
    expect(probeViamCaptureFile(file)?.component_name).toBe('imu');
    // An edgecap capture file is not a viam one.
    const ours = path.join(ing.dir, 'ours.capture');
    fs.writeFileSync(ours, encodeFileStart({ kind: 'sensor', name: 's', method: 'Readings', type: 'tabular', tags: [], start_us: 0 }).bytes);
    expect(probeViamCaptureFile(ours)).toBeUndefined();
    expect(readViamCaptureFile(ours).problems[0]?.kind).toBe('bad_metadata');
  });

  it('reports truncated and corrupt variants as problems, without throwing', () => {
    const good = viamCaptureBytes(3);
    const whole = readViamCaptureBytes(good);
    const ends = new Set<number>();
    // message boundaries: cuts there are clean
    let o = 0;
    while (o < good.length) {
      let len = 0;
      let mul = 1;
      let i = 0;
      for (;;) {
        const b = good[o + i]!;
        len += (b & 0x7f) * mul;
        i++;
        if (b < 0x80) break;
        mul *= 128;
      }
      o += i + len;
      ends.add(o);
    }
    for (let cut = 0; cut < good.length; cut++) {
      const c = readViamCaptureBytes(good.subarray(0, cut));
      if (ends.has(cut)) expect(c.problems).toEqual([]);
      else expect(c.problems.length).toBeGreaterThan(0);
      expect(c.readings.length).toBeLessThanOrEqual(whole.readings.length);
    }
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i] = bad[i]! ^ 0xff;
      const c = readViamCaptureBytes(bad);
      expect(Array.isArray(c.problems)).toBe(true);
      if (c.problems.length === 0) expect(c.readings.length).toBe(3);
    }
    expect(readViamCaptureBytes(new Uint8Array(0)).problems[0]?.kind).toBe('bad_metadata');
  });

  it('sync (edgecap protocol) uploads it converted; the same file over viam protocol dedups to it', async () => {
    const captureDir = path.join(ing.dir, 'capture');
    const stateDir = path.join(ing.dir, 'state');
    const sub = path.join(captureDir, 'movement_sensor', 'imu', 'LinearAcceleration');
    fs.mkdirSync(sub, { recursive: true });
    const bytes = viamCaptureBytes(5);
    const file = path.join(sub, '2024-01-01T00_00_00.capture');
    fs.writeFileSync(file, bytes);
    const engine = new SyncEngine({
      captureDir,
      stateDir,
      additionalSyncPaths: [],
      fileLastModifiedMs: 0,
      intervalMs: 60_000,
      threads: 1,
      partId: 'part-v',
      tags: [],
      ingest: { address: `127.0.0.1:${ing.server.port}`, caFile: ing.caFile, serverName: 'localhost', apiKey: API_KEY },
    });
    try {
      const r = await engine.syncNow();
      expect(r.errors).toEqual([]);
      expect(r.uploaded).toBe(1);
    } finally {
      await engine.stop();
    }
    expect(fs.existsSync(file)).toBe(false);
    const readings = (await allReadings(ing.dataDir)).filter((x) => x.resource === 'imu');
    expect(readings.map((x) => x.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(readings[4]).toMatchObject({ part_id: 'part-v', resource_kind: 'rdk:component:movement_sensor', method: 'LinearAcceleration', time_requested_us: T0 + 40_000, data: { linear_acceleration: { x: 4, y: -1, z: 9.81 } } });

    // The very same file, as viam-server would send it (DataCaptureUpload): the same key, stored once.
    fs.writeFileSync(file, bytes);
    const client = createViamClient(`127.0.0.1:${ing.server.port}`, grpc.credentials.createSsl(fs.readFileSync(ing.caFile)));
    try {
      const out = await uploadViam({ path: file, kind: 'viam-capture', partId: 'part-v', apiKey: API_KEY }, client);
      expect(out).toMatchObject({ ok: true, status: 'already_have', calls: 1 });
    } finally {
      client.close();
    }
    const entries = (await listReceived(ing.dataDir)).filter((e) => e.type === 'capture' && e.resource === 'imu');
    expect(entries).toHaveLength(1);
  });
});
