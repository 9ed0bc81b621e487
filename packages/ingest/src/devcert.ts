import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { EdgecapError, ErrorCodes } from '@edgecap/core';

export interface DevCert {
  certFile: string;
  keyFile: string;
  /** What a client trusts: the self-signed certificate itself. */
  caFile: string;
}

/**
 * A self-signed certificate (EC P-256, 1 year) for development and tests, valid for
 * `hosts` (default localhost and 127.0.0.1), made with the system `openssl`.
 */
export function makeDevCert(dir: string, hosts: string[] = ['localhost', '127.0.0.1']): DevCert {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const caFile = path.join(dir, 'ca.pem');
  const san = hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365', '-subj', `/CN=${hosts[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`, '-keyout', keyFile, '-out', certFile],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `cannot make a dev certificate with openssl: ${stderr || (e as Error).message}`, { cause: e });
  }
  fs.chmodSync(keyFile, 0o600);
  fs.copyFileSync(certFile, caFile);
  return { certFile, keyFile, caFile };
}
