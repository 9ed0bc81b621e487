/**
 * The ingest's data browser (`edgecap ingest --ui [HOST:]PORT`): a separate HTTP(S) port, off
 * by default, with its own admin token; beyond loopback only over TLS (the ingest's certificate). The page is static (./static, uPlot from
 * node_modules); every /api call needs `x-edgecap-token: <admin token>`.
 *
 *   GET  /api/machines                       parts → streams (files, readings, seq range)
 *   GET  /api/fields|series|readings|images  one stream (?part&kind&resource&method)
 *   GET  /api/image?part&file&seq            an image reading's bytes (image types only)
 *   GET  /api/files?part  /api/download?part&file   arbitrary files, the bytes as an attachment
 *   GET  /api/gaps                           the completeness report, bounded per stream
 *   GET  /api/keys   POST /api/keys {part_id}   POST /api/keys/revoke {key_id}
 *
 * Names, tags, file names and labels here come from clients: the page writes them as text
 * only, and a strict Content-Security-Policy allows no inline script at all.
 */
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { EdgecapError, ErrorCodes, isLoopback, logger, readTlsFiles, tokenMatches, type TlsFiles } from '@edgecap/core';
import { gapReportStreams } from '../report.js';
import { checkPartId, isKeyId } from '../keys.js';
import { FileStorage, acquireFileStorage, releaseFileStorage, type IngestStorage } from '../storage.js';
import { PgStorage } from '../pg/storage.js';
import { parseListen } from '../settings.js';
import { DEFAULT_UI_LIMITS, UiFileTooLargeError, filesPage, imageBytes, imagesPage, listMachines, numericFields, readingsPage, series, type StreamRef, type UiLimits } from './query.js';

export interface IngestUiOptions {
  /** HOST:PORT ([::1]:PORT); a bare PORT means 127.0.0.1. */
  listen: string;
  /** An open storage (left open), or where to open one: the embedded data dir or PostgreSQL. */
  storage: IngestStorage | { dataDir: string } | { pgUrl: string };
  /** The admin token every API call must present. */
  token: string;
  /**
   * Serve HTTPS with this certificate and key (`edgecap ingest` passes the server's own).
   * Required beyond loopback: the admin token mints device keys and must never cross a network
   * in plain text.
   */
  tls?: TlsFiles;
  limits?: Partial<UiLimits>;
}

export interface IngestUi {
  url: string;
  port: number;
  close(): Promise<void>;
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const HEADERS = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY', 'cache-control': 'no-store' };
const MAX_BODY = 4096;
const MAX_GAP_STREAMS = 500;
const GAP_ENTRIES = 300;
/** One gap report is shared by the page loads of this many ms (it scans the whole index). */
const GAP_CACHE_MS = 5000;
/** Decoding requests (fields, series, readings, images, image) run at most this many at once... */
const MAX_DECODES = 2;
/** ...and at most this many wait; the rest get 503. */
const MAX_DECODE_WAITERS = 32;
/** A store without a byte stream (PostgreSQL concatenates chunks) serves downloads up to this size. */
export const MAX_BUFFERED_DOWNLOAD = 64 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const staticDir = fileURLToPath(new URL('../../src/ui/static/', import.meta.url));
const require_ = createRequire(import.meta.url);

function assets(): Map<string, [string, string]> {
  const uplot = path.dirname(require_.resolve('uplot/dist/uPlot.iife.min.js'));
  return new Map([
    ['/', [path.join(staticDir, 'ingest.html'), 'text/html; charset=utf-8']],
    ['/ui/ingest.js', [path.join(staticDir, 'ingest.js'), 'text/javascript; charset=utf-8']],
    ['/ui/ingest.css', [path.join(staticDir, 'ingest.css'), 'text/css; charset=utf-8']],
    ['/ui/uplot.js', [path.join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8']],
    ['/ui/uplot.css', [path.join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8']],
  ]);
}

const int = (q: URLSearchParams, name: string, def: number, max: number): number => {
  const v = q.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, `${name} must be a non-negative integer`);
  return Math.min(n, max);
};
const optNum = (q: URLSearchParams, name: string): number | undefined => {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new HttpError(400, `${name} must be a number`);
  return n;
};
const str = (q: URLSearchParams, name: string): string => {
  const v = q.get(name);
  if (v === null) throw new HttpError(400, `${name} is required`);
  if (v.length > 4096) throw new HttpError(400, `${name} is too long`);
  return v;
};
const streamOf = (q: URLSearchParams): StreamRef => ({ part_id: str(q, 'part'), resource_kind: str(q, 'kind'), resource_name: str(q, 'resource'), method: str(q, 'method') });

async function body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let n = 0;
  const parts: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new HttpError(413, 'body too large');
    parts.push(c);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'body must be a JSON object');
  }
}

/** `filename*=` (RFC 6266/5987) of a client-chosen name: no quoting tricks, no path. */
function disposition(name: string): string {
  const base = name.split('/').at(-1) || 'file';
  const ascii = base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || 'file';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}

export async function startIngestUi(o: IngestUiOptions): Promise<IngestUi> {
  if (!o.token || o.token.length < 8) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, 'the ingest UI needs an admin token of at least 8 characters');
  const { host, port } = /^\d+$/.test(o.listen) ? { host: '127.0.0.1', port: Number(o.listen) } : parseListen(o.listen);
  if (!isLoopback(host) && !o.tls) {
    throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `the ingest UI listens beyond loopback only over TLS (asked for ${host}): give tls (edgecap ingest --tls-cert/--tls-key)`);
  }
  const tls = o.tls ? readTlsFiles(o.tls, 'tls') : undefined;
  const lim: UiLimits = { ...DEFAULT_UI_LIMITS, ...o.limits };
  // The embedded store is shared with a server of the same process (reference-counted LMDB).
  const s: IngestStorage =
    'dataDir' in o.storage ? acquireFileStorage(o.storage.dataDir) : 'pgUrl' in o.storage ? await PgStorage.open({ url: o.storage.pgUrl, poolSize: 2, migrate: false }) : o.storage;
  const release = async (): Promise<void> => {
    if (s === o.storage) return;
    if ('dataDir' in o.storage) await releaseFileStorage(s as ReturnType<typeof acquireFileStorage>);
    else await s.close();
  };
  const files = assets();
  const log = logger('ingest.ui');

  const send = (res: http.ServerResponse, code: number, b: string | Uint8Array, type: string, extra: Record<string, string> = {}): void => {
    res.writeHead(code, { ...HEADERS, 'content-type': type, ...extra }).end(b);
  };
  const json = (res: http.ServerResponse, code: number, v: unknown): void => send(res, code, JSON.stringify(v), 'application/json');

  let decoding = 0;
  const waiters: (() => void)[] = [];
  /** Run `fn` in one of MAX_DECODES slots: each holds up to a whole capture file in memory. */
  const decodeSlot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (decoding >= MAX_DECODES) {
      if (waiters.length >= MAX_DECODE_WAITERS) throw new HttpError(503, 'the data browser is busy decoding; try again shortly');
      await new Promise<void>((resolve) => waiters.push(resolve));
    } else decoding++;
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter (the count stays), or is freed.
      const next = waiters.shift();
      if (next) next();
      else decoding--;
    }
  };

  let gapCache: { at: number; p: Promise<unknown> } | undefined;
  const gapReport = async (): Promise<unknown> => {
    const out: unknown[] = [];
    const it = gapReportStreams(s, { maxEntries: GAP_ENTRIES });
    let truncated = false;
    for (;;) {
      const r = await it.next();
      if (r.done) return { streams: out, unexplained_gaps: r.value.unexplained_gaps, truncated };
      if (out.length < MAX_GAP_STREAMS) out.push(r.value);
      else truncated = true;
    }
  };

  const api = async (req: http.IncomingMessage, res: http.ServerResponse, p: string, q: URLSearchParams): Promise<void> => {
    const get = req.method === 'GET';
    if (get && p === '/api/machines') return json(res, 200, await listMachines(s, lim));
    if (get && p === '/api/fields') return json(res, 200, { fields: await decodeSlot(() => numericFields(s, streamOf(q), lim)) });
    if (get && p === '/api/series') {
      const from = optNum(q, 'from');
      const to = optNum(q, 'to');
      const o = { ...(from !== undefined ? { fromUs: from } : {}), ...(to !== undefined ? { toUs: to } : {}), buckets: Math.max(1, int(q, 'buckets', 1000, lim.maxBuckets)) };
      const ref = streamOf(q);
      const field = str(q, 'field');
      return json(res, 200, await decodeSlot(() => series(s, ref, field, o, lim)));
    }
    if (get && p === '/api/readings') {
      const [ref, offset, limit] = [streamOf(q), int(q, 'offset', 0, Number.MAX_SAFE_INTEGER), Math.max(1, int(q, 'limit', 50, lim.maxPage))];
      return json(res, 200, await decodeSlot(() => readingsPage(s, ref, offset, limit, lim)));
    }
    if (get && p === '/api/images') {
      const [ref, offset, limit] = [streamOf(q), int(q, 'offset', 0, Number.MAX_SAFE_INTEGER), Math.max(1, int(q, 'limit', 24, 48))];
      return json(res, 200, await decodeSlot(() => imagesPage(s, ref, offset, limit, lim)));
    }
    if (get && p === '/api/image') {
      const [part, file, seq] = [str(q, 'part'), str(q, 'file'), int(q, 'seq', 0, Number.MAX_SAFE_INTEGER)];
      const img = await decodeSlot(() => imageBytes(s, part, file, seq, lim));
      if (!img) throw new HttpError(404, 'no such image');
      return send(res, 200, img.bytes, img.mime);
    }
    if (get && p === '/api/files') return json(res, 200, await filesPage(s, str(q, 'part'), int(q, 'offset', 0, Number.MAX_SAFE_INTEGER), Math.max(1, int(q, 'limit', 100, lim.maxPage))));
    if (get && p === '/api/download') {
      const rec = await s.get(str(q, 'part'), str(q, 'file'));
      if (!rec) throw new HttpError(404, 'no such file');
      const head = { ...HEADERS, 'content-type': 'application/octet-stream', 'content-disposition': disposition(rec.file_name ?? `${rec.file_id}.capture`) };
      if (s instanceof FileStorage) {
        // Streamed from the stored file: never held whole in memory.
        // A small capture file may share a pack with others: its own range of it (`offset`).
        const fh = await fsp.open(path.join(s.dataDir, rec.path), 'r');
        let size: number;
        try {
          const have = (await fh.stat()).size;
          size = rec.offset === undefined ? have : rec.size;
          // A pack cut short (damaged on disk): an error now, not a response that never ends.
          if (rec.offset !== undefined && have < rec.offset + rec.size) throw new HttpError(500, `${rec.path} ends before file ${rec.file_id} (${rec.size} bytes at offset ${rec.offset})`);
        } catch (e) {
          await fh.close();
          throw e;
        }
        res.writeHead(200, { ...head, 'content-length': String(size) });
        if (size === 0) {
          await fh.close();
          res.end();
          return;
        }
        const start = rec.offset ?? 0;
        await pipeline(fh.createReadStream({ highWaterMark: 1024 * 1024, start, end: start + size - 1 }), res);
        return;
      }
      // No chunk-streaming read on other stores: readBytes holds the whole file, so big ones are refused.
      if (rec.size > MAX_BUFFERED_DOWNLOAD) {
        throw new HttpError(413, `${rec.file_name ?? rec.file_id} is ${rec.size} bytes; this store serves downloads up to ${MAX_BUFFERED_DOWNLOAD} bytes through the UI`);
      }
      return send(res, 200, await s.readBytes(rec), 'application/octet-stream', { 'content-disposition': head['content-disposition'] });
    }
    if (get && p === '/api/gaps') {
      // Parallel and repeated page loads share one scan; a failed one is not kept.
      if (!gapCache || Date.now() - gapCache.at > GAP_CACHE_MS) {
        const c = { at: Date.now(), p: gapReport() };
        gapCache = c;
        c.p.catch(() => {
          if (gapCache === c) gapCache = undefined;
        });
      }
      return json(res, 200, await gapCache.p);
    }
    if (get && p === '/api/keys') {
      const keys = await s.listKeys();
      return json(res, 200, { keys: keys.map((k) => ({ key_id: k.key_id, part_id: k.part_id, created_at_ms: k.created_at_ms, revoked_at_ms: k.revoked_at_ms ?? null })) });
    }
    if (req.method === 'POST' && p === '/api/keys') {
      const b = await body(req);
      const part = typeof b.part_id === 'string' ? b.part_id : '';
      const why = checkPartId(part);
      if (why) throw new HttpError(400, why);
      const k = await s.createKey(part);
      log.info({ key_id: k.key_id, part_id: k.part_id }, 'device key created from the UI');
      return json(res, 200, k);
    }
    if (req.method === 'POST' && p === '/api/keys/revoke') {
      const b = await body(req);
      const id = typeof b.key_id === 'string' ? b.key_id : '';
      if (!isKeyId(id)) throw new HttpError(400, 'key_id is not a key id');
      const ok = await s.revokeKey(id);
      log.info({ key_id: id, revoked: ok }, 'device key revoke from the UI');
      return json(res, ok ? 200 : 404, ok ? { revoked: id } : { error: `no active key ${id}` });
    }
    throw new HttpError(404, 'not found');
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/healthz') return send(res, 200, 'ok\n', 'text/plain');
    const asset = req.method === 'GET' ? files.get(p) : undefined;
    if (asset) {
      fs.readFile(asset[0], (err, buf) => (err ? send(res, 500, 'asset missing\n', 'text/plain') : send(res, 200, buf, asset[1])));
      return;
    }
    if (!p.startsWith('/api/')) return send(res, 404, 'not found\n', 'text/plain');
    if (!tokenMatches(o.token, req.headers['x-edgecap-token'])) return json(res, 401, { error: 'admin token required' });
    api(req, res, p, url.searchParams).catch((e: unknown) => {
      if (res.headersSent) return res.destroy();
      if (e instanceof HttpError) return json(res, e.status, { error: e.message });
      if (e instanceof UiFileTooLargeError) return json(res, 413, { error: e.message });
      log.warn({ err: (e as Error).message, path: p }, 'ui request failed');
      json(res, 500, { error: (e as Error).message });
    });
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.on('clientError', (_e, socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await release();
    throw e;
  }
  const a = server.address() as net.AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://${net.isIPv6(host) ? `[${host}]` : host}:${a.port}`,
    port: a.port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await release();
    },
  };
}
