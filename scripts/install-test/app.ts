/**
 * A tiny embedding app, as a user writes it against the installed `edgecap` package: a custom
 * module resource and a simulated sensor, captured and synced over TLS to an ingest server
 * started from the same package on 127.0.0.1 (an IP address: no SNI, certificate checked against
 * the IP). Exits 0 only when every captured reading was received exactly once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataManager, exportReadings, makeDevCert, startIngestServer, type EdgecapConfigInput } from 'edgecap';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-embed-'));
const cert = makeDevCert(path.join(root, 'tls'), ['127.0.0.1']);
const server = await startIngestServer({
  listen: '127.0.0.1:0',
  dataDir: path.join(root, 'ingest'),
  tls: { certFile: cert.certFile, keyFile: cert.keyFile },
  apiKeys: ['dev-key'],
});

const config: EdgecapConfigInput = {
  capture_dir: path.join(root, 'capture'),
  part_id: 'embedded-1',
  sync_interval_mins: 0.01,
  maximum_capture_file_age_ms: 500,
  ingest: { address: server.address, ca_file: cert.caFile, api_key: 'dev-key' },
  resources: [
    { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] },
    { name: 'mine', module: path.join(here, 'my-sensor.js'), attributes: { scale: 2 }, capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] },
  ],
};
const dm = new DataManager(config);
const errors: string[] = [];
dm.on('sync-error', (e) => errors.push(e.message));
await dm.start();
await new Promise((r) => setTimeout(r, 3000));
await dm.stopCapture();
for (let i = 0; i < 20; i++) {
  const r = await dm.sync();
  if (r.uploaded + r.alreadyHad === 0 && r.deferred === 0) break;
}
const streams = dm.stats().capture.streams;
await dm.stop();

const received = new Map<string, number>();
for await (const r of exportReadings(path.join(root, 'ingest'))) {
  received.set(`${r.resource}/${r.method}`, (received.get(`${r.resource}/${r.method}`) ?? 0) + 1);
}
await server.close();

let ok = streams.length === 2 && errors.length === 0;
for (const s of streams) {
  const got = received.get(`${s.resource}/${s.method}`) ?? 0;
  const want = s.captured - s.droppedOnWriteError;
  console.log(`${s.resource}/${s.method}: captured ${want}, received ${got}`);
  ok &&= want > 0 && got === want;
}
if (errors.length > 0) console.log(`sync errors: ${errors.join('; ')}`);
console.log(ok ? 'OK: captured = received' : 'MISMATCH');
fs.rmSync(root, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
