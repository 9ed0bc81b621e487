// Capture end to end: collector threads (a user module returning a preallocated reading, run as
// fast as the scheduler allows) → SAB rings → writer thread → flushed, renamed .capture files.
// Counted on disk afterwards by scanning frames (CRC checked), not trusted from counters.
// Scheduling: the same pipeline at a fixed frequency; jitter from time_requested_us in the files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaptureEngine } from '@edgecap/capture';
import { openStateStore } from '@edgecap/store';
import { listFiles, scanFrames, readCaptureBytes, FILE_MAGIC, FrameType } from '@edgecap/format';

const FIXTURE = fileURLToPath(new URL('../fixtures/blob-resource.js', import.meta.url));
const elapsed = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function specs(n, { bytes, binary, hz, queueBytes }) {
  return Array.from({ length: n }, (_, i) => ({
    name: `r${i}`,
    module: FIXTURE,
    attributes: { bytes, binary },
    methods: [{ method: 'Readings', frequencyHz: hz, ...(queueBytes ? { queueBytes } : {}) }],
  }));
}

/** Count READING frames and bytes in every finished file (CRC-verified scan, no msgpack decode). */
function countOnDisk(captureDir) {
  let readings = 0;
  let bytes = 0;
  let corrupt = 0;
  const files = listFiles(captureDir, '.capture');
  for (const f of files) {
    const b = fs.readFileSync(f);
    bytes += b.length;
    for (const ev of scanFrames(b, FILE_MAGIC.length)) {
      if (ev.kind === 'frame') {
        if (ev.type === FrameType.READING) readings++;
      } else corrupt++;
    }
  }
  return { files: files.length, readings, bytes, corrupt, prog: listFiles(captureDir, '.prog').length };
}

async function runEngine(dir, resources, seconds, maxFileBytes) {
  const captureDir = path.join(dir, 'capture');
  const store = openStateStore(path.join(dir, 'state'));
  const engine = new CaptureEngine({ captureDir, store, partId: 'bench', tags: [], ...(maxFileBytes ? { maxFileBytes } : {}) });
  const errors = [];
  engine.on('error', (e) => errors.push(String(e?.message ?? e)));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await engine.start(resources);
  const startSec = elapsed(t0);
  await sleep(seconds * 1000);
  const stats = engine.stats();
  const tStop = process.hrtime.bigint();
  await engine.stop();
  const wallSec = elapsed(t0);
  const stopSec = elapsed(tStop);
  const cpu = process.cpuUsage(cpu0);
  await store.close();
  return { captureDir, stats, startSec, stopSec, wallSec, cpuSec: (cpu.user + cpu.system) / 1e6, errors };
}

/** Throughput: `resources` collectors at full speed for `seconds`; rate = readings on disk ÷ (start … stop done). */
export async function captureThroughput({ dir, resources, bytes, binary, seconds, maxFileBytes, queueBytes }) {
  const r = await runEngine(dir, specs(resources, { bytes, binary, hz: 1e9, queueBytes }), seconds, maxFileBytes);
  const disk = countOnDisk(r.captureDir);
  const sum = (k) => r.stats.reduce((a, s) => a + s[k], 0);
  fs.rmSync(dir, { recursive: true, force: true });
  const produceSec = r.wallSec; // the whole life: start, run, drain, flush, rename
  return {
    resources,
    bytes,
    binary,
    seconds,
    maxFileBytes: maxFileBytes ?? null,
    queueBytes: queueBytes ?? null,
    wallSec: r.wallSec,
    startSec: r.startSec,
    stopSec: r.stopSec,
    captured: sum('captured'),
    dropped: sum('dropped'),
    writeErrors: sum('writeErrors'),
    onDisk: disk.readings,
    diskBytes: disk.bytes,
    files: disk.files,
    corrupt: disk.corrupt,
    prog: disk.prog,
    perSec: disk.readings / produceSec,
    mbps: disk.bytes / 1e6 / produceSec,
    bytesPerReading: disk.readings ? disk.bytes / disk.readings : 0,
    cpuSec: r.cpuSec,
    cpuSecPerMillion: disk.readings ? r.cpuSec / (disk.readings / 1e6) : null,
    errors: r.errors.slice(0, 3),
  };
}

/**
 * Scheduling at `hz` with `collectors` resources for `seconds`: per stream, achieved frequency and
 * period jitter |Δt_requested − period| (µs) from the readings on disk; CPU of the whole process.
 */
export async function scheduling({ dir, collectors, hz, seconds }) {
  const r = await runEngine(dir, specs(collectors, { bytes: 64, binary: false, hz }), seconds);
  const period = 1e6 / hz;
  const perStream = new Map();
  for (const f of listFiles(r.captureDir, '.capture').sort()) {
    const s = readCaptureBytes(fs.readFileSync(f), f);
    const key = s.header?.name ?? f;
    let arr = perStream.get(key);
    if (!arr) perStream.set(key, (arr = []));
    for (const x of s.readings) arr.push([x.seq, x.time_requested_us]);
  }
  const jitter = [];
  const achieved = [];
  let readings = 0;
  for (const arr of perStream.values()) {
    arr.sort((a, b) => a[0] - b[0]);
    readings += arr.length;
    // steady state: skip the first 10% (thread start, JIT warm-up)
    const from = Math.floor(arr.length * 0.1);
    for (let i = from + 1; i < arr.length; i++) {
      if (arr[i][0] !== arr[i - 1][0] + 1) continue;
      jitter.push(Math.abs(arr[i][1] - arr[i - 1][1] - period));
    }
    if (arr.length - from > 1) achieved.push(((arr.length - from - 1) * 1e6) / (arr[arr.length - 1][1] - arr[from][1]));
  }
  const sorted = Float64Array.from(jitter).sort();
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);
  // histogram for the plot: log-spaced bins in µs
  const edges = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, Infinity];
  const hist = new Array(edges.length - 1).fill(0);
  for (const v of sorted) {
    let k = 0;
    while (v >= edges[k + 1]) k++;
    hist[k]++;
  }
  const sum = (k) => r.stats.reduce((a, s) => a + s[k], 0);
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    collectors,
    hz,
    seconds,
    readings,
    achievedHzMean: achieved.length ? achieved.reduce((a, b) => a + b, 0) / achieved.length : null,
    achievedHzMin: achieved.length ? Math.min(...achieved) : null,
    jitterP50: pct(50),
    jitterP99: pct(99),
    jitterMax: sorted.length ? sorted[sorted.length - 1] : null,
    missed: sum('missedDeadlines'),
    dropped: sum('dropped'),
    cpuSec: r.cpuSec,
    cpuPctOfCore: (100 * r.cpuSec) / r.wallSec,
    wallSec: r.wallSec,
    hist: { edges: edges.slice(1).map((e) => (Number.isFinite(e) ? e : null)), counts: hist },
    errors: r.errors.slice(0, 3),
  };
}
