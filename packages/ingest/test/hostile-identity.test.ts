/**
 * Issue #12 attacks on identity and dedup, each against a real TLS ingest on port 0:
 * a device key acting as another part (upload, capture header, ReportGaps, viam), pre-claimed
 * file ids, the same id with other content, names that block names, pre-placed files,
 * oversized metadata, and revocation seen by a running server.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings, gapReport, listReceived, makeDevCert, openKeyAdmin, startIngestServer, type IngestServer, type NewDeviceKey } from '@edgecap/ingest';
import type { DataSyncClient } from '@edgecap/proto';
import { createAuthClient } from '@edgecap/viam';
import { API_KEY, auth, captureMeta, collect, fileMeta, health, makeCapture, makeClient, sha256, tmpDir, upload } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const CLI = path.resolve(import.meta.dirname, '../../cli/bin/edgecap.js');

function reportGaps(client: DataSyncClient, key: string, gaps: Record<string, unknown>[]): Promise<{ ok: boolean; code?: number; details?: string }> {
  return new Promise((resolve) =>
    client.ReportGaps({ gaps } as never, auth(key), (err) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true })),
  );
}

describe('ingest trust: per-device identity and per-part dedup', () => {
  let dir: string;
  let dataDir: string;
  let server: IngestServer;
  let client: DataSyncClient;
  let caFile: string;
  let keyA: NewDeviceKey;
  let keyB: NewDeviceKey;

  beforeAll(async () => {
    dir = tmpDir('hostile-id');
    dataDir = path.join(dir, 'data');
    const cert = makeDevCert(path.join(dir, 'tls'));
    caFile = cert.caFile;
    const admin = await openKeyAdmin({ dataDir });
    keyA = await admin.create('robot-a');
    keyB = await admin.create('robot-b');
    await admin.close();
    // A fleet key too (development / single tenant): it may act as any part.
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: cert, apiKeys: [API_KEY] });
    client = makeClient(`localhost:${server.port}`, caFile);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses device B's key uploading as part A (PERMISSION_DENIED, nothing stored)", async () => {
    const c = makeCapture({ seqs: [0, 1, 2], name: 'spoof' });
    const r = await upload(client, captureMeta(c, 'robot-a'), c.bytes, { key: keyB.secret });
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect((r as { details: string }).details).toContain(keyB.key_id);
    const rows = (await collect(exportReadings(dataDir))).filter((x) => x.resource === 'spoof');
    expect(rows).toEqual([]);
  });

  it("refuses a capture file whose header names another part, sent with the device's own part", async () => {
    const c = makeCapture({ seqs: [0, 1], name: 'smuggle', part_id: 'robot-a' });
    const r = await upload(client, captureMeta(c, 'robot-b'), c.bytes, { key: keyB.secret });
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    // ...and with a fleet key the disagreement is a bad request, not stored under either part.
    const f = await upload(client, captureMeta(c, 'robot-b'), c.bytes);
    expect(f).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((f as { details: string }).details).toContain('header part_id');
    expect((await listReceived(dataDir)).filter((e) => e.file_id === c.id)).toEqual([]);
  });

  it("stores a device's upload under its key's part (an empty part id means its own)", async () => {
    const c = makeCapture({ seqs: [0, 1, 2], name: 'own' });
    const r = await upload(client, captureMeta(c, ''), c.bytes, { key: keyA.secret });
    expect(r).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const rows = (await collect(exportReadings(dataDir))).filter((x) => x.resource === 'own');
    expect(rows.map((x) => x.part_id)).toEqual(['robot-a', 'robot-a', 'robot-a']);
  });

  it("refuses ReportGaps for another part's streams; nothing is recorded", async () => {
    const gap = { part_id: 'robot-a', resource_kind: 'sensor', resource_name: 'own', method: 'Readings', from_seq: 0, to_seq: 1e15, reason: 'janitor', time_us: 1 };
    const r = await reportGaps(client, keyB.secret, [gap]);
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    const report = await gapReport(dataDir);
    expect(JSON.stringify(report)).not.toContain('1000000000000000');
    // the owner may report its own
    expect(await reportGaps(client, keyA.secret, [{ ...gap, to_seq: 5, from_seq: 3 }])).toEqual({ ok: true });
  });

  it('bounds ReportGaps: too many gaps in one call is refused', async () => {
    const gaps = Array.from({ length: 10_001 }, (_, i) => ({ part_id: 'robot-a', resource_kind: 'sensor', resource_name: 'x', method: 'Readings', from_seq: i * 2, to_seq: i * 2, reason: 'ring_full', time_us: 1 }));
    const r = await reportGaps(client, keyA.secret, gaps);
    expect(r).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect(r.details).toContain('limit 10000');
  });

  it("does not let another part pre-claim a device's file id", async () => {
    const real = makeCapture({ seqs: Array.from({ length: 308 }, (_, i) => i), name: 'victim' });
    // the attacker learned the id (it is in the header) and uploads junk under it first
    const junk = makeCapture({ seqs: [0], id: real.id, name: 'junk' });
    expect(await upload(client, captureMeta(junk, ''), junk.bytes, { key: keyB.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const r = await upload(client, captureMeta(real, ''), real.bytes, { key: keyA.secret });
    expect(r).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const rows = (await collect(exportReadings(dataDir))).filter((x) => x.resource === 'victim');
    expect(rows).toHaveLength(308);
    expect(new Set(rows.map((x) => x.part_id))).toEqual(new Set(['robot-a']));
  });

  it('answers ALREADY_HAVE only for the same content; the same id with other content is ALREADY_EXISTS and nothing is overwritten', async () => {
    const c = makeCapture({ seqs: [1, 2, 3], name: 'dedup' });
    expect(await upload(client, captureMeta(c, ''), c.bytes, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    expect(await upload(client, captureMeta(c, ''), c.bytes, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_ALREADY_HAVE' } });
    const other = makeCapture({ seqs: [1, 2, 3, 4], id: c.id, name: 'dedup' });
    const r = await upload(client, captureMeta(other, ''), other.bytes, { key: keyA.secret });
    expect(r).toMatchObject({ ok: false, code: grpc.status.ALREADY_EXISTS });
    const details = (r as { details: string }).details;
    expect(details).toContain(sha256(c.bytes).toString('hex'));
    expect(details).toContain(sha256(other.bytes).toString('hex'));
    const rows = (await collect(exportReadings(dataDir))).filter((x) => x.resource === 'dedup');
    expect(rows.map((x) => x.seq)).toEqual([1, 2, 3]);
  });

  it('stores a file named like a folder of a later file, and the reverse (no name blocks another)', async () => {
    const a = Buffer.from('a report');
    const b = Buffer.from('the 2024 report');
    expect(await upload(client, fileMeta('f-reports', 'reports', a, ''), a, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    expect(await upload(client, fileMeta('f-reports-2024', 'reports/2024.csv', b, ''), b, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const c = Buffer.from('x');
    const d = Buffer.from('y');
    expect(await upload(client, fileMeta('f-dir-x', 'dir/x', c, ''), c, { key: keyA.secret })).toMatchObject({ ok: true });
    expect(await upload(client, fileMeta('f-dir', 'dir', d, ''), d, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    const listed = await listReceived(dataDir);
    for (const [id, bytes] of [['f-reports', a], ['f-reports-2024', b], ['f-dir-x', c], ['f-dir', d]] as const) {
      const e = listed.find((x) => x.file_id === id) as { path?: string } | undefined;
      expect(e, id).toBeDefined();
      expect(fs.readFileSync(path.join(dataDir, e!.path!))).toEqual(bytes);
    }
  });

  it('never overwrites a file already at the target name (a pre-placed name~<id>)', async () => {
    const one = Buffer.from('first version');
    const two = Buffer.from('second version');
    expect(await upload(client, fileMeta('v1', 'notes.txt', one, ''), one, { key: keyA.secret })).toMatchObject({ ok: true });
    const target = path.join(dataDir, 'files', 'robot-a', 'logs', 'notes.txt~v2');
    fs.writeFileSync(target, 'planted');
    expect(await upload(client, fileMeta('v2', 'notes.txt', two, ''), two, { key: keyA.secret })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    expect(fs.readFileSync(target, 'utf8')).toBe('planted');
    const e = (await listReceived(dataDir)).find((x) => x.file_id === 'v2') as { path?: string };
    expect(fs.readFileSync(path.join(dataDir, e.path!))).toEqual(two);
  });

  it('bounds metadata: 100k tags and an 8 MiB resource name are refused, naming the field', async () => {
    const c = makeCapture({ seqs: [0] });
    const tags = await upload(client, { ...captureMeta(c, ''), tags: Array.from({ length: 100_000 }, (_, i) => `t${i}`) }, c.bytes, { key: keyA.secret });
    expect(tags).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((tags as { details: string }).details).toContain('tags');
    const name = await upload(client, { ...captureMeta(c, ''), resource_name: 'n'.repeat(8 * 1024 * 1024) }, c.bytes, { key: keyA.secret });
    expect(name).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((name as { details: string }).details).toContain('resource_name');
  });

  it("viam handshake: a device key's token acts only as its part; robot-secret authenticates a device key of that part", async () => {
    const authClient = createAuthClient(`localhost:${server.port}`, grpc.credentials.createSsl(fs.readFileSync(caFile)));
    const authenticate = (entity: string, type: string, payload: string): Promise<{ token?: string; code?: number }> =>
      new Promise((resolve) => authClient.Authenticate({ entity, credentials: { type, payload } }, (err, res) => resolve(err ? { code: err.code } : { token: res!.access_token })));
    const t = await authenticate(keyA.key_id, 'api-key', keyA.secret);
    expect(t.token).toBeTruthy();
    expect(await authenticate(keyB.key_id, 'api-key', keyA.secret)).toEqual({ code: grpc.status.UNAUTHENTICATED });
    expect((await authenticate('robot-a', 'robot-secret', keyA.secret)).token).toBeTruthy();
    expect(await authenticate('robot-b', 'robot-secret', keyA.secret)).toEqual({ code: grpc.status.PERMISSION_DENIED });
    expect(await authenticate('robot-a', 'robot-secret', 'eks_0000000000000000_' + 'x'.repeat(43))).toEqual({ code: grpc.status.UNAUTHENTICATED });
    const c = makeCapture({ seqs: [0], name: 'tok' });
    expect(await upload(client, captureMeta(c, 'robot-b'), c.bytes, { key: t.token! })).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(await upload(client, captureMeta(c, 'robot-a'), c.bytes, { key: t.token! })).toMatchObject({ ok: true, res: { status: 'UPLOAD_STATUS_COMMITTED' } });
    authClient.close();
  });

  it('sees a key revoked by `edgecap keys revoke` in another process within 5 s (the key and its tokens)', async () => {
    const admin = await openKeyAdmin({ dataDir });
    const k = await admin.create('robot-c');
    await admin.close();
    expect(await health(client, k.secret)).toMatchObject({ ok: true });
    const authClient = createAuthClient(`localhost:${server.port}`, grpc.credentials.createSsl(fs.readFileSync(caFile)));
    const token = await new Promise<string>((resolve, reject) =>
      authClient.Authenticate({ entity: k.key_id, credentials: { type: 'api-key', payload: k.secret } }, (err, res) => (err ? reject(err) : resolve(res!.access_token))),
    );
    authClient.close();
    expect(await health(client, token)).toMatchObject({ ok: true });
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'revoke', k.key_id, '--data', dataDir]);
    expect(stdout).toContain(`revoked ${k.key_id}`);
    const t0 = Date.now();
    let refused = false;
    while (Date.now() - t0 < 5000) {
      const h = await health(client, k.secret);
      if (!h.ok) {
        expect(h.code).toBe(grpc.status.UNAUTHENTICATED);
        refused = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(refused).toBe(true);
    expect(await health(client, token)).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED });
    const { stdout: list } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'list', '--data', dataDir, '--json']);
    const rows = list.trim().split('\n').map((l) => JSON.parse(l) as { key_id: string; revoked: string | null });
    expect(rows.find((r) => r.key_id === k.key_id)?.revoked).toBeTruthy();
    expect(list).not.toContain(k.secret);
  });
});
