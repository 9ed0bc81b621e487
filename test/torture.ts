/**
 * The reliability torture harness: real `edgecap run` and `edgecap ingest` processes, real
 * TLS sockets (optionally through a FaultyProxy), real SIGKILLs, and exact accounting by the
 * Ledger. Scenarios are parameterised so CI runs a short version and `pnpm torture --long`
 * the long one.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { FINISHED_EXT } from '@edgecap/core';
import { listFiles, readCaptureFile } from '@edgecap/format';
import { makeDevCert, gapReport, type DevCert } from '@edgecap/ingest';
import { countFailed, FileLedger, Ledger } from './ledger.js';
import { FaultyProxy } from './proxy.js';
import { CLI, REPO, cli, freePort, runCli, sigkill, startIngestProcess, tmpdir, waitFor, writeJson, type Child, type IngestProc } from './helpers.js';

export interface ScenarioOptions {
  name: string;
  rounds: number;
  /** What each round kills or cuts. `disk-full`: the capture dir lives on a small tmpfs and the
   * ingest is down for the first half, so the disk fills and the janitor deletes by policy. */
  fault: 'edge' | 'ingest' | 'both' | 'network' | 'disk-full' | NewFault;
  minGapMs?: number;
  maxGapMs?: number;
  flushIntervalMs?: number;
  /** ingest-fd-limit: how many edges. */
  edges?: number;
  /**
   * blackhole: how long each blackhole lasts, ms (one after another, link up between them), and
   * how the route comes back (proxy.restore: `reset` = the connections of the outage get an RST,
   * `resume` = they flow on).
   */
  blackholes?: { ms: number; restore: 'reset' | 'resume' }[];
  /** blackhole: the edge's sync_probe_interval_ms. */
  probeIntervalMs?: number;
}

/**
 * The scenarios of issue #13 (each found a defect of its own):
 *   ingest-disk-full   the ingest's data dir on a small tmpfs filled to the last byte, then freed;
 *   ingest-fd-limit    an ingest under `prlimit --nofile=100` with many edges, SIGKILLed once so
 *                      they all reconnect at once;
 *   shared-dir         `edgecap run` (capture, sync, janitor) and `edgecap sync` processes, some
 *                      SIGKILLed mid-round, syncing one capture dir on a small full tmpfs over a
 *                      throttled link;
 *   writer-kill        the capture writer thread of a real `edgecap run` killed from outside
 *                      (test/fixtures/kill-writer.cjs), the process sometimes stopped or killed;
 *   arbitrary-append   additional_sync_paths files appended to while their upload is in flight;
 *   blackhole          the link black-holed (accepted, no byte passes) for minutes; measures link
 *                      restore → first committed upload against sync_probe_interval_ms + 2 s.
 */
export type NewFault = 'ingest-disk-full' | 'ingest-fd-limit' | 'shared-dir' | 'writer-kill' | 'arbitrary-append' | 'blackhole';

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
  /** Other injected faults: disk fills, appends during uploads, writer kills are in `kills`. */
  faults: number;
  /** Files in every failed/ (edge state dirs) at the end: must be 0, no file here is bad. */
  failed: number;
  /** blackhole: link restore → first committed upload, ms, per blackhole. */
  restoreToUploadMs: number[];
  /** What else the scenario saw (writer_crash gaps, files re-uploaded, ...). */
  notes: string;
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
  if (isNewFault(o.fault)) return runNewScenario(o);
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
  const failed = countFailed(captureDir).length;
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
    faults: 0,
    failed,
    restoreToUploadMs: [],
    notes: rep.lostExamples.length ? `lost e.g. ${rep.lostExamples.join(' ')}` : '',
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

export function resultTable(rows: ScenarioResult[]): string {
  const cols: (keyof ScenarioResult)[] = ['scenario', 'kills', 'restarts', 'networkFaults', 'faults', 'produced', 'flushed', 'ingested', 'lost', 'deletedByJanitor', 'duplicated', 'corrupt', 'unexplainedGaps', 'failed', 'maxUnflushedMs', 'restoreToUploadMs', 'maxRssMiB', 'seconds', 'notes'];
  const cell = (v: unknown): string => (Array.isArray(v) ? (v.length ? v.join(', ') : '-') : v === '' ? '-' : String(v));
  const head = `| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`;
  return [head, ...rows.map((r) => `| ${cols.map((c) => cell(r[c])).join(' | ')} |`)].join('\n');
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

// ── issue #13's scenarios ──────────────────────────────────────────────────────────────────

function isNewFault(f: ScenarioOptions['fault']): f is NewFault {
  return ['ingest-disk-full', 'ingest-fd-limit', 'shared-dir', 'writer-kill', 'arbitrary-append', 'blackhole'].includes(f);
}

const KILL_WRITER = path.join(REPO, 'test/fixtures/kill-writer.cjs');
const rand = (a: number, b: number): number => a + Math.floor(Math.random() * (b - a));

function mountTmpfs(dir: string, mib: number): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir]);
}

/** Write ballast until the filesystem is full to the last byte; returns the bytes written. */
function fillUp(file: string): number {
  const fd = fs.openSync(file, 'a');
  let n = 0;
  try {
    for (const size of [1 << 20, 65536, 4096, 512, 1]) {
      const buf = Buffer.alloc(size, 0x5a);
      try {
        for (;;) n += fs.writeSync(fd, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return n;
}

/** The simulated resources; `suffix` keeps the streams of several edges apart in the ledgers. */
function sims(suffix = '', o: { imuHz?: number; camBytes?: number; camHz?: number } = {}): unknown[] {
  return [
    { name: `imu${suffix}`, model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: o.imuHz ?? 1000 }] },
    { name: `temp${suffix}`, model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] },
    { name: `cam${suffix}`, model: 'sim:camera', attributes: { image_bytes: o.camBytes ?? 16384 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: o.camHz ?? 10 }] },
  ];
}

/** One edge: an `edgecap run` process with its config, restarted as the scenario says. */
class Edge {
  child: Child | undefined;
  metricsPort = 0;
  lastSample: Sample | undefined;
  maxRss = 0;
  constructor(
    readonly config: string,
    readonly captureDir: string,
    private readonly env: NodeJS.ProcessEnv = {},
  ) {}

  async start(): Promise<void> {
    this.metricsPort = await freePort();
    this.child = runCli(['run', '--config', this.config, '--metrics', `127.0.0.1:${this.metricsPort}`], { env: this.env });
  }

  /** Wait for its metrics endpoint (it started capturing). */
  async ready(): Promise<void> {
    await waitFor('edge metrics', async () => (this.child!.proc.exitCode !== null ? Promise.reject(new Error(`edge exited: ${this.child!.stderr.slice(-10).join('\n')}`)) : await scrape(this.metricsPort)), 90_000, 100);
  }

  async sample(): Promise<void> {
    this.maxRss = Math.max(this.maxRss, rssMiB(this.child?.proc.pid));
    const s = await scrape(this.metricsPort);
    if (s) this.lastSample = s;
  }

  alive(): boolean {
    return !!this.child && this.child.proc.exitCode === null && this.child.proc.signalCode === null;
  }

  /** SIGTERM: must stop cleanly (exit 0). */
  async stop(produced: Map<string, number>): Promise<void> {
    await this.sample();
    this.addTo(produced);
    this.child!.proc.kill('SIGTERM');
    // stop() must always return (issue #13): a hang is a finding, reported with the edge's last words
    const end = await Promise.race([this.child!.exited, sleep(60_000).then(() => undefined)]);
    if (!end) {
      const tail = this.child!.stderr.slice(-30).join('\n');
      await sigkill(this.child!);
      throw new Error(`edge did not exit within 60 s of SIGTERM:\n${tail}`);
    }
    if (end.code !== 0) throw new Error(`edge did not stop cleanly: ${JSON.stringify(end)}\n${this.child!.stderr.slice(-20).join('\n')}`);
  }

  async kill(produced: Map<string, number>): Promise<void> {
    await this.sample();
    this.addTo(produced);
    await sigkill(this.child!);
  }

  private addTo(produced: Map<string, number>): void {
    for (const [k, v] of this.lastSample?.captured ?? []) produced.set(k, (produced.get(k) ?? 0) + v);
    this.lastSample = undefined;
  }
}

async function uploadedFiles(port: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /^edgecap_sync_uploaded_files_total (\d+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** `edgecap ingest` under `prlimit --nofile=N` (a process of its own, the fd limit its own). */
async function startLimitedIngest(o: { data: string; port: number; tls: DevCert; apiKey: string; nofile: number }): Promise<IngestProc> {
  const args = [`--nofile=${o.nofile}:${o.nofile}`, process.execPath, CLI, 'ingest', '--listen', `127.0.0.1:${o.port}`, '--data', o.data, '--api-key', o.apiKey, '--tls-cert', o.tls.certFile, '--tls-key', o.tls.keyFile];
  const proc = spawn('prlimit', args, { cwd: REPO, env: { ...process.env, EDGECAP_LOG_LEVEL: process.env.EDGECAP_LOG_LEVEL ?? 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  readline.createInterface({ input: proc.stdout }).on('line', (l) => stdout.push(l));
  readline.createInterface({ input: proc.stderr }).on('line', (l) => stderr.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const line = await waitFor('limited ingest to listen', () => stdout.find((l) => l.startsWith('listening ')) ?? (proc.exitCode !== null ? Promise.reject(new Error(`ingest exited: ${stderr.join('\n')}`)) : undefined), 20_000);
  return { proc, stdout, stderr, exited, address: line.slice('listening '.length) };
}

function assertAlive(c: Child | undefined, what: string): void {
  if (c && (c.proc.exitCode !== null || c.proc.signalCode !== null)) throw new Error(`${what} died (${c.proc.exitCode ?? c.proc.signalCode}):\n${c.stderr.slice(-20).join('\n')}`);
}

interface Ctx {
  o: ScenarioOptions;
  root: string;
  certs: DevCert;
  ingestPort: number;
  data: string;
  ledger: Ledger;
  files: FileLedger | undefined;
  edges: Edge[];
  produced: Map<string, number>;
  ingest: IngestProc | undefined;
  startIngest: () => Promise<IngestProc>;
  kills: number;
  restarts: number;
  networkFaults: number;
  faults: number;
  restoreToUploadMs: number[];
  notes: string[];
  /** Undo what the scenario set up outside `root` (mounts), in reverse order. */
  cleanup: (() => void)[];
}

function edgeConfig(c: Ctx, name: string, captureDir: string, port: number, extra: Record<string, unknown> = {}): string {
  return writeJson(path.join(c.root, `${name}.json`), {
    capture_dir: captureDir,
    part_id: `torture-${c.o.name}`,
    sync_interval_mins: 0.005,
    maximum_capture_file_age_ms: 250,
    maximum_capture_file_size_bytes: 65536,
    flush_interval_ms: c.o.flushIntervalMs ?? 100,
    ingest: { address: `localhost:${port}`, ca_file: c.certs.caFile, api_key: 'key' },
    resources: sims(),
    ...extra,
  });
}

export async function runNewScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const t0 = Date.now();
  const root = tmpdir(`torture-${o.name}`);
  const c: Ctx = {
    o,
    root,
    certs: makeDevCert(path.join(root, 'certs')),
    ingestPort: await freePort(),
    data: path.join(root, 'ingest'),
    ledger: new Ledger(),
    files: undefined,
    edges: [],
    produced: new Map(),
    ingest: undefined,
    startIngest: () => startIngestProcess({ data: c.data, port: c.ingestPort, tls: c.certs, apiKey: 'key' }),
    kills: 0,
    restarts: 0,
    networkFaults: 0,
    faults: 0,
    restoreToUploadMs: [],
    notes: [],
    cleanup: [],
  };
  try {
    const body = { 'ingest-disk-full': ingestDiskFull, 'ingest-fd-limit': ingestFdLimit, 'shared-dir': sharedDir, 'writer-kill': writerKill, 'arbitrary-append': arbitraryAppend, blackhole }[o.fault as NewFault];
    const extraExcused = await body(c);
    return await settle(c, t0, extraExcused);
  } finally {
    for (const edge of c.edges) if (edge.alive()) await sigkill(edge.child!);
    if (c.ingest && c.ingest.proc.exitCode === null && c.ingest.proc.signalCode === null) await sigkill(c.ingest);
    for (const f of c.cleanup.reverse()) {
      try {
        f();
      } catch {
        /* best effort */
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** One edge per capture dir (a restarted edge is a new Edge on the same dir). */
function byDir(c: Ctx): Edge[] {
  return [...new Map(c.edges.map((e) => [e.captureDir, e])).values()];
}

function snapshotAll(c: Ctx): void {
  for (const e of byDir(c)) c.ledger.snapshotDisk(e.captureDir);
}

/**
 * The end of every scenario: the edges stopped cleanly, the backlog drained straight to the
 * server (`edgecap sync` until nothing is left), then the exact accounting.
 */
async function settle(c: Ctx, t0: number, drainExtra: Record<string, unknown> | void): Promise<ScenarioResult> {
  const tSettle = Date.now();
  await Promise.all(c.edges.filter((e) => e.alive()).map((e) => e.stop(c.produced)));
  const maxRss = Math.max(0, ...c.edges.map((e) => e.maxRss));
  const tStopped = Date.now();
  snapshotAll(c);
  c.ingest ??= await c.startIngest();
  // Each edge's backlog in turn (the stopped edges' configs, straight to the server; all at
  // once against the fd-limited ingest would mostly measure refusals and CLI start-ups).
  for (const [i, e] of byDir(c).entries()) {
    await (async () => {
      const drainConfig = writeJson(path.join(c.root, `drain-${i}.json`), { ...JSON.parse(fs.readFileSync(e.config, 'utf8')), ingest: { address: `localhost:${c.ingestPort}`, ca_file: c.certs.caFile, api_key: 'key' }, ...(drainExtra ?? {}) });
      await waitFor(
        'backlog drained',
        async () => {
          const r = await cli(['sync', '--config', drainConfig]);
          const last = r.stdout.trim().split('\n').at(-1) ?? '';
          if (!last.startsWith('{')) throw new Error(`sync failed: ${r.stderr}\n${r.stdout}`);
          const res = JSON.parse(last) as { uploaded: number; alreadyHad: number; failed: number; deferred: number; errors: string[] };
          // Only a verdict about a file ends the drain; a busy server (RESOURCE_EXHAUSTED) is waited out.
          if (res.failed > 0) throw new Error(`sync moved files to failed/: ${last}`);
          if (res.errors.length > 0 || res.deferred > 0) {
            await sleep(500);
            return false;
          }
          // Nothing refused or deferred: drained once no finished file is left to sync.
          const cfg = JSON.parse(fs.readFileSync(drainConfig, 'utf8')) as { additional_sync_paths?: string[] };
          const left = listFiles(e.captureDir, FINISHED_EXT).length + (cfg.additional_sync_paths ?? []).reduce((n, d) => n + fs.readdirSync(d, { recursive: true, withFileTypes: true }).filter((f) => f.isFile()).length, 0);
          return left === 0;
        },
        180_000,
        100,
      );
    })();
  }
  c.notes.push(`edges stopped in ${Math.round((tStopped - tSettle) / 1000)} s, drained in ${Math.round((Date.now() - tStopped) / 1000)} s`);
  // Drained: no upload is in flight, so no staging file may be left (one left by a refused
  // upload, e.g. on ENOSPC, would hold its disk space until the ingest restarts).
  const staging = path.join(c.data, 'staging');
  const leftovers = fs.existsSync(staging) ? fs.readdirSync(staging).length : 0;
  if (leftovers) c.notes.push(`staging leftovers ${leftovers}`);
  c.ingest.proc.kill('SIGTERM');
  if (!(await Promise.race([c.ingest.exited, sleep(60_000).then(() => undefined)]))) {
    const tail = c.ingest.stderr.slice(-30).join('\n');
    await sigkill(c.ingest);
    throw new Error(`the ingest did not exit within 60 s of SIGTERM:\n${tail}`);
  }
  await c.ledger.loadExport(c.data);
  const gaps = await gapReport(c.data);
  const janitorRanges = new Map<string, [number, number][]>();
  const reasons = new Map<string, number>();
  for (const st of gaps.streams) {
    for (const g of st.gaps) {
      for (const r of g.reasons) reasons.set(r, (reasons.get(r) ?? 0) + 1);
      if (!g.reasons.includes('janitor')) continue;
      const k = `${st.resource}/${st.method}`;
      janitorRanges.set(k, [...(janitorRanges.get(k) ?? []), [g.from_seq, g.to_seq]]);
    }
  }
  const rep = c.ledger.report((k, seq) => (janitorRanges.get(k) ?? []).some(([a, b]) => seq >= a && seq <= b));
  let { lost, duplicated, corrupt } = rep;
  if (c.files) {
    await c.files.load(c.data);
    const f = c.files.report();
    lost += f.lost;
    duplicated += f.duplicated;
    corrupt += f.corrupt;
    c.notes.push(`arbitrary files: ${f.files} written, ${f.stored} versions stored, ${f.reuploaded} re-uploaded after a change${f.examples.length ? `; ${f.examples.join(', ')}` : ''}`);
  }
  if (rep.lostExamples.length) c.notes.push(`lost e.g. ${rep.lostExamples.join(' ')}`);
  const failedList = byDir(c).flatMap((e) => countFailed(e.captureDir));
  if (failedList.length) c.notes.push(`failed/: ${failedList.slice(0, 3).map((f) => `${path.basename(f)} (${fs.existsSync(`${f}.reason`) ? fs.readFileSync(`${f}.reason`, 'utf8').trim().slice(0, 120) : '?'})`).join('; ')}`);
  if (reasons.size) c.notes.push(`gap reasons: ${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')}`);
  return {
    scenario: c.o.name,
    kills: c.kills,
    restarts: c.restarts,
    networkFaults: c.networkFaults,
    produced: [...c.produced.values()].reduce((a, b) => a + b, 0),
    flushed: rep.flushed,
    ingested: rep.ingested,
    lost,
    deletedByJanitor: rep.deletedByPolicy,
    duplicated,
    corrupt,
    unexplainedGaps: gaps.unexplained_gaps,
    maxUnflushed: 0,
    maxUnflushedMs: 0,
    maxRssMiB: Math.round(maxRss),
    faults: c.faults,
    failed: failedList.length,
    restoreToUploadMs: c.restoreToUploadMs,
    notes: c.notes.join('; '),
    seconds: Math.round((Date.now() - t0) / 1000),
  };
}

/** Sleep, sampling every edge (RSS, produced) and snapshotting every capture dir. */
async function roundTick(c: Ctx, ms: number): Promise<void> {
  await sleep(ms);
  for (const e of c.edges) if (e.alive()) await e.sample();
  snapshotAll(c);
}

/** The ingest's data dir on a small tmpfs, filled to the last byte for a while, then freed. */
async function ingestDiskFull(c: Ctx): Promise<void> {
  const fsDir = path.join(c.root, 'ingestfs');
  // Room for what the run stores (~0.3 MiB a round) besides the ballast, which takes whatever is free.
  mountTmpfs(fsDir, Math.max(16, 8 + c.o.rounds));
  c.cleanup.push(() => execFileSync('umount', ['-l', fsDir]));
  c.data = path.join(fsDir, 'data');
  c.ingest = await c.startIngest();
  const edge = new Edge(edgeConfig(c, 'edge', path.join(c.root, 'capture'), c.ingestPort), path.join(c.root, 'capture'));
  c.edges.push(edge);
  await edge.start();
  await edge.ready();
  const ballast = path.join(fsDir, 'ballast');
  const cycle = Math.min(c.o.rounds, 24);
  let full = false;
  let uploadedWhileFull = 0;
  for (let round = 0; round < c.o.rounds; round++) {
    await roundTick(c, rand(800, 1200));
    assertAlive(c.ingest, 'the ingest');
    assertAlive(edge.child, 'the edge');
    const ph = round % cycle;
    if (ph === Math.floor(cycle * 0.2)) {
      fillUp(ballast);
      full = true;
      c.faults++;
      uploadedWhileFull = (await uploadedFiles(edge.metricsPort)) ?? 0;
    } else if (full && ph === Math.floor(cycle * 0.7)) {
      // Still full to the last byte? (the ingest must not have freed space by deleting data)
      const up = (await uploadedFiles(edge.metricsPort)) ?? 0;
      c.notes.push(`${up - uploadedWhileFull} files committed while full`);
      fs.rmSync(ballast);
      full = false;
    }
  }
  if (full) fs.rmSync(ballast);
}

/** Many edges against an ingest whose fd limit is tiny; the ingest SIGKILLed once mid-way (everyone reconnects at once). */
async function ingestFdLimit(c: Ctx): Promise<void> {
  const nofile = 100;
  c.startIngest = () => startLimitedIngest({ data: c.data, port: c.ingestPort, tls: c.certs, apiKey: 'key', nofile });
  c.ingest = await c.startIngest();
  const n = c.o.edges ?? 6;
  for (let i = 0; i < n; i++) {
    const dir = path.join(c.root, `capture-${i}`);
    const edge = new Edge(edgeConfig(c, `edge-${i}`, dir, c.ingestPort, { part_id: `torture-fd-${i}`, maximum_num_sync_threads: 2, maximum_capture_file_age_ms: 1000, resources: sims(`-${i}`, { imuHz: 100 }) }), dir);
    c.edges.push(edge);
    await edge.start();
  }
  for (const e of c.edges) await e.ready();
  c.notes.push(`${n} edges, ingest fd limit ${nofile}`);
  const tRounds = Date.now();
  for (let round = 0; round < c.o.rounds; round++) {
    await roundTick(c, rand(800, 1200));
    for (const e of c.edges) assertAlive(e.child, 'an edge');
    assertAlive(c.ingest, 'the ingest');
    // The ingest SIGKILLed every 20 rounds (once in a short run): every edge reconnects at once.
    const every = Math.min(20, c.o.rounds);
    if (round % every === Math.floor(every / 2)) {
      await sigkill(c.ingest!);
      c.kills++;
      snapshotAll(c);
      c.ingest = await c.startIngest();
      c.restarts++;
    }
  }
  c.notes.push(`rounds took ${Math.round((Date.now() - tRounds) / 1000)} s`);
}

/**
 * One capture dir on a small tmpfs (disk pressure: the janitor deletes by policy), a throttled
 * link, and two kinds of processes syncing it: the `edgecap run` that captures (its janitor
 * too) and `edgecap sync` processes one after another, every other one SIGKILLed mid-round.
 */
async function sharedDir(c: Ctx): Promise<void> {
  const small = path.join(c.root, 'small');
  mountTmpfs(small, 24);
  c.cleanup.push(() => execFileSync('umount', ['-l', small]));
  const proxy = new FaultyProxy(c.ingestPort, '127.0.0.1', 1_500_000);
  const port = await proxy.listen();
  c.cleanup.push(() => void proxy.close());
  c.ingest = await c.startIngest();
  const dir = path.join(small, 'capture');
  const config = edgeConfig(c, 'edge', dir, port, { janitor_interval_ms: 300, resources: sims('', { camBytes: 65536, camHz: 60 }) });
  const edge = new Edge(config, dir);
  c.edges.push(edge);
  await edge.start();
  await edge.ready();
  let stop = false;
  let syncUploaded = 0;
  let syncRuns = 0;
  const other = (async () => {
    while (!stop) {
      const s = runCli(['sync', '--config', config]);
      syncRuns++;
      // Every other run SIGKILLed mid-round (its upload leases then name a dead process); the
      // others run their round to the end (SIGKILLed too if one takes over 20 s).
      const t = setTimeout(() => s.proc.kill('SIGKILL'), syncRuns % 2 === 0 ? rand(500, 3000) : 20_000);
      const end = await s.exited;
      clearTimeout(t);
      if (end.signal === 'SIGKILL') {
        c.kills++;
        continue;
      }
      const last = s.stdout.at(-1);
      if (last?.startsWith('{')) syncUploaded += (JSON.parse(last) as { uploaded: number }).uploaded;
    }
  })();
  try {
    for (let round = 0; round < c.o.rounds; round++) {
      await roundTick(c, rand(800, 1200));
      assertAlive(edge.child, 'the edge');
      assertAlive(c.ingest, 'the ingest');
    }
  } finally {
    stop = true;
    await other;
  }
  c.notes.push(`${syncRuns} edgecap sync runs beside edgecap run, ${syncUploaded} files uploaded by them`);
  await proxy.close();
  // the edge's config points at the proxy: the drain goes straight to the server
}

/**
 * The capture writer thread of a real `edgecap run`, killed from outside (SIGUSR2 to the
 * kill-writer fixture, preloaded with NODE_OPTIONS). Its restart backoff doubles (1 s, 2 s, 4 s,
 * ...), so every few kills the edge is stopped (SIGTERM, alternately SIGKILL) and started again.
 */
async function writerKill(c: Ctx): Promise<void> {
  const dir = path.join(c.root, 'capture');
  c.ingest = await c.startIngest();
  const env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${KILL_WRITER}`.trim(), EDGECAP_TORTURE_KILL_WRITER: '1' };
  const newEdge = async (): Promise<Edge> => {
    const e = new Edge(edgeConfig(c, 'edge', dir, c.ingestPort), dir, env);
    c.edges.push(e);
    await e.start();
    await e.ready();
    return e;
  };
  let edge = await newEdge();
  let sinceStart = 0;
  let misses = 0;
  let writerKills = 0;
  let stops = 0;
  for (let round = 0; round < c.o.rounds; round++) {
    await roundTick(c, rand(1200, 2500));
    assertAlive(edge.child, 'the edge');
    const before = edge.child!.stderr.filter((l) => l.startsWith('torture: ')).length;
    edge.child!.proc.kill('SIGUSR2');
    const line = await waitFor('the kill-writer fixture', () => edge.child!.stderr.filter((l) => l.startsWith('torture: '))[before], 5_000, 20);
    if (line === 'torture: writer killed') {
      c.kills++;
      writerKills++;
      sinceStart++;
    } else misses++;
    snapshotAll(c);
    if (sinceStart >= 4) {
      await sleep(rand(0, 1500));
      if (stops++ % 2 === 0) await edge.stop(c.produced);
      else {
        await edge.kill(c.produced);
        c.kills++;
      }
      snapshotAll(c);
      edge = await newEdge();
      c.restarts++;
      sinceStart = 0;
    }
  }
  await sleep(2_500); // let the last restarted writer take over before the final stop
  // Each kill must be seen by the edge (a restart scheduled). Whether a kill also leaves a
  // 'writer_crash' gap depends on whether the writer held unwritten readings at that instant
  // (about a third of kills in the long run), so the gap is not what proves the kill happened.
  const restarts = c.edges.reduce((n, e) => n + (e.child?.stderr.filter((l) => l.includes('writer thread died; restarting it')).length ?? 0), 0);
  c.notes.push(`${misses} signals found no live writer (restart backoff); ${writerKills} writer kills, ${restarts} restarts scheduled`);
}

/**
 * additional_sync_paths files appended to while their upload is in flight (a throttled link
 * makes it slow; the append comes once the proxy has passed 128 KiB of it). The edge must
 * send the new version after the old one, and store nothing torn.
 */
async function arbitraryAppend(c: Ctx): Promise<Record<string, unknown>> {
  const proxy = new FaultyProxy(c.ingestPort, '127.0.0.1', 512 * 1024);
  const port = await proxy.listen();
  c.cleanup.push(() => void proxy.close());
  c.ingest = await c.startIngest();
  const files = path.join(c.root, 'files');
  const staging = path.join(c.root, 'staging');
  fs.mkdirSync(files);
  fs.mkdirSync(staging);
  c.files = new FileLedger();
  const dir = path.join(c.root, 'capture');
  const config = edgeConfig(c, 'edge', dir, port, {
    additional_sync_paths: [files],
    file_last_modified_millis: 200,
    resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] }],
  });
  const edge = new Edge(config, dir);
  c.edges.push(edge);
  await edge.start();
  await edge.ready();
  let inFlight = 0;
  for (let round = 0; round < c.o.rounds; round++) {
    const name = `f${round}.bin`;
    let content = randomBytes(768 * 1024);
    fs.writeFileSync(path.join(staging, name), content);
    fs.renameSync(path.join(staging, name), path.join(files, name));
    c.files.wrote(name, content);
    const appends = 1 + (round % 2);
    for (let a = 0; a < appends; a++) {
      const from = proxy.forwardedUp;
      const seen = await waitFor('upload in flight', () => proxy.forwardedUp - from >= 128 * 1024 || undefined, 8_000, 10).catch(() => false);
      if (seen) inFlight++;
      const more = randomBytes(65536);
      fs.appendFileSync(path.join(files, name), more);
      content = Buffer.concat([content, more]);
      c.files.wrote(name, content);
      c.faults++;
    }
    await waitFor(`${name} synced`, () => !fs.existsSync(path.join(files, name)), 30_000, 50).catch(() => undefined);
    await roundTick(c, 100);
    assertAlive(edge.child, 'the edge');
  }
  c.notes.push(`${inFlight} of ${c.faults} appends while the proxy was passing an upload`);
  await proxy.close();
  return { file_last_modified_millis: 0 };
}

/**
 * The link black-holed for a long while (connections accepted, no byte passes), then back:
 * link restore → first committed upload (the edge's own counter, polled every 25 ms) must be
 * at most sync_probe_interval_ms + 2 s.
 */
async function blackhole(c: Ctx): Promise<void> {
  const proxy = new FaultyProxy(c.ingestPort);
  const port = await proxy.listen();
  c.cleanup.push(() => void proxy.close());
  c.ingest = await c.startIngest();
  const probeMs = c.o.probeIntervalMs ?? 2000;
  const dir = path.join(c.root, 'capture');
  const edge = new Edge(edgeConfig(c, 'edge', dir, port, { sync_probe_interval_ms: probeMs }), dir);
  c.edges.push(edge);
  await edge.start();
  await edge.ready();
  for (const { ms, restore } of c.o.blackholes ?? [{ ms: 18_000, restore: 'reset' as const }]) {
    for (let t = 0; t < 3; t++) await roundTick(c, 1000);
    proxy.blackhole();
    c.networkFaults++;
    const end = Date.now() + ms;
    await roundTick(c, 1000); // an ack already past the proxy may still be counted
    const atStart = (await uploadedFiles(edge.metricsPort)) ?? 0;
    while (Date.now() < end) await roundTick(c, Math.min(2000, Math.max(0, end - Date.now())));
    const atEnd = (await uploadedFiles(edge.metricsPort)) ?? 0;
    if (atEnd !== atStart) c.notes.push(`${atEnd - atStart} uploads counted during a blackhole`);
    const connsBefore = proxy.stats.connections;
    proxy.restore(restore);
    const restoredAt = Date.now();
    const first = await waitFor('first upload after restore', async () => ((await uploadedFiles(edge.metricsPort)) ?? 0) > atEnd || undefined, 120_000, 25).then(
      () => Date.now() - restoredAt,
      () => Infinity,
    );
    c.restoreToUploadMs.push(first);
    c.notes.push(`blackhole ${ms / 1000} s (${restore}): ${proxy.stats.connections - connsBefore} new connections until the first upload`);
    assertAlive(edge.child, 'the edge');
  }
  for (let t = 0; t < 3; t++) await roundTick(c, 1000);
  c.notes.push(`sync_probe_interval_ms ${probeMs}`);
  await proxy.close();
}
