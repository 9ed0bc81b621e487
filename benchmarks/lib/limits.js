// Hardware/OS limits measured in the same run as edgecap, so ratios hold on a noisy machine.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { makeDevCert } from '@edgecap/ingest';

/** Sequential write bandwidth of the filesystem holding `dir`: 1 MiB writes, optional fdatasync per 8 MiB. */
export function diskWrite(dir, { totalBytes = 512 << 20, sync = false } = {}) {
  const file = path.join(dir, `bench-disk-${process.pid}.bin`);
  const block = Buffer.alloc(1 << 20, 7);
  const fd = fs.openSync(file, 'w');
  const t0 = process.hrtime.bigint();
  for (let written = 0; written < totalBytes; written += block.length) {
    fs.writeSync(fd, block);
    if (sync && written % (8 << 20) === 0) fs.fdatasyncSync(fd);
  }
  if (sync) fs.fdatasyncSync(fd);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { mbps: totalBytes / 1e6 / sec, seconds: sec };
}

/** memcpy bandwidth: Buffer.copy of 64 MiB blocks. */
export function memcpy({ totalBytes = 4 << 30 } = {}) {
  const a = Buffer.alloc(64 << 20, 1);
  const b = Buffer.alloc(64 << 20);
  const t0 = process.hrtime.bigint();
  for (let n = 0; n < totalBytes; n += a.length) a.copy(b);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbps: totalBytes / 1e6 / sec };
}

/** Raw TLS socket throughput on loopback: one connection, 1 MiB writes, bytes counted at the server. */
export async function rawTls(certDir, { totalBytes = 1 << 30 } = {}) {
  const certs = makeDevCert(certDir);
  const server = tls.createServer({ cert: fs.readFileSync(certs.certFile), key: fs.readFileSync(certs.keyFile) });
  let received = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  server.on('secureConnection', (s) => {
    s.on('data', (d) => {
      received += d.length;
      if (received >= totalBytes) done();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const sock = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(certs.caFile), servername: 'localhost' });
  await new Promise((r) => sock.once('secureConnect', r));
  const block = Buffer.alloc(1 << 20, 3);
  const t0 = process.hrtime.bigint();
  let sent = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (sent < totalBytes) {
        sent += block.length;
        if (!sock.write(block)) return sock.once('drain', pump);
      }
      resolve();
    };
    pump();
  });
  await finished;
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  sock.destroy();
  server.close();
  return { mbps: totalBytes / 1e6 / sec };
}
