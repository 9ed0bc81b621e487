import http from 'node:http';
import { DataManager, createMetricsRegistry, type DataManagerStats } from '@edgecap/datamanager';
import { fmtBytes, fmtCount } from './util.js';

export function statusLine(s: DataManagerStats, prev: DataManagerStats | undefined, dtSec: number): string {
  const captured = s.capture.streams.reduce((a, x) => a + x.captured, 0);
  const prevCaptured = prev?.capture.streams.reduce((a, x) => a + x.captured, 0) ?? captured;
  const dropped = s.capture.streams.reduce((a, x) => a + x.dropped + x.droppedOnWriteError, 0);
  const rate = dtSec > 0 ? (captured - prevCaptured) / dtSec : 0;
  const sync = s.sync.enabled ? s.sync : undefined;
  const parts = [
    `captured ${fmtCount(captured)} (${fmtCount(Math.round(rate))}/s)`,
    `dropped ${fmtCount(dropped)}`,
    sync ? `synced ${fmtCount(sync.uploadedFiles)} files / ${fmtBytes(sync.uploadedBytes)}` : 'sync off',
    sync ? `pending ${sync.pendingFiles} files` : '',
    sync?.lastError ? `last error: ${sync.lastError}` : '',
  ];
  return parts.filter(Boolean).join(' | ');
}

/** Serve Prometheus metrics on 127.0.0.1:port (or host:port). */
export function serveMetrics(dm: DataManager, listen: string): http.Server {
  const reg = createMetricsRegistry(() => dm.stats());
  const [host, port] = listen.includes(':') ? [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))] : ['127.0.0.1', Number(listen)];
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    reg.metrics().then(
      (text) => res.writeHead(200, { 'content-type': reg.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(e.message),
    );
  });
  server.listen(port, host);
  return server;
}

/** `edgecap run --config FILE`: capture + sync until SIGINT/SIGTERM, then a clean stop. */
export async function run(configFile: string, opts: { metrics?: string }, stop: Promise<NodeJS.Signals>, err: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  const dm = DataManager.fromFile(configFile);
  // A worker that dies is reported, not fatal: the rest of the pipeline keeps running.
  dm.on('error', (e) => err.write(`edgecap: ${e.message}\n`));
  await dm.start();
  const metrics = opts.metrics ? serveMetrics(dm, opts.metrics) : undefined;
  let prev: DataManagerStats | undefined;
  let last = Date.now();
  const tick = setInterval(() => {
    const s = dm.stats();
    const now = Date.now();
    const line = statusLine(s, prev, (now - last) / 1000);
    prev = s;
    last = now;
    if (err.isTTY) err.write(`\r\x1b[2K${line}`);
  }, 1000);
  const logTick = err.isTTY ? undefined : setInterval(() => err.write(`${statusLine(dm.stats(), undefined, 0)}\n`), 10_000);
  const sig = await stop;
  clearInterval(tick);
  if (logTick) clearInterval(logTick);
  if (err.isTTY) err.write('\n');
  err.write(`edgecap: ${sig} received, stopping (flushing files, then one last sync round)...\n`);
  const syncStats = dm.stats().sync;
  await dm.stop();
  metrics?.close();
  // Final counts: stop() has flushed and closed every file.
  const streams = dm.stats().capture.streams;
  const flushed = streams.reduce((a, x) => a + x.captured - x.droppedOnWriteError, 0);
  const ringDrops = streams.reduce((a, x) => a + x.dropped, 0);
  const writeDrops = streams.reduce((a, x) => a + x.droppedOnWriteError, 0);
  const final = dm.stats().stopped;
  const atStop = final ? `; at stop ${final.synced} synced, ${final.left} left for next time${final.timedOut ? ' (stop_sync_timeout_ms reached)' : ''}` : '';
  const synced = syncStats.enabled ? `${syncStats.uploadedFiles} files synced before stop${atStop}` : 'sync was off';
  err.write(`edgecap: stopped; ${flushed} readings flushed to disk, ${ringDrops} dropped (ring full), ${writeDrops} dropped (write errors), ${synced}\n`);
  return 0;
}
