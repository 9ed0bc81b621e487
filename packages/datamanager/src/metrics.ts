import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import type { CpuReport, DataManagerStats } from './manager.js';

// prom-client (CommonJS, ~100 ms to load) is required on the first registry, not at import.
const requireCjs = createRequire(import.meta.url);

/**
 * Prometheus exposition of DataManager.stats(). Values are read at scrape time, so the
 * hot path pays nothing for metrics. Counters that reset on restart are exposed as gauges
 * named *_total only where they are monotonic within a process. `cpu` (DataManager.cpu()) adds
 * CPU seconds by thread: the main thread, the writer, each collector thread, and the process.
 */
export function createMetricsRegistry(stats: () => DataManagerStats, cpu?: () => Promise<CpuReport>): Registry {
  const { Registry, Gauge } = requireCjs('prom-client') as typeof import('prom-client');
  const reg = new Registry();
  const labels = ['resource', 'kind', 'method'] as const;
  const streamGauge = (name: string, help: string, pick: (s: DataManagerStats['capture']['streams'][number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: labels,
      registers: [reg],
      collect() {
        this.reset();
        for (const s of stats().capture.streams) this.set({ resource: s.resource, kind: s.kind, method: s.method }, pick(s));
      },
    });
  };
  streamGauge('edgecap_captured_readings_total', 'Readings captured (encoded into the ring)', (s) => s.captured);
  streamGauge('edgecap_dropped_readings_total', 'Readings dropped because the ring was full', (s) => s.dropped);
  streamGauge('edgecap_missed_deadlines_total', 'Capture deadlines missed by the collector', (s) => s.missedDeadlines);
  streamGauge('edgecap_capture_errors_total', 'Capture method calls that failed (nothing captured for them)', (s) => s.captureErrors);
  streamGauge('edgecap_next_seq', 'Sequence number the next reading of the stream gets', (s) => s.nextSeq);
  streamGauge('edgecap_captured_bytes_total', 'Bytes of framed readings captured', (s) => s.bytes);
  streamGauge('edgecap_write_errors_total', 'Write errors seen by the writer', (s) => s.writeErrors);
  streamGauge('edgecap_dropped_on_write_error_total', 'Readings dropped because they could not be written', (s) => s.droppedOnWriteError);

  const simple = (name: string, help: string, get: (s: DataManagerStats) => number | undefined): void => {
    new Gauge({
      name,
      help,
      registers: [reg],
      collect() {
        const v = get(stats());
        if (v !== undefined) this.set(v);
      },
    });
  };
  const sync = (s: DataManagerStats) => (s.sync.enabled ? s.sync : undefined);
  simple('edgecap_sync_pending_files', 'Files waiting to be synced', (s) => sync(s)?.pendingFiles);
  simple('edgecap_sync_pending_bytes', 'Bytes waiting to be synced', (s) => sync(s)?.pendingBytes);
  simple('edgecap_sync_uploaded_files_total', 'Files committed by the ingest server', (s) => sync(s)?.uploadedFiles);
  simple('edgecap_sync_uploaded_bytes_total', 'Bytes committed by the ingest server', (s) => sync(s)?.uploadedBytes);
  simple('edgecap_sync_failed_files_total', 'Files moved to failed/', (s) => sync(s)?.failedFiles);
  simple('edgecap_sync_failed_files', 'Files in failed/ now (a verdict about their bytes; edgecap sync --retry-failed puts them back)', (s) => sync(s)?.failedOnDisk);
  simple('edgecap_sync_next_retry_timestamp_seconds', 'When sync retries after an error', (s) => {
    const t = sync(s)?.nextRetryAt;
    return t ? t / 1000 : 0;
  });
  simple('edgecap_janitor_deleted_files_total', 'Capture files deleted by the janitor (disk full)', (s) => s.janitor?.deletedFiles);
  simple('edgecap_janitor_deleted_bytes_total', 'Bytes deleted by the janitor', (s) => s.janitor?.deletedBytes);
  simple('edgecap_disk_usage_ratio', 'Used fraction of the capture dir filesystem at the last check', (s) => s.janitor?.lastUsage);
  simple('edgecap_memory_held_bytes', 'Memory mode: bytes of capture files held (sealed and open)', (s) => (s.memory ? s.memory.heldBytes + s.memory.openBytes : undefined));
  simple('edgecap_memory_dropped_files_total', 'Memory mode: files dropped because the budget was full (memory_full gaps)', (s) => s.memory?.droppedFiles);
  simple('edgecap_memory_dropped_bytes_total', 'Memory mode: bytes dropped because the budget was full', (s) => s.memory?.droppedBytes);
  simple('edgecap_memory_dropped_readings_total', 'Memory mode: readings dropped because the budget was full', (s) => s.memory?.droppedReadings);
  simple('edgecap_recovered_readings', 'Readings recovered from in-progress files at start-up', (s) => s.recovered.readings);
  if (cpu) {
    new Gauge({
      name: 'edgecap_thread_cpu_seconds_total',
      help: 'CPU seconds (user + system) by thread: process (every thread), main, writer, collector or shared (label resource: the resources it runs); a restarted thread counts from its restart',
      labelNames: ['thread', 'resource'] as const,
      registers: [reg],
      async collect() {
        const c = await cpu();
        const sec = (u: { userUs: number; systemUs: number }): number => (u.userUs + u.systemUs) / 1e6;
        this.reset();
        this.set({ thread: 'process', resource: '' }, sec(c.process));
        if (c.main) this.set({ thread: 'main', resource: '' }, sec(c.main));
        for (const t of c.capture) this.set({ thread: t.thread, resource: t.resources.join(',') }, sec(t));
      },
    });
  }
  return reg;
}
