// Hardware/OS limits measured in the same run as edgecap, so ratios hold on a noisy machine.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeDevCert } from '@edgecap/ingest';

const MiB = 1024 * 1024;

/**
 * Sequential write bandwidth of the filesystem holding `dir`: 1 MiB writes; with `sync`,
 * fdatasync after every 8 MiB and at the end (without: the page cache's speed, then one final
 * fdatasync is NOT included — that is what "without fdatasync" means).
 */
export function diskWrite({ dir, totalBytes = 512 * MiB, sync = false }) {
  const file = path.join(dir, `bench-disk-${process.pid}-${sync ? 's' : 'n'}.bin`);
  const block = Buffer.alloc(MiB, 7);
  const fd = fs.openSync(file, 'w');
  const t0 = process.hrtime.bigint();
  let written = 0;
  while (written < totalBytes) {
    fs.writeSync(fd, block);
    written += block.length;
    if (sync && written % (8 * MiB) === 0) fs.fdatasyncSync(fd);
  }
  if (sync) fs.fdatasyncSync(fd);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { mbps: written / 1e6 / sec, seconds: sec, bytes: written };
}

/** memcpy bandwidth: Buffer.copy between two 64 MiB blocks (larger than any cache). */
export function memcpy({ totalBytes = 4 * 1024 * MiB } = {}) {
  const a = Buffer.alloc(64 * MiB, 1);
  const b = Buffer.alloc(64 * MiB);
  a.copy(b); // fault the pages in before timing
  const t0 = process.hrtime.bigint();
  let n = 0;
  while (n < totalBytes) {
    a.copy(b);
    n += a.length;
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbps: n / 1e6 / sec, seconds: sec, bytes: n };
}

/**
 * Raw TLS socket throughput on loopback: one connection, 1 MiB writes from this process to a
 * sink in another process (as with sync: client and server on different cores). The clock stops
 * when the sink has received every byte and said so.
 */
export async function rawTls({ certDir, totalBytes = 1024 * MiB }) {
  const certs = fs.existsSync(path.join(certDir, 'cert.pem'))
    ? { certFile: path.join(certDir, 'cert.pem'), keyFile: path.join(certDir, 'key.pem'), caFile: path.join(certDir, 'ca.pem') }
    : makeDevCert(certDir);
  const sink = fork(fileURLToPath(import.meta.url), ['--tls-sink', certs.certFile, certs.keyFile, String(totalBytes)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise((resolve, reject) => {
      sink.once('message', (m) => resolve(m.port));
      sink.once('exit', (c) => reject(new Error(`TLS sink exited ${c}`)));
    });
    const sock = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(certs.caFile), servername: 'localhost' });
    await new Promise((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
    });
    const ack = new Promise((resolve, reject) => {
      sock.once('data', resolve);
      sock.once('error', reject);
    });
    const block = Buffer.alloc(MiB, 3);
    const t0 = process.hrtime.bigint();
    let sent = 0;
    await new Promise((resolve) => {
      const pump = () => {
        while (sent < totalBytes) {
          sent += block.length;
          if (!sock.write(block)) return void sock.once('drain', pump);
        }
        resolve();
      };
      pump();
    });
    await ack;
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    sock.destroy();
    return { mbps: sent / 1e6 / sec, seconds: sec, bytes: sent, cipher: sock.getCipher()?.name ?? null, protocol: sock.getProtocol?.() ?? null };
  } finally {
    sink.kill();
  }
}

if (process.argv[2] === '--tls-sink') {
  const [certFile, keyFile, total] = process.argv.slice(3);
  const want = Number(total);
  const server = tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, (s) => {
    let received = 0;
    s.on('data', (d) => {
      received += d.length;
      if (received >= want) s.write('k');
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('disconnect', () => process.exit(0));
}
