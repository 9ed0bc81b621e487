// TLS for anything not on loopback, the web servers included: the edge's status page (its
// control token, /metrics) and the ingest's data browser (an admin token that mints device keys)
// refuse to listen beyond loopback in plain text, and serve HTTPS with the given certificate.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '@edgecap/core';
import { DataManager } from '@edgecap/datamanager';
import { makeDevCert, startIngestUi } from '@edgecap/ingest';
import { tmpdir } from './helpers.js';

const root = tmpdir('web-tls');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const cert = makeDevCert(path.join(root, 'cert'));
const tls = { certFile: cert.certFile, keyFile: cert.keyFile };
const ca = fs.readFileSync(cert.caFile);

/** GET over HTTPS to 127.0.0.1:port, trusting only the dev certificate. */
function httpsGet(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: p, ca, servername: 'localhost', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** A plain-HTTP GET to the same port: a TLS server never answers it with data. */
function plainGet(port: number, p: string): Promise<number | Error> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e) => resolve(e));
  });
}

describe('web servers beyond loopback: TLS only', () => {
  it('edge status server: a non-loopback host without tls is refused (page and metrics alike); with tls it serves HTTPS, the token still required', async () => {
    const dm = new DataManager({ capture_dir: path.join(root, 'edge', 'capture'), sync_disabled: true, resources: [] });
    for (const opts of [{ host: '0.0.0.0', port: 0, token: 'sekret-token' }, { host: '0.0.0.0', port: 0, ui: false }]) {
      await expect(dm.serveStatus(opts)).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, message: expect.stringContaining('beyond loopback only over TLS') });
    }
    // a certificate that cannot be read: the option and the file are named
    await expect(dm.serveStatus({ host: '0.0.0.0', port: 0, token: 'sekret-token', tls: { ...tls, certFile: path.join(root, 'nope.pem') } })).rejects.toThrow(/tls\.certFile: cannot read .*nope\.pem/);
    const server = await dm.serveStatus({ host: '0.0.0.0', port: 0, token: 'sekret-token', tls });
    try {
      expect(server.url).toMatch(/^https:\/\//);
      expect(await httpsGet(server.port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      expect((await httpsGet(server.port, '/api/last-image?stream=x')).status).toBe(401); // off loopback every read needs the token
      expect((await httpsGet(server.port, '/api/last-image?stream=x', { 'x-edgecap-token': 'sekret-token' })).status).toBe(404);
      expect(await plainGet(server.port, '/healthz')).not.toBe(200);
    } finally {
      await server.close();
    }
    // loopback stays plain HTTP unless tls is given
    const local = await dm.serveStatus({ port: 0, ui: false });
    try {
      expect(local.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    } finally {
      await local.close();
    }
  });

  it('ingest data browser: a non-loopback host without tls is refused; with tls it serves HTTPS and the admin API needs its token', async () => {
    const dataDir = path.join(root, 'ingest');
    await expect(startIngestUi({ listen: '0.0.0.0:0', token: 'admin-token-1', storage: { dataDir } })).rejects.toMatchObject({
      code: ErrorCodes.CONFIG_INVALID,
      message: expect.stringContaining('beyond loopback only over TLS'),
    });
    const ui = await startIngestUi({ listen: '0.0.0.0:0', token: 'admin-token-1', storage: { dataDir }, tls });
    try {
      expect(ui.url).toMatch(/^https:\/\//);
      expect((await httpsGet(ui.port, '/api/machines')).status).toBe(401);
      const ok = await httpsGet(ui.port, '/api/machines', { 'x-edgecap-token': 'admin-token-1' });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toBeTypeOf('object');
      expect(await plainGet(ui.port, '/api/machines')).not.toBe(200);
    } finally {
      await ui.close();
    }
  });
});
