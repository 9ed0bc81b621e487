#!/usr/bin/env node
/**
 * Standalone ingest server (also what fault tests spawn and SIGKILL):
 *   node dist/serve.js --listen HOST:PORT --data DIR [--tls-cert F --tls-key F] [--api-key K]... [--insecure] [--max-file-bytes N]
 * API key also from EDGECAP_API_KEY. Prints `listening <host:port>` on stdout when ready;
 * SIGTERM/SIGINT stop it gracefully.
 */
import { parseArgs } from 'node:util';
import { startIngestServer } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:50051' },
      data: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'api-key': { type: 'string', multiple: true },
      insecure: { type: 'boolean', default: false },
      'max-file-bytes': { type: 'string' },
    },
    strict: true,
  });
  if (!values.data) throw new Error('--data DIR is required');
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if (Boolean(cert) !== Boolean(key)) throw new Error('--tls-cert and --tls-key go together');
  const apiKeys = [...(values['api-key'] ?? [])];
  if (process.env.EDGECAP_API_KEY) apiKeys.push(process.env.EDGECAP_API_KEY);
  const server = await startIngestServer({
    listen: values.listen!,
    dataDir: values.data,
    ...(cert && key ? { tls: { certFile: cert, keyFile: key } } : {}),
    insecure: values.insecure ?? false,
    apiKeys,
    ...(values['max-file-bytes'] ? { maxFileBytes: Number(values['max-file-bytes']) } : {}),
  });
  process.stdout.write(`listening ${server.address}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) {
      server.forceClose();
      process.exit(1);
    }
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`edgecap ingest: ${(e as Error).message ?? String(e)}\n`);
  process.exit(2);
});
