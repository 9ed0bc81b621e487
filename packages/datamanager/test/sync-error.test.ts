/**
 * What stops sync from running reaches the embedder: a `sync-error` event and
 * `stats().sync.lastError`, never only a log line (issue #15). Real TLS ingest, real files.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager, type EdgecapConfigInput } from '@edgecap/datamanager';
import { ErrorCodes } from '@edgecap/core';
import { makeDevCert, startIngestServer, type DevCert, type IngestServer } from '@edgecap/ingest';
import { waitFor } from '../../../test/helpers.js';

const tmp = (p: string) => fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-syncerr-${p}-`));
type SyncErr = { message: string; code?: string; nextRetryAt?: number };

/** The sync engine's stats (sync is enabled in every case here). */
function syncStats(dm: DataManager): { lastError?: string; uploadedFiles: number } {
  const st = dm.stats().sync;
  if (!('uploadedFiles' in st)) throw new Error('sync is not enabled');
  return st;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function config(dir: string, ingest: EdgecapConfigInput['ingest'], extra: Partial<EdgecapConfigInput> = {}): EdgecapConfigInput {
  return {
    capture_dir: path.join(dir, 'capture'),
    part_id: 'sync-error',
    maximum_capture_file_age_ms: 200,
    sync_probe_interval_ms: 100,
    ingest,
    resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] }],
    ...extra,
  };
}

describe('sync errors reach the embedder', () => {
  let cert: DevCert;
  let server: IngestServer;
  const root = tmp('root');
  beforeAll(async () => {
    cert = makeDevCert(path.join(root, 'tls'));
    server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(root, 'ingest'), tls: { certFile: cert.certFile, keyFile: cert.keyFile }, apiKeys: ['k'] });
  });
  afterAll(async () => {
    await server?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a CA file gone at run time: sync() rejects, and a sync-error and lastError name the file', async () => {
    const dir = tmp('ca-sync');
    const ca = path.join(dir, 'ca.pem');
    fs.copyFileSync(cert.caFile, ca);
    // Long interval: no scheduled round runs, so the explicit sync() is the first to make a client.
    const dm = new DataManager(config(dir, { address: server.address, ca_file: ca, api_key: 'k' }, { sync_interval_mins: 60 }));
    const errors: SyncErr[] = [];
    dm.on('sync-error', (e) => errors.push(e));
    await dm.start();
    try {
      fs.rmSync(ca);
      await expect(dm.sync()).rejects.toThrow(ca);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toContain(ca);
      expect(errors[0]!.code).toBe(ErrorCodes.CONFIG_INVALID); // the error's own code is kept
      expect(syncStats(dm).lastError).toContain(ca);
    } finally {
      await dm.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a CA file gone while the ingest is down: the scheduled probes report it (not only a log line)', async () => {
    const dir = tmp('ca-sched');
    const ca = path.join(dir, 'ca.pem');
    fs.copyFileSync(cert.caFile, ca);
    const dm = new DataManager(config(dir, { address: `127.0.0.1:${await closedPort()}`, ca_file: ca, api_key: 'k' }, { sync_interval_mins: 0.005 }));
    const errors: SyncErr[] = [];
    dm.on('sync-error', (e) => errors.push(e));
    await dm.start();
    try {
      // Every probe of the unreachable ingest makes a new client, which reads the CA file again.
      fs.rmSync(ca);
      const hit = await waitFor('a sync-error naming the CA file', () => errors.find((e) => e.message.includes(ca)), 30_000);
      expect(hit.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(typeof hit.nextRetryAt).toBe('number');
      await waitFor('lastError naming the CA file', () => syncStats(dm).lastError?.includes(ca));
    } finally {
      await dm.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('TLS material the server does not match (another CA): sync-error and lastError, nothing received', async () => {
    const dir = tmp('wrong-ca');
    const other = makeDevCert(path.join(dir, 'other-tls'));
    const dm = new DataManager(config(dir, { address: server.address, ca_file: other.caFile, api_key: 'k' }, { sync_interval_mins: 0.005 }));
    const errors: SyncErr[] = [];
    dm.on('sync-error', (e) => errors.push(e));
    await dm.start();
    try {
      const hit = await waitFor('a sync-error', () => errors[0], 30_000);
      expect(hit.message).toMatch(/unreachable|could not run/);
      expect(syncStats(dm).lastError).toBeTruthy();
      expect(syncStats(dm).uploadedFiles).toBe(0);
    } finally {
      await dm.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
