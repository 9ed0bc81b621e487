/**
 * The edge's status page and its API, on node:http (`dm.serveStatus()`, `edgecap run --http`).
 *
 *   GET  /                 page (static, ./ui), /ui/* its script and style, /ui/uplot.* from node_modules
 *   GET  /events           server-sent events: one snapshot a second (history of rates on connect)
 *   GET  /api/last-image   the last reading of an image stream (?stream=kind/resource/method)
 *   POST /api/control/<a>  start-capture | stop-capture | start-sync | stop-sync | sync-now
 *                          (x-edgecap-token header = the configured token; refused otherwise)
 *   GET  /metrics          Prometheus text (the same server `edgecap run --metrics` starts)
 *   GET  /healthz          200 "ok"
 *
 * Loopback by default; a loopback server also refuses a foreign Host header (DNS rebinding).
 * Another host needs a token, which then guards every API read too. Every response carries a
 * strict Content-Security-Policy: scripts and styles only from this server, no inline code.
 */
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { EdgecapError, ErrorCodes, FAILED_DIR_NAME, failedEntries, isLoopback, logger, readTlsFiles, tokenMatches } from '@edgecap/core';
import { createMetricsRegistry } from './metrics.js';
import { LastReadings, streamKey } from './last-reading.js';
import type { CpuReport, DataManager, DataManagerStats } from './manager.js';

export interface StatusServerOptions {
  /** Default 127.0.0.1. Anything but a loopback address needs `tls`, and `token` for the page. */
  host?: string;
  /**
   * Serve HTTPS with this certificate and key (PEM files). Required off loopback: the page, its
   * token and /metrics never cross a network in plain text.
   */
  tls?: { certFile: string; keyFile: string };
  /** 0 picks a free port. */
  port: number;
  /** Required for the controls (and, off loopback, for every API read). */
  token?: string;
  /** false: only /metrics and /healthz (what `--metrics` serves). Default true. */
  ui?: boolean;
  /** Seconds of rate history kept for the plots (default 300). */
  historySeconds?: number;
}

export interface StatusServer {
  /** http(s)://host:port */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** Image types the page may show; anything else is never served as an image. */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const MAX_FAILED_LISTED = 100;
/** Bytes of a .reason sidecar read for the page (its first line is shown). */
const MAX_REASON_BYTES = 512;
/** The failed/ listing is re-read at most this often (snapshots go out every second). */
const FAILED_CACHE_MS = 5000;
const MAX_EVENTS = 30;
/** Open /events connections; more get 503. */
export const MAX_SSE_CLIENTS = 16;
/** A client this far behind (bytes queued, unread) is dropped rather than buffered without bound. */
const MAX_SSE_BACKLOG = 1024 * 1024;

/** At most MAX_FAILED_LISTED entries of failed/, each with the first line of its reason (bounded read). */
function listFailedBounded(stateDir: string): { file: string; reason: string }[] {
  const out: { file: string; reason: string }[] = [];
  const buf = Buffer.alloc(MAX_REASON_BYTES);
  for (const f of failedEntries(path.join(stateDir, FAILED_DIR_NAME))) {
    if (out.length >= MAX_FAILED_LISTED) break;
    let reason = '';
    try {
      const fd = fs.openSync(`${f}.reason`, 'r');
      try {
        reason = buf.subarray(0, fs.readSync(fd, buf, 0, MAX_REASON_BYTES, 0)).toString('utf8').split('\n')[0] ?? '';
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      /* no sidecar */
    }
    out.push({ file: path.basename(f), reason });
  }
  return out;
}

/** The Host header names this loopback server (no other site's page can reach it by DNS rebinding). */
function hostAllowed(req: http.IncomingMessage): boolean {
  const h = req.headers.host;
  if (!h) return false;
  const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.split(':')[0]!;
  return isLoopback(name);
}

const uiDir = fileURLToPath(new URL('../src/ui/', import.meta.url));
const require_ = createRequire(import.meta.url);

/** The page's files: name → [path, content type]. uPlot comes from the package's node_modules. */
function assets(): Map<string, [string, string]> {
  const uplot = path.dirname(require_.resolve('uplot/dist/uPlot.iife.min.js'));
  return new Map([
    ['/', [path.join(uiDir, 'status.html'), 'text/html; charset=utf-8']],
    ['/ui/status.js', [path.join(uiDir, 'status.js'), 'text/javascript; charset=utf-8']],
    ['/ui/status.css', [path.join(uiDir, 'status.css'), 'text/css; charset=utf-8']],
    ['/ui/uplot.js', [path.join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8']],
    ['/ui/uplot.css', [path.join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8']],
  ]);
}

interface Sample {
  t: number;
  captured: Map<string, number>;
  uploadedBytes: number;
}

type Action = 'start-capture' | 'stop-capture' | 'start-sync' | 'stop-sync' | 'sync-now';
const ACTIONS: Record<Action, (dm: DataManager) => Promise<unknown>> = {
  'start-capture': (dm) => dm.startCapture(),
  'stop-capture': (dm) => dm.stopCapture(),
  'start-sync': (dm) => dm.startSync(),
  'stop-sync': (dm) => dm.stopSync(),
  'sync-now': (dm) => dm.sync(),
};

/**
 * % of one core by thread between two DataManager.cpu() reads `sec` apart: the main thread, each
 * capture thread seen in both reads, the rest of the process (helpers: V8, libuv, sync, the
 * janitor; and a thread that restarted in between), the whole process.
 */
export function cpuSharesOf(a: CpuReport, b: CpuReport, sec: number): { thread: string; pct: number }[] {
  if (!(sec > 0)) return [];
  const us = (u: { userUs: number; systemUs: number }): number => u.userUs + u.systemUs;
  const pct = (d: number): number => Math.max(0, d) / 1e4 / sec;
  const label = (t: CpuReport['capture'][number]): string => (t.thread === 'writer' ? 'writer' : t.thread === 'shared' ? `shared collector (${t.resources.join(', ')})` : `collector ${t.resources.join(', ')}`);
  const before = new Map(a.capture.map((t) => [t.threadId, us(t)]));
  const out: { thread: string; pct: number }[] = [];
  const all = us(b.process) - us(a.process);
  let named = 0;
  if (a.main && b.main) {
    named += us(b.main) - us(a.main);
    out.push({ thread: 'main thread', pct: pct(us(b.main) - us(a.main)) });
  }
  for (const t of [...b.capture].sort((x, y) => Number(y.thread === 'writer') - Number(x.thread === 'writer'))) {
    const was = before.get(t.threadId);
    if (was === undefined) continue; // new (or restarted) since the last read
    named += us(t) - was;
    out.push({ thread: label(t), pct: pct(us(t) - was) });
  }
  out.push({ thread: 'other threads (V8, libuv, sync, janitor)', pct: pct(all - named) });
  out.push({ thread: 'whole process', pct: pct(all) });
  return out;
}

export async function serveStatus(dm: DataManager, opts: StatusServerOptions): Promise<StatusServer> {
  const host = opts.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  const ui = opts.ui !== false;
  if (!loopback && !opts.tls) {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `the status server listens beyond loopback only over TLS (asked for ${host}): give tls (edgecap run --http-tls-cert/--http-tls-key)`);
  }
  if (ui && !loopback && !opts.token) {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `the status page listens on loopback only unless a token is set (asked for ${host})`);
  }
  const tls = opts.tls ? readTlsFiles(opts.tls, 'tls') : undefined;
  const log = logger('datamanager.http');
  const reg = createMetricsRegistry(() => dm.stats(), () => dm.cpu());
  const files = ui ? assets() : new Map<string, [string, string]>();
  const keep = Math.max(10, opts.historySeconds ?? 300);
  const samples: Sample[] = [];
  const last = new LastReadings(dm.currentConfig.capture_dir);
  const events: { t: number; kind: string; text: string }[] = [];
  const clients = new Set<http.ServerResponse>();

  const note = (kind: string, text: string): void => {
    events.push({ t: Date.now(), kind, text });
    if (events.length > MAX_EVENTS) events.shift();
  };
  const listeners: [keyof import('./manager.js').DataManagerEvents, (e: never) => void][] = [
    ['sync-error', (e: { message: string }) => note('sync-error', e.message)],
    ['file-failed', (e: { path: string; reason: string }) => note('file-failed', `${path.basename(e.path)}: ${e.reason}`)],
    ['disk-warning', (e: { usage: number; captureShare: number }) => note('disk-warning', `disk ${(e.usage * 100).toFixed(1)}% used, capture dir ${(e.captureShare * 100).toFixed(1)}%`)],
    ['write-error', (e: { code: string; message: string }) => note('write-error', `${e.code}: ${e.message}`)],
  ];
  if (ui) for (const [ev, fn] of listeners) dm.on(ev, fn as never);

  const sample = (s: DataManagerStats): void => {
    const captured = new Map<string, number>();
    for (const x of s.capture.streams) captured.set(streamKey(x), x.captured);
    samples.push({ t: Date.now(), captured, uploadedBytes: s.sync.enabled ? s.sync.uploadedBytes : 0 });
    if (samples.length > keep + 1) samples.shift();
  };

  /** Rates between consecutive samples: [t seconds, per-stream rates..., upload bytes/s]. */
  const rates = (from: number): { t: number[]; streams: Record<string, number[]>; upload: number[] } => {
    const out = { t: [] as number[], streams: {} as Record<string, number[]>, upload: [] as number[] };
    const keys = new Set<string>();
    for (const s of samples) for (const k of s.captured.keys()) keys.add(k);
    for (const k of keys) out.streams[k] = [];
    for (let i = Math.max(1, from); i < samples.length; i++) {
      const a = samples[i - 1]!;
      const b = samples[i]!;
      const dt = (b.t - a.t) / 1000;
      out.t.push(b.t / 1000);
      for (const k of keys) out.streams[k]!.push(dt > 0 ? Math.max(0, ((b.captured.get(k) ?? 0) - (a.captured.get(k) ?? b.captured.get(k) ?? 0)) / dt) : 0);
      out.upload.push(dt > 0 ? Math.max(0, (b.uploadedBytes - a.uploadedBytes) / dt) : 0);
    }
    return out;
  };

  // CPU by thread over the last second (% of one core), from two DataManager.cpu() reads: read
  // while someone watches, a tick late (cpu() is async).
  let cpuPrev: { at: number; c: CpuReport } | undefined;
  let cpuShares: { thread: string; pct: number }[] = [];
  let cpuReading = false;
  const sampleCpu = (): void => {
    if (cpuReading) return;
    cpuReading = true;
    void dm
      .cpu()
      .then(
        (c) => {
          const at = performance.now();
          if (cpuPrev) cpuShares = cpuSharesOf(cpuPrev.c, c, (at - cpuPrev.at) / 1000);
          cpuPrev = { at, c };
        },
        () => undefined,
      )
      .finally(() => (cpuReading = false));
  };

  let failedCache: { at: number; list: { file: string; reason: string }[] } | undefined;
  const snapshot = (full: boolean): unknown => {
    const s = dm.stats();
    const r = rates(full ? 1 : samples.length - 1);
    if (!failedCache || Date.now() - failedCache.at > FAILED_CACHE_MS) {
      let list: { file: string; reason: string }[] = [];
      try {
        list = listFailedBounded(dm.stateDir);
      } catch {
        // no failed/ folder yet
      }
      failedCache = { at: Date.now(), list };
    }
    const failed = failedCache.list;
    return {
      t: Date.now(),
      full,
      part_id: dm.currentConfig.part_id,
      capture: {
        running: s.capture.running,
        streams: s.capture.streams.map((x) => {
          const key = streamKey(x);
          const l = last.get(key);
          const lastOut = l
            ? {
                seq: l.seq,
                time_ms: Math.floor(l.timeRequestedUs / 1000),
                mime_type: l.mimeType ?? null,
                values: l.values ?? null,
                size: l.size ?? null,
                image: l.bytes && l.mimeType && IMAGE_TYPES.has(l.mimeType) ? `/api/last-image?stream=${encodeURIComponent(key)}&seq=${l.seq}` : null,
              }
            : null;
          return { key, ...x, rate: r.streams[key]?.at(-1) ?? 0, last: lastOut };
        }),
      },
      sync: s.sync,
      failed,
      failed_total: s.sync.enabled ? s.sync.failedOnDisk : failed.length,
      janitor: s.janitor ?? null,
      recovered: s.recovered,
      events,
      cpu: cpuShares,
      rates: r,
      controls: !!opts.token,
    };
  };

  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const s = dm.stats();
    sample(s);
    if (clients.size === 0) {
      cpuPrev = undefined;
      return;
    }
    sampleCpu();
    last.poll(s.capture.streams);
    const text = `data: ${JSON.stringify(snapshot(false))}\n\n`;
    for (const c of clients) {
      // No backpressure on SSE: a reader that stopped reading is cut off, not buffered for.
      if (c.writableLength > MAX_SSE_BACKLOG) {
        clients.delete(c);
        c.destroy();
      } else c.write(text);
    }
  };
  if (ui) {
    sample(dm.stats());
    timer = setInterval(tick, 1000);
    timer.unref();
  }

  const send = (res: http.ServerResponse, code: number, body: string | Uint8Array, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { ...SECURITY_HEADERS, 'content-type': type }).end(body);
  };
  const json = (res: http.ServerResponse, code: number, v: unknown): void => send(res, code, JSON.stringify(v), 'application/json');

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    // Before anything is served, /metrics included (DNS rebinding would otherwise read it).
    if (loopback && !hostAllowed(req)) return send(res, 421, 'wrong Host for a loopback server\n');
    if (p === '/healthz' && req.method === 'GET') return send(res, 200, 'ok\n');
    if (p === '/metrics' && req.method === 'GET') {
      reg.metrics().then(
        (text) => send(res, 200, text, reg.contentType),
        (e: Error) => send(res, 500, e.message),
      );
      return;
    }
    if (!ui) return send(res, 404, 'not found\n');
    const asset = req.method === 'GET' ? files.get(p) : undefined;
    if (asset) {
      fs.readFile(asset[0], (err, buf) => (err ? send(res, 500, 'asset missing\n') : send(res, 200, buf, asset[1])));
      return;
    }
    const token = req.headers['x-edgecap-token'];
    const authorized = tokenMatches(opts.token, token);
    // Off loopback every read needs the token too, always as a header (the page reads /events
    // with fetch, not EventSource, so the token never sits in a URL or an access log).
    const readOk = loopback || authorized;
    if (p === '/events' && req.method === 'GET') {
      if (!readOk) return send(res, 401, 'token required\n');
      if (clients.size >= MAX_SSE_CLIENTS) return send(res, 503, 'too many status page connections\n');
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      last.poll(dm.stats().capture.streams);
      res.write(`retry: 1000\ndata: ${JSON.stringify(snapshot(true))}\n\n`);
      clients.add(res);
      req.on('close', () => clients.delete(res));
      return;
    }
    if (p === '/api/last-image' && req.method === 'GET') {
      if (!readOk) return send(res, 401, 'token required\n');
      const l = last.get(url.searchParams.get('stream') ?? '');
      if (!l?.bytes || !l.mimeType || !IMAGE_TYPES.has(l.mimeType)) return send(res, 404, 'no image\n');
      return send(res, 200, l.bytes, l.mimeType);
    }
    const m = /^\/api\/control\/([a-z-]+)$/.exec(p);
    if (m && req.method === 'POST') {
      if (!opts.token) return json(res, 403, { error: 'controls are off: start the page with a token (--http-token or EDGECAP_HTTP_TOKEN)' });
      if (!authorized) return json(res, 401, { error: 'wrong or missing token' });
      const action = ACTIONS[m[1] as Action];
      if (!action) return json(res, 404, { error: 'unknown action' });
      req.resume();
      note('control', m[1]!);
      action(dm).then(
        (r) => json(res, 200, { ok: true, result: r ?? null }),
        (e: Error) => json(res, 409, { error: e.message, code: (e as EdgecapError).code }),
      );
      return;
    }
    send(res, 404, 'not found\n');
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  const shown = net.isIPv6(host) ? `[${host}]` : host;
  log.info({ host, port: addr.port, ui }, 'status server listening');
  return {
    url: `${tls ? 'https' : 'http'}://${shown}:${addr.port}`,
    host,
    port: addr.port,
    async close() {
      if (timer) clearInterval(timer);
      for (const [ev, fn] of listeners) dm.off(ev, fn as never);
      for (const c of clients) c.end();
      clients.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
