// An ingest server in its own process (the "cloud" end of the sync benchmarks).
// argv: <dataDir> <certFile> <keyFile> <apiKey>. IPC: → {port}; ← 'cpu' → {cpuSec, maxRssMB}.
import { startIngestServer } from '@edgecap/ingest';

const [dataDir, certFile, keyFile, apiKey] = process.argv.slice(2);
const cpu0 = process.cpuUsage();
const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir, tls: { certFile, keyFile }, apiKeys: [apiKey] });
process.send({ port: server.port });
process.on('message', (m) => {
  if (m === 'cpu') {
    const c = process.cpuUsage(cpu0);
    process.send({ cpuSec: (c.user + c.system) / 1e6, maxRssMB: process.resourceUsage().maxRSS / 1024 });
  }
});
process.on('disconnect', () => {
  server.forceClose();
  process.exit(0);
});
