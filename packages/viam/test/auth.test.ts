/**
 * viam's auth handshake (proto.rpc.v1.AuthService): tokens issued and verified; the client's
 * token cache against a real gRPC server (one Authenticate for concurrent callers, renewal
 * before expiry, a new one after a refusal); and the SyncEngine in viam mode with
 * ingest.api_key_id against our TLS ingest: uploads ride on tokens, a wrong key is a clear
 * UNAUTHENTICATED sync error and nothing is deleted.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { encodeFileStart, FrameEncoder, FrameType, encodeFrame } from '@edgecap/format';
import { SyncEngine, type SyncErrorEvent } from '@edgecap/sync';
import { AccessTokens, authServiceDefinition, authServiceHandlers, createAuthClient, issueAccessToken, jwtExpiryMs, verifyAccessToken } from '@edgecap/viam';
import { API_KEY, allReadings, tlsIngestFixture } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('access tokens', () => {
  it('verify only unexpired tokens signed with a configured key', () => {
    const now = 1_800_000_000_000;
    const t = issueAccessToken('key-id', 'secret-1', 60_000, now);
    expect(jwtExpiryMs(t)).toBe(now + 60_000);
    expect(verifyAccessToken(t, ['other', 'secret-1'], now + 1000)).toBe(true);
    expect(verifyAccessToken(t, ['other'], now + 1000)).toBe(false);
    expect(verifyAccessToken(t, ['secret-1'], now + 60_000)).toBe(false); // expired
    const [h, p, s] = t.split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'key-id', exp: (now + 3_600_000) / 1000 })).toString('base64url');
    expect(verifyAccessToken(`${h}.${forged}.${s}`, ['secret-1'], now + 1000)).toBe(false); // payload changed
    expect(verifyAccessToken(`${h}.${p}`, ['secret-1'], now)).toBe(false);
    expect(verifyAccessToken('secret-1', ['secret-1'], now)).toBe(false);
  });

  it('AccessTokens: one Authenticate for concurrent callers, renewed before expiry and after a refusal', async () => {
    const calls: { entity: string; ok: boolean }[] = [];
    const server = new grpc.Server();
    server.addService(authServiceDefinition(), authServiceHandlers({ authenticate: (_e, _t, s) => (s === 'secret-1' ? { signWith: s } : undefined), ttlMs: 2500, onAuthenticate: (entity, ok) => calls.push({ entity, ok }) }));
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const address = `127.0.0.1:${port}`;
    const client = createAuthClient(address, grpc.credentials.createInsecure());
    const tokens = new AccessTokens();
    try {
      const got = await Promise.all([1, 2, 3].map(() => tokens.get(client, address, 'key-id', 'secret-1', 5000)));
      expect(new Set(got).size).toBe(1);
      expect(calls).toEqual([{ entity: 'key-id', ok: true }]);
      expect(verifyAccessToken(got[0]!, ['secret-1'])).toBe(true);
      expect(await tokens.get(client, address, 'key-id', 'secret-1', 5000)).toBe(got[0]); // cached
      // JWT exp has 1 s resolution: 1.5-2.5 s of life; renewed once past half of it
      await sleep(1400);
      const renewed = await tokens.get(client, address, 'key-id', 'secret-1', 5000);
      expect(calls).toHaveLength(2);
      tokens.invalidate(address, 'key-id');
      await tokens.get(client, address, 'key-id', 'secret-1', 5000);
      expect(calls).toHaveLength(3);
      expect(renewed).not.toBe('');
      const refused = await tokens.get(client, address, 'key-id', 'wrong', 5000).catch((e: grpc.ServiceError) => e);
      expect(refused).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'invalid API key' });
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

describe('SyncEngine, protocol viam, with ingest.api_key_id', () => {
  const ing = tlsIngestFixture('auth', { accessTokenTtlMs: 1500 });

  function capture(captureDir: string, name: string, n: number): string {
    const d = path.join(captureDir, 'sensor', name, 'Readings');
    fs.mkdirSync(d, { recursive: true });
    const { bytes } = encodeFileStart({ kind: 'sensor', name, method: 'Readings', type: 'tabular', tags: [], start_us: 1_700_000_000_000_000 });
    const enc = new FrameEncoder();
    const frames = Array.from({ length: n }, (_, i) => encodeFrame(FrameType.READING, enc.readingPayload(i, 1_700_000_000_000_000 + i, 1_700_000_000_000_001 + i, { v: i })));
    const p = path.join(d, `${name}.capture`);
    fs.writeFileSync(p, Buffer.concat([bytes, ...frames]));
    return p;
  }

  const engineFor = (sub: string, apiKey: string) =>
    new SyncEngine({
      captureDir: path.join(ing.dir, sub, 'capture'),
      stateDir: path.join(ing.dir, sub, 'state'),
      additionalSyncPaths: [],
      fileLastModifiedMs: 0,
      intervalMs: 60_000,
      threads: 1,
      partId: 'part-auth',
      tags: [],
      ingest: { address: `127.0.0.1:${ing.server.port}`, caFile: ing.caFile, serverName: 'localhost', apiKey, apiKeyId: 'edge-key-1', protocol: 'viam' },
    });

  it('uploads on access tokens, also after the first one expired', async () => {
    const engine = engineFor('ok', API_KEY);
    try {
      const a = capture(path.join(ing.dir, 'ok', 'capture'), 'a', 3);
      expect((await engine.syncNow()).uploaded).toBe(1);
      expect(fs.existsSync(a)).toBe(false);
      await sleep(1600); // the server's 1.5 s token has expired
      const b = capture(path.join(ing.dir, 'ok', 'capture'), 'b', 2);
      const r = await engine.syncNow();
      expect(r.errors).toEqual([]);
      expect(r.uploaded).toBe(1);
      expect(fs.existsSync(b)).toBe(false);
    } finally {
      await engine.stop();
    }
    const readings = await allReadings(ing.dataDir);
    expect(readings.filter((x) => x.part_id === 'part-auth').map((x) => `${x.resource}:${x.seq}`).sort()).toEqual(['a:0', 'a:1', 'a:2', 'b:0', 'b:1']);
  });

  it('a wrong key: UNAUTHENTICATED sync error naming the key id, file kept', async () => {
    const engine = engineFor('bad', 'not-the-key');
    const errors: SyncErrorEvent[] = [];
    engine.on('sync-error', (e: SyncErrorEvent) => errors.push(e));
    try {
      const f = capture(path.join(ing.dir, 'bad', 'capture'), 'c', 1);
      const r = await engine.syncNow();
      expect(r.uploaded).toBe(0);
      expect(fs.existsSync(f)).toBe(true);
      expect(errors[0]?.code).toBe('EDGECAP_ERR_UNAUTHENTICATED');
      expect(errors[0]?.message).toMatch(/Authenticate as edge-key-1 failed: invalid API key/);
    } finally {
      await engine.stop();
    }
  });
});
