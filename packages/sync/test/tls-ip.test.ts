/**
 * Issue #15: TLS to an ingest addressed by IP.
 *
 * grpc-js 1.14.7 put the target host into `tls.connect({ servername })` even when it is an IP
 * literal: Node 26 refuses that (ERR_INVALID_ARG_VALUE), Node 22/24 warn (DEP0123). Our patch
 * (patches/@grpc__grpc-js@1.14.7.patch) sends SNI only for host names. What must hold on every
 * supported Node:
 *  - an IP address connects, with no SNI and no DEP0123 warning;
 *  - the certificate is still checked: against the IP (a cert without that IP in its SAN is
 *    refused), or against `serverName` when one is set (SNI then carries that name).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDevCert } from '@edgecap/ingest';
import { makeClient, type IngestTarget } from '../src/target.js';
import { TestServer, hasOpenssl, tmpDir } from './helpers.js';

const ipv6 = Object.values(os.networkInterfaces())
  .flat()
  .some((i) => i?.address === '::1');

function health(t: IngestTarget): Promise<{ ok: true } | { ok: false; code: number; details: string }> {
  const client = makeClient(t, 0);
  return new Promise((resolve) => {
    client.Health({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => {
      client.close();
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true });
    });
  });
}

/** A bare TLS server that records the SNI each client sent (false: none) and hangs up. */
async function sniRecorder(cert: { certFile: string; keyFile: string }, host: string): Promise<{ port: number; seen: (string | false)[]; close(): Promise<void> }> {
  const seen: (string | false)[] = [];
  const server = tls.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile), ALPNProtocols: ['h2'] }, (s) => {
    seen.push(s.servername ?? false); // typed string | false | null: none either way
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.skipIf(!hasOpenssl())('TLS to an IP address (#15)', () => {
  let dir: string;
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  const servers: TestServer[] = [];

  async function serve(hosts: string[], name: string): Promise<{ server: TestServer; caFile: string }> {
    const c = makeDevCert(path.join(dir, name), hosts);
    const server = new TestServer({ tls: { cert: fs.readFileSync(c.certFile), key: fs.readFileSync(c.keyFile) } });
    await server.start();
    servers.push(server);
    return { server, caFile: c.caFile };
  }

  beforeAll(() => {
    dir = tmpDir('tls-ip');
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    for (const s of servers) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('connects to an IP whose address is in the certificate, without SNI or a DEP0123 warning', async () => {
    const { server, caFile } = await serve(['127.0.0.1'], 'ip-only');
    expect(await health({ address: `127.0.0.1:${server.port}`, caFile })).toEqual({ ok: true });
    expect(server.hits.Health).toBe(1);
    expect(warnings.filter((w) => /DEP0123|ServerName/.test(`${(w as { code?: string }).code} ${w.message}`))).toEqual([]);
  });

  it('refuses an IP that the certificate does not name (the IP is checked, not skipped)', async () => {
    const { server, caFile } = await serve(['localhost', '10.1.2.3'], 'no-ip');
    const r = await health({ address: `127.0.0.1:${server.port}`, caFile });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.details).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    }
    expect(server.hits.Health).toBe(0);
  });

  it('checks serverName instead of the IP when one is set, and sends it as SNI', async () => {
    const named = await serve(['ingest.example'], 'named');
    expect(await health({ address: `127.0.0.1:${named.server.port}`, caFile: named.caFile, serverName: 'ingest.example' })).toEqual({ ok: true });
    // the right IP is no excuse for the wrong name
    const wrong = await serve(['other.example', '127.0.0.1'], 'wrong-name');
    const r = await health({ address: `127.0.0.1:${wrong.server.port}`, caFile: wrong.caFile, serverName: 'ingest.example' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.details).toMatch(/Host: ingest\.example\. is not in the cert's altnames/);
    expect(wrong.server.hits.Health).toBe(0);
  });

  it('an IP as serverName is checked against the certificate and not sent as SNI', async () => {
    const { server, caFile } = await serve(['192.0.2.7'], 'ip-override');
    expect(await health({ address: `127.0.0.1:${server.port}`, caFile, serverName: '192.0.2.7' })).toEqual({ ok: true });
    const r = await health({ address: `127.0.0.1:${server.port}`, caFile, serverName: '192.0.2.8' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.details).toMatch(/IP: 192\.0\.2\.8 is not in the cert's list/);
  });

  it('SNI: none for an IP (v4, and v6 where available), the name for a host name or serverName', async () => {
    const c = makeDevCert(path.join(dir, 'sni'), ['localhost', '127.0.0.1', '::1']);
    const cases: [string, string, Partial<IngestTarget>, string | false][] = [
      ['127.0.0.1', '127.0.0.1', {}, false],
      ['127.0.0.1', 'localhost', {}, 'localhost'],
      ['127.0.0.1', '127.0.0.1', { serverName: 'localhost' }, 'localhost'],
      ['127.0.0.1', '127.0.0.1', { serverName: '127.0.0.1' }, false],
    ];
    if (ipv6) cases.push(['::1', '[::1]', {}, false]);
    for (const [listen, host, extra, sni] of cases) {
      const rec = await sniRecorder(c, listen);
      try {
        const r = await health({ address: `${host}:${rec.port}`, caFile: c.caFile, ...extra });
        expect(r.ok).toBe(false); // the recorder hangs up: only the handshake matters here
        expect(rec.seen[0], `${host} ${JSON.stringify(extra)}`).toBe(sni);
      } finally {
        await rec.close();
      }
    }
  });
});
