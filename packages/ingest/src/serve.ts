#!/usr/bin/env node
/**
 * Standalone ingest server (also what fault tests spawn and SIGKILL):
 *   node dist/serve.js --listen HOST:PORT --data DIR [--tls-cert F --tls-key F] [--api-key K]... [--insecure] [--max-file-bytes N] [--limit name=value]...
 *   PostgreSQL backend (several nodes may share one database):
 *     ... --storage postgres --pg-url postgres://user:pass@host:5432/db [--pg-pool-size N] [--data SCRATCH_DIR]
 *   (--pg-url also from EDGECAP_PG_URL; with postgres, --data is optional node-local scratch.)
 * API key also from EDGECAP_API_KEY. Prints `listening <host:port>` on stdout when ready;
 * SIGTERM/SIGINT stop it gracefully.
 */
import { parseArgs } from 'node:util';
import { parseLimitFlags } from './settings.js';
import { startIngestServer } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:50051' },
      data: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'api-key': { type: 'string', multiple: true },
      limit: { type: 'string', multiple: true },
      insecure: { type: 'boolean', default: false },
      'max-file-bytes': { type: 'string' },
      storage: { type: 'string', default: 'files' },
      'pg-url': { type: 'string' },
      'pg-pool-size': { type: 'string' },
    },
    strict: true,
  });
  const storage = values.storage;
  if (storage !== 'files' && storage !== 'postgres') throw new Error(`--storage must be files or postgres, got ${JSON.stringify(storage)}`);
  const pgUrl = values['pg-url'] ?? process.env.EDGECAP_PG_URL;
  if (storage === 'postgres' && !pgUrl) throw new Error('--storage postgres needs --pg-url URL (or EDGECAP_PG_URL)');
  if (storage === 'files' && !values.data) throw new Error('--data DIR is required');
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if (Boolean(cert) !== Boolean(key)) throw new Error('--tls-cert and --tls-key go together');
  const apiKeys = [...(values['api-key'] ?? [])];
  if (process.env.EDGECAP_API_KEY) apiKeys.push(process.env.EDGECAP_API_KEY);
  const server = await startIngestServer({
    listen: values.listen!,
    dataDir: values.data ?? '',
    storage,
    ...(storage === 'postgres' && pgUrl ? { pgUrl } : {}),
    ...(values['pg-pool-size'] ? { pgPoolSize: Number(values['pg-pool-size']) } : {}),
    ...(cert && key ? { tls: { certFile: cert, keyFile: key } } : {}),
    insecure: values.insecure ?? false,
    apiKeys,
    limits: parseLimitFlags(values.limit ?? []),
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
