import { ConfigError } from '@edgecap/core';
import { startIngestServer, exportReadings, listReceived, gapReport, type ExportTarget } from '@edgecap/ingest';
import { onceSignal, userPath, Exit } from './util.js';

export interface IngestCliOptions {
  listen: string;
  data?: string;
  storage: 'files' | 'postgres';
  pgUrl?: string;
  pgPoolSize?: number;
  tlsCert?: string;
  tlsKey?: string;
  apiKey?: string;
  insecure?: boolean;
}

export async function serveIngest(o: IngestCliOptions): Promise<number> {
  const keys = (o.apiKey ?? process.env.EDGECAP_API_KEY ?? '').split(',').filter(Boolean);
  const pgUrl = o.pgUrl ?? process.env.EDGECAP_PG_URL;
  if (o.storage === 'files' && !o.data) throw new ConfigError([{ path: '--data', message: 'the embedded storage needs --data DIR' }]);
  if (o.storage === 'postgres' && !pgUrl) throw new ConfigError([{ path: '--pg-url', message: 'storage postgres needs --pg-url URL (or EDGECAP_PG_URL)' }]);
  const stop = onceSignal(['SIGINT', 'SIGTERM']);
  const server = await startIngestServer({
    listen: o.listen,
    dataDir: o.data ? userPath(o.data) : '',
    storage: o.storage,
    ...(pgUrl ? { pgUrl } : {}),
    ...(o.pgPoolSize ? { pgPoolSize: o.pgPoolSize } : {}),
    apiKeys: keys,
    ...(o.insecure ? { insecure: true } : {}),
    ...(o.tlsCert && o.tlsKey ? { tls: { certFile: userPath(o.tlsCert), keyFile: userPath(o.tlsKey) } } : {}),
  });
  process.stdout.write(`listening ${server.address}\n`);
  await stop;
  await server.close();
  return Exit.OK;
}

export async function exportCmd(dataDir: ExportTarget, o: { files?: boolean; gaps?: boolean }, out: NodeJS.WritableStream): Promise<number> {
  if (o.gaps) {
    const report = await gapReport(dataDir);
    out.write(JSON.stringify(report, null, 2) + '\n');
    return Exit.OK;
  }
  if (o.files) {
    for (const f of await listReceived(dataDir)) out.write(JSON.stringify(f) + '\n');
    return Exit.OK;
  }
  for await (const r of exportReadings(dataDir)) {
    if (!out.write(JSON.stringify(r) + '\n')) await new Promise((res) => out.once('drain', res));
  }
  return Exit.OK;
}
