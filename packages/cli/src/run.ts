import { randomBytes } from 'node:crypto';
import { isLoopback, type TlsFiles } from '@edgecap/core';
import { DataManager, type DataManagerStats, type StatusServer } from '@edgecap/datamanager';
import { fmtBytes, fmtCount, UsageError } from './util.js';

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

/** `[host:]port` (IPv6 as [::1]:port); the host defaults to 127.0.0.1. */
export function parseHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = i < 0 ? '127.0.0.1' : listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(i < 0 ? listen : listen.slice(i + 1)) };
}

/** Serve Prometheus metrics (and /healthz) on 127.0.0.1:port or host:port (beyond loopback over TLS): the status server without its page. */
export function serveMetrics(dm: DataManager, listen: string, tls?: TlsFiles): Promise<StatusServer> {
  return dm.serveStatus({ ...parseHostPort(listen), ui: false, ...(tls ? { tls } : {}) });
}

/** `edgecap run --config FILE`: capture + sync until SIGINT/SIGTERM, then a clean stop. */
export async function run(configFile: string, opts: { metrics?: string; http?: string; httpToken?: string; tls?: TlsFiles }, stop: Promise<NodeJS.Signals>, err: NodeJS.WritableStream & { isTTY?: boolean }): Promise<number> {
  // Refused before anything starts: nothing listens beyond loopback in plain text.
  for (const [flag, listen] of [['--metrics', opts.metrics], ['--http', opts.http]] as const) {
    if (listen && !opts.tls && !isLoopback(parseHostPort(listen).host)) throw new UsageError('--http-tls-cert', `${flag} ${listen} is beyond loopback: give --http-tls-cert and --http-tls-key (TLS)`);
  }
  const dm = DataManager.fromFile(configFile);
  // A worker that dies is reported, not fatal: the rest of the pipeline keeps running.
  dm.on('error', (e) => err.write(`edgecap: ${e.message}\n`));
  await dm.start();
  // The status page's controls need a token: the one given, else a fresh one printed once.
  const httpToken = opts.httpToken ?? process.env.EDGECAP_HTTP_TOKEN ?? (opts.http ? randomBytes(18).toString('base64url') : undefined);
  let metrics: StatusServer | undefined;
  let page: StatusServer | undefined;
  try {
    metrics = opts.metrics ? await serveMetrics(dm, opts.metrics, opts.tls) : undefined;
    page = opts.http ? await dm.serveStatus({ ...parseHostPort(opts.http), ...(httpToken ? { token: httpToken } : {}), ...(opts.tls ? { tls: opts.tls } : {}) }) : undefined;
  } catch (e) {
    // a port taken, a certificate unreadable: stop what started, or its threads keep the process up
    await metrics?.close();
    await dm.stop();
    throw e;
  }
  if (page) err.write(`edgecap: status page at ${page.url}/#token=${httpToken}\n`);
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
  await metrics?.close();
  await page?.close();
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
