/**
 * The reliability torture harness: real `edgecap run` and `edgecap ingest` processes, real
 * TLS sockets (optionally through a FaultyProxy), real SIGKILLs, and exact accounting by the
 * Ledger. Scenarios are parameterised so CI runs a short version and `pnpm torture --long`
 * the long one.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { listFiles, readCaptureFile } from '@edgecap/format';
import { makeDevCert, gapReport } from '@edgecap/ingest';
import { Ledger } from './ledger.js';
import { FaultyProxy } from './proxy.js';
import { cli, freePort, runCli, sigkill, startIngestProcess, tmpdir, waitFor, writeJson, type Child, type IngestProc } from './helpers.js';

export interface ScenarioOptions {
  name: string;
  rounds: number;
  /** What each round kills or cuts. `disk-full`: the capture dir lives on a small tmpfs and the
   * ingest is down for the first half, so the disk fills and the janitor deletes by policy. */
  fault: 'edge' | 'ingest' | 'both' | 'network' | 'disk-full';
  minGapMs?: number;
  maxGapMs?: number;
  flushIntervalMs?: number;
}

export interface ScenarioResult {
  scenario: string;
  kills: number;
  restarts: number;
  networkFaults: number;
  produced: number;
  flushed: number;
  ingested: number;
  lost: number;
  deletedByJanitor: number;
  duplicated: number;
  corrupt: number;
  unexplainedGaps: number;
  /** Largest number of readings of the 1 kHz stream produced but not yet flushed at a kill. */
  maxUnflushed: number;
  /** The same, as ms of that stream's production (1 reading = 1 ms). */
  maxUnflushedMs: number;
  maxRssMiB: number;
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  captured: Map<string, number>;
  nextSeq: Map<string, number>;
}

async function scrape(port: number): Promise<Sample | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    const s: Sample = { captured: new Map(), nextSeq: new Map() };
    for (const line of text.split('\n')) {
      const m = /^(edgecap_captured_readings_total|edgecap_dropped_readings_total|edgecap_next_seq)\{resource="([^"]+)",kind="[^"]*",method="([^"]+)"\} (\d+)/.exec(line);
      if (!m) continue;
      const k = `${m[2]}/${m[3]}`;
      // produced = accepted into the ring + dropped at a full ring
      if (m[1] === 'edgecap_next_seq') s.nextSeq.set(k, Number(m[4]));
      else s.captured.set(k, (s.captured.get(k) ?? 0) + Number(m[4]));
    }
    return s;
  } catch {
    return undefined;
  }
}

function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const t0 = Date.now();
  const root = tmpdir(`torture-${o.name}`);
  const certs = makeDevCert(path.join(root, 'certs'));
  const ingestPort = await freePort();
  const proxy = o.fault === 'network' ? new FaultyProxy(ingestPort) : undefined;
  const edgePort = proxy ? await proxy.listen() : ingestPort;
  const data = path.join(root, 'ingest');
  const diskFull = o.fault === 'disk-full';
  if (diskFull) {
    fs.mkdirSync(path.join(root, 'small'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', path.join(root, 'small')]);
  }
  const captureDir = diskFull ? path.join(root, 'small', 'capture') : path.join(root, 'capture');
  const flushIntervalMs = o.flushIntervalMs ?? 100;
  const config = writeJson(path.join(root, 'edge.json'), {
    capture_dir: captureDir,
    part_id: `torture-${o.name}`,
    sync_interval_mins: 0.005,
    maximum_capture_file_age_ms: 250,
    maximum_capture_file_size_bytes: 65536,
    flush_interval_ms: flushIntervalMs,
    ...(diskFull ? { janitor_interval_ms: 300 } : {}),
    ingest: { address: `localhost:${edgePort}`, ca_file: certs.caFile, api_key: 'key' },
    resources: [
      { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 1000 }] },
      { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] },
      { name: 'cam', model: 'sim:camera', attributes: { image_bytes: diskFull ? 65536 : 16384 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: diskFull ? 60 : 10 }] },
    ],
  });
  const ledger = new Ledger();
  const produced = new Map<string, number>();
  let maxUnflushed = 0;
  let maxRss = 0;
  let kills = 0;
  let restarts = 0;
  let networkFaults = 0;

  const startIngest = (): Promise<IngestProc> => startIngestProcess({ data, port: ingestPort, tls: certs, apiKey: 'key' });
  // On a full disk the ingest is down for the first half: the backlog fills the tmpfs.
  let ingest: IngestProc | undefined = diskFull ? undefined : await startIngest();
  let metricsPort = await freePort();
  const startEdge = (): Child => runCli(['run', '--config', config, '--metrics', `127.0.0.1:${metricsPort}`]);
  let edge = startEdge();
  let last: Sample | undefined;
  const addProduced = (s: Sample | undefined): void => {
    if (!s) return;
    for (const [k, v] of s.captured) produced.set(k, (produced.get(k) ?? 0) + v);
  };

  for (let round = 0; round < o.rounds; round++) {
    const gap = (o.minGapMs ?? 300) + Math.floor(Math.random() * ((o.maxGapMs ?? 900) - (o.minGapMs ?? 300)));
    await sleep(gap);
    maxRss = Math.max(maxRss, rssMiB(edge.proc.pid));
    const killEdge = o.fault === 'edge' || (o.fault === 'both' && round % 2 === 0);
    const killIngest = o.fault === 'ingest' || (o.fault === 'both' && round % 3 !== 1);
    if (killEdge) {
      last = await scrape(metricsPort);
      await sigkill(edge);
      kills++;
      addProduced(last);
      ledger.snapshotDisk(captureDir);
      // Unflushed window of the 1 kHz stream: produced before the kill but on no disk and not ingested.
      const before = last?.nextSeq.get('imu/Position');
      if (before !== undefined) {
        const flushedMax = Math.max(-1, ...(ledger.flushed.get('imu/Position')?.keys() ?? []));
        maxUnflushed = Math.max(maxUnflushed, before - 1 - flushedMax);
      }
    }
    if (killIngest && ingest) {
      await sigkill(ingest);
      kills++;
    }
    // Every round, not only at edge kills: what is on disk now must reach the server later.
    if (!killEdge) ledger.snapshotDisk(captureDir);
    if (diskFull && !ingest && round >= o.rounds / 2) ingest = await startIngest();
    if (proxy) {
      networkFaults++;
      const f = round % 3;
      if (f === 0) proxy.drop();
      else if (f === 1) proxy.reset();
      else await proxy.stall(400 + Math.floor(Math.random() * 800));
    }
    if (killIngest) {
      ingest = await startIngest();
      restarts++;
    }
    if (killEdge) {
      metricsPort = await freePort();
      edge = startEdge();
      restarts++;
    }
  }
  await sleep(800);
  addProduced(await waitFor('edge metrics', () => scrape(metricsPort), 30_000, 100));
  maxRss = Math.max(maxRss, rssMiB(edge.proc.pid));
  edge.proc.kill('SIGTERM');
  const end = await edge.exited;
  if (end.code !== 0) throw new Error(`edge did not stop cleanly: ${JSON.stringify(end)}\n${edge.stderr.slice(-20).join('\n')}`);
  ledger.snapshotDisk(captureDir);
  await proxy?.close();
  // The final drain goes straight to the server, as a restarted edge on a healed network would.
  const drainConfig = writeJson(path.join(root, 'drain.json'), { ...JSON.parse(fs.readFileSync(config, 'utf8')), ingest: { address: `localhost:${ingestPort}`, ca_file: certs.caFile, api_key: 'key' } });
  await waitFor(
    'backlog drained',
    async () => {
      const r = await cli(['sync', '--config', drainConfig]);
      if (r.code !== 0) throw new Error(`sync failed: ${r.stderr}`);
      const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { uploaded: number; alreadyHad: number };
      return res.uploaded + res.alreadyHad === 0;
    },
    120_000,
    100,
  );
  ingest ??= await startIngest();
  ingest.proc.kill('SIGTERM');
  await ingest.exited;
  await ledger.loadExport(data);
  const gaps = await gapReport(data);
  // Ranges the janitor deleted by policy, as the edge reported them to the server.
  const janitorRanges = new Map<string, [number, number][]>();
  for (const st of gaps.streams) {
    for (const g of st.gaps) {
      if (!g.reasons.includes('janitor')) continue;
      const k = `${st.resource}/${st.method}`;
      janitorRanges.set(k, [...(janitorRanges.get(k) ?? []), [g.from_seq, g.to_seq]]);
    }
  }
  const rep = ledger.report((k, seq) => (janitorRanges.get(k) ?? []).some(([a, b]) => seq >= a && seq <= b));
  if (diskFull) execFileSync('umount', ['-l', path.join(root, 'small')]);
  fs.rmSync(root, { recursive: true, force: true });
  return {
    scenario: o.name,
    kills,
    restarts,
    networkFaults,
    produced: [...produced.values()].reduce((a, b) => a + b, 0),
    flushed: rep.flushed,
    ingested: rep.ingested,
    lost: rep.lost,
    deletedByJanitor: rep.deletedByPolicy,
    duplicated: rep.duplicated,
    corrupt: rep.corrupt,
    unexplainedGaps: gaps.unexplained_gaps,
    maxUnflushed,
    maxUnflushedMs: maxUnflushed, // the 1 kHz stream: one reading per ms
    maxRssMiB: Math.round(maxRss),
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

export function resultTable(rows: ScenarioResult[]): string {
  const cols: (keyof ScenarioResult)[] = ['scenario', 'kills', 'restarts', 'networkFaults', 'produced', 'flushed', 'ingested', 'lost', 'deletedByJanitor', 'duplicated', 'corrupt', 'unexplainedGaps', 'maxUnflushedMs', 'maxRssMiB', 'seconds'];
  const head = `| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`;
  return [head, ...rows.map((r) => `| ${cols.map((c) => String(r[c])).join(' | ')} |`)].join('\n');
}

export interface SlowConsumerResult {
  /** What the edge says reached disk. */
  flushed: number;
  writeDropped: number;
  onDisk: number;
  dropped: number;
  gapSeqs: number;
  corruptFiles: number;
  rssStartMiB: number;
  rssMaxMiB: number;
  seconds: number;
}

/**
 * A resource producing far faster than the writer and disk can take (64 KiB readings at 20 kHz,
 * ~1.3 GB/s, into a 2 MiB ring): drops must be counted exactly and explained by GAP frames,
 * memory must stay flat, and what is on disk must stay intact.
 */
export async function runSlowConsumer(seconds: number): Promise<SlowConsumerResult> {
  const t0 = Date.now();
  const root = tmpdir('torture-slow');
  fs.writeFileSync(path.join(root, 'firehose.js'), 'const img = new Uint8Array(65536).fill(7);\nexport default { kind: "camera", ReadImage: () => img };\n');
  const captureDir = path.join(root, 'capture');
  const config = writeJson(path.join(root, 'edge.json'), {
    capture_dir: captureDir,
    sync_disabled: true,
    resources: [{ name: 'firehose', module: './firehose.js', capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 20000, capture_queue_size: 2 * 1024 * 1024 }] }],
  });
  const edge = runCli(['run', '--config', config]);
  let onDisk = 0;
  let gapSeqs = 0;
  let corruptFiles = 0;
  const seen = new Set<number>();
  // The downstream consumer: read each finished file completely, account for it, delete it.
  const consume = (): void => {
    for (const f of listFiles(captureDir, '.capture')) {
      const s = readCaptureFile(f);
      if (s.problems.length) corruptFiles++;
      for (const r of s.readings) {
        if (seen.has(r.seq)) corruptFiles++;
        seen.add(r.seq);
      }
      onDisk += s.readings.length;
      for (const g of s.gaps) gapSeqs += g.to_seq - g.from_seq + 1;
      fs.rmSync(f);
    }
  };
  await sleep(1500);
  const rssStart = rssMiB(edge.proc.pid);
  let rssMax = rssStart;
  // The consumer runs after the edge stops: a JS reader on the same 2 cores cannot keep pace
  // with the writer, and reading while it writes would only slow both.
  for (let t = 0; t < seconds * 10; t++) {
    await sleep(100);
    rssMax = Math.max(rssMax, rssMiB(edge.proc.pid));
  }
  edge.proc.kill('SIGTERM');
  const end = await edge.exited;
  if (end.code !== 0) throw new Error(`edge did not stop cleanly: ${edge.stderr.slice(-10).join('\n')}`);
  consume();
  const m = /stopped; (\d+) readings flushed to disk, (\d+) dropped \(ring full\), (\d+) dropped \(write errors\)/.exec(edge.stderr.join('\n'));
  if (!m) throw new Error(`no summary line: ${edge.stderr.slice(-5).join('\n')}`);
  fs.rmSync(root, { recursive: true, force: true });
  return { flushed: Number(m[1]), dropped: Number(m[2]), writeDropped: Number(m[3]), onDisk, gapSeqs, corruptFiles, rssStartMiB: Math.round(rssStart), rssMaxMiB: Math.round(rssMax), seconds: Math.round((Date.now() - t0) / 1000) };
}
