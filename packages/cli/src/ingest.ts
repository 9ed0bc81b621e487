import { startIngestServer, exportReadings, listReceived, gapReport } from '@edgecap/ingest';
import { onceSignal, userPath, Exit } from './util.js';

export async function serveIngest(o: { listen: string; data: string; tlsCert?: string; tlsKey?: string; apiKey?: string; insecure?: boolean }): Promise<number> {
  const keys = (o.apiKey ?? process.env.EDGECAP_API_KEY ?? '').split(',').filter(Boolean);
  const stop = onceSignal(['SIGINT', 'SIGTERM']);
  const server = await startIngestServer({
    listen: o.listen,
    dataDir: userPath(o.data),
    apiKeys: keys,
    ...(o.insecure ? { insecure: true } : {}),
    ...(o.tlsCert && o.tlsKey ? { tls: { certFile: userPath(o.tlsCert), keyFile: userPath(o.tlsKey) } } : {}),
  });
  process.stdout.write(`listening ${server.address}\n`);
  await stop;
  await server.close();
  return Exit.OK;
}

export async function exportCmd(dataDir: string, o: { files?: boolean; gaps?: boolean }, out: NodeJS.WritableStream): Promise<number> {
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
