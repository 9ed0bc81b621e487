import { randomBytes } from 'node:crypto';
import { isLoopback, parseLimitFlags, parseListen, startIngestServer, startIngestUi, type IngestLimits, exportReadings, listReceived, gapReportStreams, stringifyChunks, type ExportTarget } from '@edgecap/ingest';
import { onceSignal, userPath, Exit, UsageError, type Out } from './util.js';

export interface IngestCliOptions {
  listen: string;
  data?: string;
  storage: 'files' | 'postgres';
  pgUrl?: string;
  pgPoolSize?: number;
  tlsCert?: string;
  tlsKey?: string;
  /** Fleet keys (--api-key, repeatable and comma-separated). */
  apiKey?: string[];
  tokenTtl?: number;
  /** name=value resource limits. */
  limit?: string[];
  insecure?: boolean;
  /** [host:]port of the web UI (off when absent). */
  ui?: string;
  uiToken?: string;
}

export async function serveIngest(o: IngestCliOptions): Promise<number> {
  // Every --api-key counts (repeated or comma-separated); the environment adds to them.
  const keys = [...(o.apiKey ?? []), ...(process.env.EDGECAP_API_KEY ?? '').split(',')].filter(Boolean);
  try {
    parseListen(o.listen);
  } catch (e) {
    throw new UsageError('--listen', (e as Error).message);
  }
  let limits: Partial<IngestLimits>;
  try {
    limits = parseLimitFlags(o.limit ?? []);
  } catch (e) {
    throw new UsageError('--limit', (e as Error).message);
  }
  if (o.tokenTtl !== undefined && !(Number.isFinite(o.tokenTtl) && o.tokenTtl > 0)) throw new UsageError('--token-ttl', 'must be a positive number of seconds');
  const pgUrl = o.pgUrl ?? process.env.EDGECAP_PG_URL;
  if (o.storage === 'files' && !o.data) throw new UsageError('--data', 'the embedded storage needs --data DIR');
  if (o.storage === 'postgres' && !pgUrl) throw new UsageError('--pg-url', 'storage postgres needs --pg-url URL (or EDGECAP_PG_URL)');
  const stop = onceSignal(['SIGINT', 'SIGTERM']);
  const tls = o.tlsCert && o.tlsKey ? { certFile: userPath(o.tlsCert), keyFile: userPath(o.tlsKey) } : undefined;
  if (o.ui && !tls && !/^\d+$/.test(o.ui) && !isLoopback(parseListen(o.ui).host)) throw new UsageError('--ui', `${o.ui} is beyond loopback: the data browser needs TLS (--tls-cert and --tls-key)`);
  const server = await startIngestServer({
    listen: o.listen,
    dataDir: o.data ? userPath(o.data) : '',
    storage: o.storage,
    ...(pgUrl ? { pgUrl } : {}),
    ...(o.pgPoolSize ? { pgPoolSize: o.pgPoolSize } : {}),
    apiKeys: keys,
    limits,
    ...(o.tokenTtl !== undefined ? { accessTokenTtlMs: o.tokenTtl * 1000 } : {}),
    ...(o.insecure ? { insecure: true } : {}),
    ...(tls ? { tls } : {}),
  });
  process.stdout.write(`listening ${server.address}\n`);
  // The web UI: its own port and admin token (given, from the environment, or fresh and printed once).
  const uiToken = o.uiToken ?? process.env.EDGECAP_UI_TOKEN ?? randomBytes(18).toString('base64url');
  const ui = o.ui
    ? await startIngestUi({ listen: o.ui, token: uiToken, ...(tls ? { tls } : {}), storage: o.storage === 'postgres' ? { pgUrl: pgUrl! } : { dataDir: userPath(o.data!) } }).catch(async (e: unknown) => {
        await server.close();
        throw e;
      })
    : undefined;
  if (ui) process.stdout.write(`ui ${ui.url}/#token=${uiToken}\n`);
  await stop;
  await ui?.close();
  await server.close();
  return Exit.OK;
}

/**
 * `edgecap export`: JSON lines of readings (or files), or the gap report as one indented JSON
 * document (the text JSON.stringify(report, null, 2) would give), written as it is produced:
 * one reading / file / stream at a time, with backpressure, serialized without recursion (a
 * reading nested 100,000 deep is just a long line).
 */
export async function exportCmd(dataDir: ExportTarget, o: { files?: boolean; gaps?: boolean }, out: Out): Promise<number> {
  /** A promise only when the stream asks to wait (no await per chunk otherwise). */
  const write = (s: string): Promise<void> | undefined => (out.write(s) ? undefined : new Promise((res) => out.once('drain', () => res())));
  /** One value as a line, in chunks (no whole-value string for a big one). */
  const line = async (v: unknown): Promise<void> => {
    for (const c of stringifyChunks(v)) {
      const w = write(c);
      if (w) await w;
    }
    const w = write('\n');
    if (w) await w;
  };
  if (o.gaps) {
    const it = gapReportStreams(dataDir);
    let n = 0;
    await write('{\n  "streams": [');
    for (;;) {
      const r = await it.next();
      if (r.done) {
        await write(`${n > 0 ? '\n  ' : ''}],\n  "unexplained_gaps": ${r.value.unexplained_gaps}\n}\n`);
        break;
      }
      // each stream as JSON.stringify(report, null, 2) nests it: two levels in (JSON text has no raw newlines in strings)
      await write((n++ > 0 ? ',' : '') + '\n    ');
      for (const c of stringifyChunks(r.value, 2)) await write(c.replaceAll('\n', '\n    '));
    }
    return Exit.OK;
  }
  if (o.files) {
    for (const f of await listReceived(dataDir)) await line(f);
    return Exit.OK;
  }
  for await (const r of exportReadings(dataDir)) await line(r);
  return Exit.OK;
}
