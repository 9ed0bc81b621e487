/**
 * Per-device keys end to end (issue #12), on both storages: `edgecap keys create` makes a key
 * for a part, `edgecap ingest` (TLS, no fleet key) accepts `edgecap run` edges that hold it —
 * over edgecap's protocol and over viam's (key id + key exchanged for a token) — and refuses an
 * edge that claims another part (nothing stored, nothing moved to failed/); `edgecap keys
 * revoke` stops the key's uploads within 5 s, without restarting the ingest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportReadings, makeDevCert, type ExportTarget } from '@edgecap/ingest';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../packages/ingest/dist/pg/cluster.js';
import { cli, freePort, runCli, tmpdir, waitFor, writeJson, type Child } from './helpers.js';
import { health, makeClient } from '../packages/ingest/test/helpers.js';

const unavailable = pgUnavailableReason();
let cluster: PgCluster | undefined;
beforeAll(async () => {
  if (!unavailable) cluster = await startPgCluster({ settings: { fsync: 'off' } });
}, 60_000);
afterAll(() => cluster?.stop());

async function countByPart(target: ExportTarget): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const r of exportReadings(target)) m.set(r.part_id, (m.get(r.part_id) ?? 0) + 1);
  return m;
}

function listFilesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

describe('fleet keys', () => {
  it('edgecap ingest --api-key A --api-key B,C (and EDGECAP_API_KEY) accepts every one of them', async () => {
    const root = tmpdir('fleet-keys');
    const port = await freePort();
    const ingest = runCli(['ingest', '--listen', `127.0.0.1:${port}`, '--insecure', '--data', path.join(root, 'ingest'), '--api-key', 'key-a', '--api-key', 'key-b,key-c'], { env: { EDGECAP_API_KEY: 'key-env' } });
    const client = makeClient(`127.0.0.1:${port}`);
    try {
      await waitFor('ingest', () => ingest.stdout.some((l) => l.startsWith('listening')) || (ingest.proc.exitCode !== null && Promise.reject(new Error(ingest.stderr.join('\n')))));
      for (const k of ['key-a', 'key-b', 'key-c', 'key-env']) expect(await health(client, k), k).toMatchObject({ ok: true });
      expect(await health(client, 'key-d')).toMatchObject({ ok: false, code: 16 });
    } finally {
      client.close();
      ingest.proc.kill('SIGTERM');
      await ingest.exited;
    }
  });
});

for (const storage of ['files', 'postgres'] as const) {
  describe(`device keys end to end (${storage})`, () => {
    it('edgecap run with a device key syncs as its part (edgecap and viam protocols); another part is refused; a revoked key stops within 5 s', async (ctx) => {
      if (storage === 'postgres' && unavailable) ctx.skip(unavailable);
      const root = tmpdir(`keys-${storage}`);
      const cert = makeDevCert(path.join(root, 'tls'));
      const store = storage === 'files' ? ['--data', path.join(root, 'ingest')] : ['--pg-url', cluster!.url];
      const target: ExportTarget = storage === 'files' ? path.join(root, 'ingest') : ({ pgUrl: cluster!.url } as ExportTarget);
      const create = async (part: string) => {
        const r = await cli(['keys', 'create', '--part', part, '--json', ...store]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { key_id: string; part_id: string; secret: string };
      };
      const a = await create(`${storage}-robot-a`);
      const v = await create(`${storage}-robot-v`);
      const port = await freePort();
      const ingest = runCli(['ingest', '--listen', `127.0.0.1:${port}`, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, ...store, ...(storage === 'postgres' ? ['--storage', 'postgres', '--data', path.join(root, 'scratch')] : [])]);
      const edges: Child[] = [];
      try {
        await waitFor('ingest', () => ingest.stdout.some((l) => l.startsWith('listening')) || (ingest.proc.exitCode !== null && Promise.reject(new Error(ingest.stderr.join('\n')))));
        const edge = (name: string, part: string, ingestCfg: Record<string, unknown>): { child: Child; capture: string } => {
          const capture = path.join(root, name, 'capture');
          const config = writeJson(path.join(root, `${name}.json`), {
            capture_dir: capture,
            part_id: part,
            sync_interval_mins: 0.005,
            maximum_capture_file_age_ms: 300,
            ingest: { address: `localhost:${port}`, ca_file: cert.caFile, ...ingestCfg },
            resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] }],
          });
          const child = runCli(['run', '--config', config]);
          edges.push(child);
          return { child, capture };
        };
        edge('a', a.part_id, { api_key: a.secret });
        edge('v', v.part_id, { api_key: v.secret, api_key_id: v.key_id, protocol: 'viam' });
        // holds robot-a's key but says it is robot-b: refused, and retried (never failed/)
        const spoof = edge('spoof', `${storage}-robot-b`, { api_key: a.secret });

        await waitFor('both honest edges synced', async () => {
          const m = await countByPart(target);
          return (m.get(a.part_id) ?? 0) > 20 && (m.get(v.part_id) ?? 0) > 20 ? m : undefined;
        }, 30_000, 250);
        const byPart = await countByPart(target);
        expect(byPart.get(`${storage}-robot-b`)).toBeUndefined();
        expect(listFilesUnder(path.join(spoof.capture, '.edgecap', 'failed'))).toEqual([]);
        expect(listFilesUnder(spoof.capture).filter((f) => f.endsWith('.capture')).length).toBeGreaterThan(0); // kept, waiting

        // Revoke a's key while its edge keeps uploading: within 5 s nothing more arrives.
        const rv = await cli(['keys', 'revoke', a.key_id, ...store]);
        expect(rv.code, rv.stderr).toBe(0);
        await new Promise((r) => setTimeout(r, 5000));
        const atCutoff = (await countByPart(target)).get(a.part_id) ?? 0;
        await new Promise((r) => setTimeout(r, 3000));
        const later = await countByPart(target);
        expect(later.get(a.part_id) ?? 0).toBe(atCutoff);
        expect(later.get(v.part_id) ?? 0).toBeGreaterThan(byPart.get(v.part_id) ?? 0); // the other key still works
      } finally {
        for (const e of edges) e.proc.kill('SIGTERM');
        await Promise.all(edges.map((e) => e.exited));
        ingest.proc.kill('SIGTERM');
        await ingest.exited;
      }
    }, 120_000);
  });
}
