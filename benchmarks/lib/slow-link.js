// Slow-link benchmarks (issue #16): the real SyncEngine (piscina threads, gRPC over TLS) to a real
// ingest server through a throttling TCP proxy. (1) One big capture file over a slow link
// completes: wall time against the ideal size / rate. (2) sync_max_bytes_per_second over an
// unthrottled link: bytes the link carried over a measured span, as a ratio to the cap.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startIngestServer } from '@edgecap/ingest';
import { SyncEngine } from '@edgecap/sync';
import { makeBacklog } from './sync.js';

const API_KEY = 'bench-key';

/** A TCP proxy whose client→server direction is one token bucket (bytes/s, 50 ms deep); 0 = unthrottled. */
async function throttledProxy(targetPort, rate) {
  let tokens = 0;
  let last = performance.now();
  const depth = Math.max(1460, rate * 0.05);
  let forwarded = 0;
  const sockets = new Set();
  const server = net.createServer((a) => {
    const b = net.connect(targetPort, '127.0.0.1');
    sockets.add(a).add(b);
    let held;
    let timer;
    const pump = () => {
      while (held && !timer) {
        let n = held.length;
        if (rate > 0) {
          const now = performance.now();
          tokens = Math.min(depth, tokens + ((now - last) * rate) / 1000);
          last = now;
          n = Math.min(n, Math.floor(tokens));
          if (n === 0) {
            timer = setTimeout(() => ((timer = undefined), pump()), Math.max(1, Math.ceil(((Math.min(held.length, depth) - tokens) * 1000) / rate)));
            break;
          }
          tokens -= n;
        }
        forwarded += n;
        b.write(held.subarray(0, n));
        held = n === held.length ? undefined : held.subarray(n);
      }
      if (held) a.pause();
      else a.resume();
    };
    a.on('data', (d) => ((held = held ? Buffer.concat([held, d]) : d), pump()));
    b.pipe(a);
    const end = () => (clearTimeout(timer), a.destroy(), b.destroy(), sockets.delete(a), sockets.delete(b));
    a.on('error', end).on('close', end);
    b.on('error', end).on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    get forwarded() {
      return forwarded;
    },
    close: () => new Promise((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))),
  };
}

async function rig(dir, certDir, rate, extra) {
  fs.rmSync(dir, { recursive: true, force: true });
  const captureDir = path.join(dir, 'capture');
  fs.mkdirSync(captureDir, { recursive: true });
  const ingest = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'ingest'), tls: { certFile: path.join(certDir, 'cert.pem'), keyFile: path.join(certDir, 'key.pem') }, apiKeys: [API_KEY] });
  const proxy = await throttledProxy(ingest.port, rate);
  const engine = new SyncEngine({
    captureDir,
    stateDir: path.join(dir, 'state'),
    additionalSyncPaths: [],
    fileLastModifiedMs: 0,
    intervalMs: 3_600_000,
    threads: 2,
    partId: 'bench',
    tags: [],
    ingest: { address: `localhost:${proxy.port}`, caFile: path.join(certDir, 'cert.pem'), apiKey: API_KEY },
    backoff: { initialMs: 100, maxMs: 1000 },
    ...extra,
  });
  const errors = [];
  engine.on('sync-error', (e) => errors.push(e.message));
  const remaining = () => fs.readdirSync(captureDir, { recursive: true }).filter((f) => String(f).endsWith('.capture')).length;
  return {
    captureDir, engine, proxy, errors, remaining,
    async close() {
      await engine.stop();
      await proxy.close();
      await ingest.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One file of `fileBytes` through a link of `rate` B/s: completes? wall time vs size / rate. */
export async function slowFile({ dir, certDir, fileBytes, rate, giveUpSec }) {
  const r = await rig(dir, certDir, rate, {});
  try {
    const made = makeBacklog(r.captureDir, { files: 1, fileBytes, streams: 1 });
    const t0 = performance.now();
    const giveUpAt = t0 + giveUpSec * 1000;
    let committed = 0;
    r.engine.on('file-synced', (e) => e.status === 'committed' && committed++);
    while (r.remaining() > 0 && performance.now() < giveUpAt) {
      await r.engine.syncNow();
      if (r.remaining() > 0) await new Promise((res) => setTimeout(res, 200));
    }
    const seconds = (performance.now() - t0) / 1000;
    const ideal = made.bytes / rate;
    return { bytes: made.bytes, rate, completed: r.remaining() === 0, committed, seconds, idealSec: ideal, ratio: seconds / ideal, errors: r.errors.length, firstError: r.errors[0] };
  } finally {
    await r.close();
  }
}

/** sync_max_bytes_per_second = `cap` over an unthrottled link: bytes carried over `seconds` / cap. */
export async function bandwidthCap({ dir, certDir, cap, seconds }) {
  const r = await rig(dir, certDir, 0, { maxBytesPerSecond: cap });
  try {
    // Backlog for 1.5× the span in 256 KiB files (many uploads in flight over both threads).
    const fileBytes = 256 * 1024;
    makeBacklog(r.captureDir, { files: Math.ceil((cap * seconds * 1.5) / fileBytes), fileBytes, streams: 4 });
    let stop = false;
    const loop = (async () => {
      while (!stop && r.remaining() > 0) await r.engine.syncNow();
    })();
    // Start the span once a second's worth has gone (threads and TLS set up), then measure.
    while (r.proxy.forwarded < cap) await new Promise((res) => setTimeout(res, 20));
    const b0 = r.proxy.forwarded;
    const t0 = performance.now();
    await new Promise((res) => setTimeout(res, seconds * 1000));
    const bytes = r.proxy.forwarded - b0;
    const span = (performance.now() - t0) / 1000;
    stop = true;
    await r.engine.stop();
    await loop.catch(() => undefined);
    const measured = bytes / span;
    return { cap, seconds: span, bytes, bytesPerSec: measured, ratio: measured / cap, backlogLeft: r.remaining(), errors: r.errors.length };
  } finally {
    await r.close();
  }
}
