// Realistic load (issue 14): what edgecap costs on a robot, beside floors measured in the same run.
//   load      `edgecap run`-equivalent DataManager process, sync off: 16 sensors @ 100 Hz + an IMU
//             @ 1 kHz + 2 cameras (64 KiB) @ 10 Hz; and idle: one sensor @ 1 Hz. Steady-state CPU
//             (% of one core, whole process: every thread) and RSS over a window after warm-up;
//             start-up = process spawn → every stream's first reading (performance.now() counts
//             from the process's start).
//   floors    19 bare worker threads waking at the same rates with setTimeout; the same with
//             Atomics.wait; 19 timers in one thread; one bare thread at 1 Hz (idle). Bare threads
//             have the collectors' heap limit (COLLECTOR_HEAP_MB), which sizes V8's young generation.
//   import    import('@edgecap/datamanager') in a fresh process, and import('edgecap') (the
//             published package's bundle, built here), beside `node -e 0`.
//   slope     RSS over 1, 4, 16, 64 resources at 10 Hz: the least-squares MB per collector.
//   shared    the realistic load with its 16 sensors in the shared collector thread
//             (`collector: "shared"`), and the slope with every resource shared.
//   threads   where each process's CPU goes over the same window, by thread: the main thread,
//             the writer, the collector threads (grouped by resource: sensors, IMU, cameras), and
//             the rest (V8's compiler and GC helpers, libuv's pool); a floor's threads by rate.
// Each measurement runs in its own process (runChild), so CPU and RSS are its own.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { fmt, median, ROOT_DIR } from './util.js';

/** The CLI's package resolves @edgecap/datamanager as an app would (benchmarks does not depend on it). */
const APP_DIR = path.join(ROOT_DIR, 'packages', 'cli');
const DATAMANAGER = pathToFileURL(path.join(ROOT_DIR, 'packages', 'datamanager', 'dist', 'index.js')).href;
const EDGECAP_DIR = path.join(ROOT_DIR, 'packages', 'edgecap');
/** The published package's bundle (buildPackage() makes it from the dist just compiled). */
const PACKAGE_INDEX = pathToFileURL(path.join(EDGECAP_DIR, 'dist', 'index.js')).href;

function buildPackage() {
  const b = spawnSync(process.execPath, [path.join(EDGECAP_DIR, 'scripts', 'build.js')], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`building the edgecap package: ${b.stderr}`);
}
const CAPTURE = pathToFileURL(path.join(ROOT_DIR, 'packages', 'capture', 'dist', 'index.js')).href;

const MiB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The issue's loads, as wake-up rates (Hz) per resource. */
export const LOADS = {
  realistic: [...Array(16).fill(100), 1000, 10, 10],
  idle: [1],
};

function resources(load, shared) {
  if (load === 'idle') return [{ name: 'env', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 1 }] }];
  const out = [];
  for (let i = 0; i < 16; i++) out.push({ name: `sensor${i}`, model: 'sim:sensor', ...(shared ? { collector: 'shared' } : {}), capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] });
  out.push({ name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'LinearAcceleration', capture_frequency_hz: 1000 }] });
  for (let i = 0; i < 2; i++) out.push({ name: `camera${i}`, model: 'sim:camera', attributes: { image_bytes: 65536 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 10, additional_params: { mime_type: 'image/jpeg' } }] });
  return out;
}

/** CPU % of one core and RSS (mean, max) of this whole process over `seconds`. */
async function steady(seconds) {
  const rss = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    rss.push(process.memoryUsage.rss() / MiB);
    await sleep(Math.min(250, Math.max(1, end - performance.now())));
  }
  const cpu = process.cpuUsage(cpu0);
  const wallSec = (performance.now() - t0) / 1000;
  return {
    cpuPct: (100 * (cpu.user + cpu.system)) / 1e6 / wallSec,
    rssMB: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxMB: Math.max(...rss),
    windowSec: wallSec,
  };
}

const usSum = (u) => (u ? u.user + u.system : 0);
const threadCpuNow = () => (typeof process.threadCpuUsage === 'function' ? usSum(process.threadCpuUsage()) : undefined);

/**
 * % of one core by thread between two reads `a`, `b` (each {at: performance.now(), process,
 * main, threads: Map(group → µs summed), counts: Map(group → threads)}): the groups, the main
 * thread, and `other` = the process less every thread read (V8's and libuv's helpers).
 */
function threadShares(a, b) {
  const sec = (b.at - a.at) / 1000;
  const pct = (us) => us / 1e4 / sec;
  const groups = {};
  let named = 0;
  for (const [g, us] of b.threads) {
    const d = us - (a.threads.get(g) ?? 0);
    named += d;
    groups[g] = { threads: b.counts.get(g), cpuPct: pct(d) };
  }
  const main = b.main !== undefined && a.main !== undefined ? b.main - a.main : undefined;
  const all = b.process - a.process;
  return { windowSec: sec, processPct: pct(all), mainPct: main === undefined ? undefined : pct(main), groups, otherPct: main === undefined ? undefined : pct(all - main - named) };
}

/** Resource name → its group in the breakdown: `sensor12` → `sensor`, `camera0` → `camera`. */
const groupOf = (t) => (t.thread === 'writer' ? 'writer' : t.thread === 'shared' ? 'shared collector' : t.resources[0].replace(/\d+$/, ''));

async function edgecapThreads(dm) {
  const threads = new Map();
  const counts = new Map();
  const c = await dm.cpu();
  for (const t of c.capture) {
    const g = groupOf(t);
    threads.set(g, (threads.get(g) ?? 0) + t.userUs + t.systemUs);
    counts.set(g, (counts.get(g) ?? 0) + 1);
  }
  return { at: performance.now(), process: c.process.userUs + c.process.systemUs, main: c.main && c.main.userUs + c.main.systemUs, threads, counts };
}

/** A DataManager as `edgecap run` makes one (sync off), under `load`; `pkg`: from the published package's bundle. */
export async function load({ dir, load: which, seconds, warmupSeconds = 2, resources: n, hz, shared = false, pkg = false }) {
  const tImport = performance.now();
  const { DataManager } = await import(pkg ? PACKAGE_INDEX : DATAMANAGER);
  const importMs = performance.now() - tImport;
  const res =
    n !== undefined
      ? Array.from({ length: n }, (_, i) => ({ name: `s${i}`, model: 'sim:sensor', ...(shared ? { collector: 'shared' } : {}), capture_methods: [{ method: 'Readings', capture_frequency_hz: hz }] }))
      : resources(which, shared);
  const streams = res.reduce((a, r) => a + r.capture_methods.length, 0);
  const dm = new DataManager({ capture_dir: path.join(dir, 'capture'), sync_disabled: true, resources: res });
  const errors = [];
  dm.on('error', (e) => errors.push(String(e?.message ?? e)));
  // spawn → every stream's first reading (and the first of any stream), polled every 2 ms from
  // the start() call on: collectors may produce before start() resolves
  let firstAnyMs;
  let allFirstMs;
  let startedMs;
  let startError;
  const starting = dm.start().then(
    () => (startedMs = performance.now()),
    (e) => (startError = e),
  );
  const deadline = performance.now() + 120_000;
  for (;;) {
    if (startError) throw startError;
    const got = dm.stats().capture.streams.filter((s) => s.captured > 0).length;
    if (got > 0 && firstAnyMs === undefined) firstAnyMs = performance.now();
    if (got >= streams) {
      allFirstMs = performance.now();
      break;
    }
    if (performance.now() > deadline) throw new Error(`only ${got} of ${streams} streams produced a reading in 120 s`);
    await sleep(2);
  }
  await starting;
  await sleep(warmupSeconds * 1000);
  const st0 = dm.stats().capture.streams;
  const th0 = typeof dm.cpu === 'function' ? await edgecapThreads(dm) : undefined;
  const w = await steady(seconds);
  const th1 = th0 && (await edgecapThreads(dm));
  const st1 = dm.stats().capture.streams;
  const sum = (st, k) => st.reduce((a, s) => a + s[k], 0);
  const readings = sum(st1, 'captured') - sum(st0, 'captured');
  const missed = sum(st1, 'missedDeadlines') - sum(st0, 'missedDeadlines');
  const dropped = sum(st1, 'dropped') - sum(st0, 'dropped');
  await dm.stop();
  return {
    load: `${which ?? `${n} × ${hz} Hz`}${shared ? ', shared' : ''}`,
    streams,
    ...w,
    ...(th0 ? { byThread: threadShares(th0, th1) } : {}),
    readingsPerSec: readings / w.windowSec,
    missedPerSec: missed / w.windowSec,
    dropped,
    errors,
    importMs,
    startMs: startedMs, // process start → dm.start() resolved
    firstAnyMs,
    allFirstMs,
  };
}

// ── floors ───────────────────────────────────────────────────────────────────────────────────

/** A bare thread waking at `hz` from deadlines, doing nothing else; `how`: timeout | atomics. */
const THREAD = `
const { workerData } = require('node:worker_threads');
const { hz, how } = workerData;
const period = 1000 / hz;
let deadline = performance.now();
let n = 0;
if (how === 'atomics') {
  const word = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    deadline += period;
    const wait = deadline - performance.now();
    if (wait > 0) Atomics.wait(word, 0, 0, wait);
    n++;
  }
} else {
  const tick = () => {
    n++;
    deadline += period;
    setTimeout(tick, Math.max(0, Math.ceil(deadline - performance.now())));
  };
  tick();
}
`;

/** The floor of a load: `how` = timeout | atomics (one bare thread per rate) | onethread (timers in this thread). */
export async function floor({ rates, how, seconds, warmupSeconds = 1, heapMb }) {
  const tStart = performance.now();
  const workers = [];
  if (how === 'onethread') {
    for (const hz of rates) {
      const period = 1000 / hz;
      let deadline = performance.now();
      const tick = () => {
        deadline += period;
        setTimeout(tick, Math.max(0, Math.ceil(deadline - performance.now())));
      };
      tick();
    }
  } else {
    await Promise.all(
      rates.map(
        (hz) =>
          new Promise((resolve, reject) => {
            // the heap limit every collector has: V8 sizes a thread's young generation from it
            const w = new Worker(THREAD, { eval: true, workerData: { hz, how }, resourceLimits: { maxOldGenerationSizeMb: heapMb } });
            w.once('online', resolve);
            w.once('error', reject);
            workers.push(w);
          }),
      ),
    );
  }
  const startMs = performance.now() - tStart;
  await sleep(warmupSeconds * 1000);
  // a thread's group is its rate: `100 Hz` × 16, `1000 Hz`, `10 Hz` × 2
  const floorThreads = async () => {
    const threads = new Map();
    const counts = new Map();
    const us = await Promise.all(workers.map((x) => (typeof x.cpuUsage === 'function' ? x.cpuUsage() : undefined)));
    us.forEach((u, i) => {
      const g = `${rates[i]} Hz`;
      threads.set(g, (threads.get(g) ?? 0) + usSum(u));
      counts.set(g, (counts.get(g) ?? 0) + 1);
    });
    const main = threadCpuNow(); // the parts first, the whole last
    return { at: performance.now(), main, process: usSum(process.cpuUsage()), threads, counts };
  };
  const th0 = await floorThreads();
  const w = await steady(seconds);
  const th1 = await floorThreads();
  await Promise.all(workers.map((x) => x.terminate()));
  // the timers of `onethread` keep the process alive: child.js exits after reporting
  return { how, threads: how === 'onethread' ? 0 : rates.length, startMs, ...w, byThread: threadShares(th0, th1) };
}

// ── import time ──────────────────────────────────────────────────────────────────────────────

/** Wall time of fresh processes: `node -e 0`, and ones that import @edgecap/datamanager and `edgecap` (median of `runs`; the package built first, buildPackage). */
export async function importTime({ runs = 5 }) {
  const wall = (args, cwd = APP_DIR) => {
    const t = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
      t.push({ wall: performance.now() - t0, out: r.stdout });
    }
    return t;
  };
  const bare = wall(['-e', '0']);
  const timed = (spec) => ['--input-type=module', '-e', `const t = performance.now(); await import('${spec}'); console.log(performance.now() - t)`];
  const dm = wall(timed('@edgecap/datamanager'));
  const pkg = wall(timed('edgecap'), EDGECAP_DIR); // the package resolves itself by name
  return {
    packageMs: median(pkg.map((x) => Number(x.out.trim()))),
    nodeMs: median(bare.map((x) => x.wall)),
    processMs: median(dm.map((x) => x.wall)),
    importMs: median(dm.map((x) => Number(x.out.trim()))),
    runs,
  };
}

// ── markdown (appended to the report by run.js) ─────────────────────────────────────────────

const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');

export function realisticMarkdown(section) {
  const L = ['## Realistic load (issue 14)', ''];
  if (!section) return L.concat(['_not run._', '']).join('\n');
  if (!section.ok) return L.concat([section.skipped ? `_not run in this invocation (${section.error})._` : `**realistic FAILED** — \`${String(section.error).split('\n')[0]}\``, '']).join('\n');
  const d = section.data;
  const e = (r, f) => (r?.error ? `FAILED: ${r.error.split('|')[0]}` : f(r));
  L.push(
    `\`edgecap run\`-equivalent process (DataManager, sync off, janitor on), steady state over ${fmt(d.params.seconds)} s after ${fmt(d.params.warmupSeconds)} s of warm-up, floors too (in its first ~20 s V8's memory reducer compacts every isolate's start-up garbage: the rows \"window after only …\" show that share); CPU in % of one core for the whole process (every thread); RSS mean (max) over the window. Floors measured in the same run: bare worker threads waking at the same rates (\`setTimeout\` from deadlines, or \`Atomics.wait\`)${d.params.heapMb ? `, with the V8 heap limit every collector has (${d.params.heapMb} MB: it sizes a thread's young generation)` : ''}, and the same timers in one thread. Load average at the start of the section: ${d.loadavg.map((x) => x.toFixed(2)).join(' / ')}${section.carriedFrom ? ` (carried from ${section.carriedFrom})` : ''}.`,
    '',
  );
  const r = d.realistic;
  const fl = d.floors;
  L.push('| load | edgecap | floor: threads + setTimeout | floor: threads + Atomics.wait | floor: timers in one thread | edgecap ÷ setTimeout floor |');
  L.push('|---|---|---|---|---|---|');
  const cell = (x) => e(x, (y) => `${fmt(y.cpuPct)} % CPU, ${fmt(y.rssMB)} (${fmt(y.rssMaxMB)}) MB RSS`);
  L.push(`| 16 sensors @ 100 Hz + IMU @ 1 kHz + 2 cameras 64 KiB @ 10 Hz | ${cell(r)} | ${cell(fl.timeout)} | ${cell(fl.atomics)} | ${cell(fl.onethread)} | CPU ${ratio(r?.cpuPct, fl.timeout?.cpuPct)} |`);
  if (d.realisticShared) L.push(`| the same, 16 sensors \`collector: "shared"\` | ${cell(d.realisticShared)} | ${cell(fl.timeout)} | ${cell(fl.atomics)} | ${cell(fl.onethread)} | CPU ${ratio(d.realisticShared?.cpuPct, fl.timeout?.cpuPct)} |`);
  L.push(`| idle: one sensor @ 1 Hz | ${cell(d.idle)} | ${cell(fl.idle)} | – | – | – |`);
  const early = d.params.earlyWarmupSeconds;
  if (d.realisticEarly) L.push(`| the realistic load, window after only ${fmt(early)} s (V8's start-up compactions included) | ${cell(d.realisticEarly)} | – | – | – | CPU ${ratio(d.realisticEarly?.cpuPct, fl.timeout?.cpuPct)} |`);
  if (d.idleEarly) L.push(`| idle, window after only ${fmt(early)} s | ${cell(d.idleEarly)} | – | – | – | – |`);
  const bt = r?.byThread;
  const ft = fl.timeout?.byThread;
  if (bt && ft) {
    // the floor's threads by rate stand beside the collectors that wake at that rate
    const g = (o, k) => (o.groups[k] ? `${fmt(o.groups[k].cpuPct)} %${o.groups[k].threads > 1 ? ` (${o.groups[k].threads} threads, ${fmt(o.groups[k].cpuPct / o.groups[k].threads)} % each)` : ''}` : '–');
    L.push('', `**Where the CPU goes, by thread** (the first pair's windows above; % of one core; read with \`DataManager.cpu()\` and \`worker.cpuUsage()\`):`, '');
    L.push('| thread | edgecap | floor: threads + setTimeout |');
    L.push('|---|---|---|');
    L.push(`| 16 sensor collectors @ 100 Hz / bare threads @ 100 Hz | ${g(bt, 'sensor')} | ${g(ft, '100 Hz')} |`);
    L.push(`| IMU collector @ 1 kHz / bare thread @ 1 kHz | ${g(bt, 'imu')} | ${g(ft, '1000 Hz')} |`);
    L.push(`| 2 camera collectors @ 10 Hz (64 KiB) / bare threads @ 10 Hz | ${g(bt, 'camera')} | ${g(ft, '10 Hz')} |`);
    L.push(`| writer (drain, write, fdatasync each second, rotate, persist seqs) | ${g(bt, 'writer')} | – |`);
    L.push(`| main thread | ${fmt(bt.mainPct)} % | ${fmt(ft.mainPct)} % |`);
    L.push(`| other threads (V8's compilers and GC helpers, libuv's pool) | ${fmt(bt.otherPct)} % | ${fmt(ft.otherPct)} % |`);
    L.push(`| whole process | ${fmt(bt.processPct)} % | ${fmt(ft.processPct)} % |`);
  }
  L.push('');
  L.push('| figure | edgecap | beside |');
  L.push('|---|---|---|');
  L.push(`| start-up, 19 resources: spawn → every stream's first reading | ${e(r, (y) => `${fmt(y.allFirstMs)} ms (first of any stream ${fmt(y.firstAnyMs)} ms; \`dm.start()\` resolved at ${fmt(y.startMs)} ms; import ${fmt(y.importMs)} ms)`)} | 19 bare threads online: ${e(fl.timeout, (y) => `${fmt(y.startMs)} ms`)} |`);
  if (d.restart) L.push(`| start-up after a restart (the same capture dir: recovery, and the threads' compile cache warm), 19 resources | ${e(d.restart, (y) => `${fmt(y.restartMs)} ms (median of ${y.runs.length - 1} restarts: ${y.runs.slice(1).map((x) => fmt(x)).join(', ')}; the first start in that dir ${fmt(y.firstMs)} ms)`)} | – |`);
  if (d.firstStarts && !d.firstStarts.error) {
    const fs5 = d.firstStarts;
    L.push(`| first start (fresh capture dir, cold compile cache), median of ${fs5.runs.workspace.length}, interleaved: workspace build / the published \`edgecap\` package | ${fmt(fs5.workspaceMs)} ms / ${fmt(fs5.packageMs)} ms (workspace ${fs5.runs.workspace.map((x) => fmt(x)).join(', ')}; package ${fs5.runs.package.map((x) => fmt(x)).join(', ')}) | – |`);
  }
  L.push(`| \`import('@edgecap/datamanager')\` | ${e(d.importTime, (y) => `${fmt(y.importMs)} ms (process ${fmt(y.processMs)} ms)`)} | \`node -e 0\`: ${e(d.importTime, (y) => `${fmt(y.nodeMs)} ms`)} |`);
  if (d.importTime?.packageMs !== undefined) L.push(`| \`import('edgecap')\` (the published package's bundle) | ${fmt(d.importTime.packageMs)} ms | – |`);
  if (d.realisticShared) L.push(`| start-up, 16 of 19 shared | ${e(d.realisticShared, (y) => `${fmt(y.allFirstMs)} ms (first of any stream ${fmt(y.firstAnyMs)} ms)`)} | – |`);
  const slopeRow = (label, sl, floor = '') => `| ${label} (slope over ${sl.points.map((p) => p.resources).join(', ')} resources @ 10 Hz) | ${fmt(sl.mbPerCollector)} MB | ${sl.points.map((p) => (p.error ? `${p.resources}: FAILED` : `${p.resources}: ${fmt(p.rssMB)} MB`)).join(', ')}${floor} |`;
  // what Node charges for a thread before edgecap does anything: the setTimeout floor's 19 bare
  // threads less the same timers in one thread, per thread
  const bareMB = fl.timeout?.rssMB && fl.onethread?.rssMB ? (fl.timeout.rssMB - fl.onethread.rssMB) / LOADS.realistic.length : undefined;
  L.push(slopeRow('RSS per collector', d.slope, bareMB ? `; floor: a bare worker thread ${fmt(bareMB)} MB (19 bare threads less one thread's timers, ÷ 19)` : ''));
  if (d.slopeShared) L.push(slopeRow('RSS per shared resource', d.slopeShared));
  L.push(`| realistic load: readings/s, missed deadlines/s | ${e(r, (y) => `${fmt(y.readingsPerSec)}, ${fmt(y.missedPerSec)}`)} | ${LOADS.realistic.reduce((a, b) => a + b, 0)} scheduled/s |`);
  L.push('');
  // the issue's bars, each beside what Node charges for the same threads in this run
  const bar = (label, v, max, unit, floor) => {
    const ok = Number.isFinite(v) ? (v <= max ? '✅ met' : `❌ missed by ${fmt(((v - max) / max) * 100)} %`) : '–';
    return `| ${label} | ${Number.isFinite(v) ? `${fmt(v)}${unit}` : 'FAILED'} | ≤ ${fmt(max)}${unit} | ${ok} | ${floor} |`;
  };
  L.push('**Against the bars of issue 14** (the floor column: the same threads or wake-ups with nothing of edgecap in them, this run):', '');
  L.push('| bar | edgecap | bar | verdict | floor, same run |');
  L.push('|---|---|---|---|---|');
  const cp = d.cpuPairs;
  if (cp?.ratio !== undefined) {
    L.push(bar(`realistic load, CPU ÷ the setTimeout floor (median of ${cp.pairs.length} back-to-back pairs: ${cp.pairs.map((p) => `${fmt(p.edgecap)} ÷ ${fmt(p.floor)} %`).join(', ')})`, cp.ratio, 1, '×', `${fmt(fl.timeout?.cpuPct)} % (19 bare threads, first pair)`));
  } else L.push(bar('realistic load, CPU ÷ the setTimeout floor', r?.cpuPct / fl.timeout?.cpuPct, 1, '×', `${fmt(fl.timeout?.cpuPct)} % (19 bare threads)`));
  L.push(bar('realistic load, RSS', r?.rssMB, 250, ' MB', `${fmt(fl.timeout?.rssMB)} MB (19 bare threads)`));
  L.push(bar('idle, CPU', d.idle?.cpuPct, 0.5, ' %', `${fmt(fl.idle?.cpuPct)} % (one bare thread)`));
  L.push(bar('idle, RSS', d.idle?.rssMB, 80, ' MB', `${fmt(fl.idle?.rssMB)} MB (one bare thread)`));
  L.push(bar("start-up, 19 resources, spawn → every stream's first reading (a first start: no compile cache)", r?.allFirstMs, 600, ' ms', `${fmt(fl.timeout?.startMs)} ms (19 bare threads online)`));
  if (d.firstStarts && !d.firstStarts.error) {
    L.push(bar('the same, median of 5 first starts (workspace build)', d.firstStarts.workspaceMs, 600, ' ms', `${fmt(fl.timeout?.startMs)} ms (19 bare threads online)`));
    L.push(bar('the same, median of 5 first starts (the published `edgecap` package)', d.firstStarts.packageMs, 600, ' ms', `${fmt(fl.timeout?.startMs)} ms (19 bare threads online)`));
  }
  if (d.restart && !d.restart.error) L.push(bar('the same after a restart (median)', d.restart.restartMs, 600, ' ms', `${fmt(fl.timeout?.startMs)} ms (19 bare threads online)`));
  L.push(bar("`import('@edgecap/datamanager')`", d.importTime?.importMs, 250, ' ms', `${fmt(d.importTime?.nodeMs)} ms (\`node -e 0\`, whole process)`));
  if (d.importTime?.packageMs !== undefined) L.push(bar("`import('edgecap')` (the published bundle)", d.importTime.packageMs, 250, ' ms', `${fmt(d.importTime?.nodeMs)} ms (\`node -e 0\`, whole process)`));
  L.push(bar('RSS per collector', d.slope?.mbPerCollector, 8, ' MB', bareMB ? `${fmt(bareMB)} MB (a bare worker thread)` : '–'));
  L.push('');
  return L.join('\n');
}

/** Least-squares slope of y over x. */
export function slope(points) {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const num = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return den ? num / den : NaN;
}

/**
 * The whole section (run.js): every measurement in its own process, one after the other.
 * Steady state means after `warmupSeconds` (30 s): in its first ~20 s V8's memory reducer
 * compacts each isolate's start-up garbage (Mark-Compact (reduce) GCs on the platform's helper
 * threads), which a window right after start counts as running cost (measured: the realistic
 * load 26.8 % CPU in the window after 3 s, 19.1 % after 30 s). Floors get the same warm-up; the
 * `…Early` rows keep the window right after start (`earlyWarmupSeconds`), so that share stays
 * visible. The setTimeout floor and the realistic load, whose ratio is a bar, run back to back.
 */
export async function runSection({ runChild, scratch, rmrf, step, seconds, warmupSeconds = 30, earlyWarmupSeconds = 3, slopeNs = [1, 4, 16, 64], cpuPairs = 3, os }) {
  const libFile = new URL(import.meta.url).pathname;
  const out = { params: { seconds, warmupSeconds, earlyWarmupSeconds, slopeNs }, loadavg: os.loadavg(), floors: {} };
  const guard = async (label, fn) => {
    try {
      const r = await fn();
      return r;
    } catch (e) {
      step(`   ${label}: FAILED ${e.message.split('\n')[0]}`);
      return { error: e.message.split('\n').slice(0, 4).join(' | ') };
    }
  };
  const child = (fn, args, timeoutMs = 240_000) => runChild(libFile, fn, args, { timeoutMs });
  const show = (label, r) => !r.error && step(`   ${label}: ${fmt(r.cpuPct)} % CPU, RSS ${fmt(r.rssMB)} MB (max ${fmt(r.rssMaxMB)})${r.allFirstMs ? `, spawn → every stream's first reading ${fmt(r.allFirstMs)} ms` : ''}`);
  // read here, not in the floor's process: capture's modules would count in the floor's RSS
  const { COLLECTOR_HEAP_MB: heapMb } = await import(CAPTURE);
  out.params.heapMb = heapMb;
  const floorOf = async (key, how, rates, label) => {
    out.floors[key] = await guard(`floor ${label}`, () => child('floor', { rates, how, seconds, warmupSeconds, heapMb }));
    show(`floor, ${label}`, out.floors[key]);
  };
  const loadOf = async (key, which, shared, warm) => {
    const dir = scratch(`real-${key}`);
    out[key] = await guard(key, () => child('load', { dir, load: which, seconds, warmupSeconds: warm, shared }));
    show(`edgecap, ${which}${shared ? ' (16 sensors shared)' : ''}${warm < warmupSeconds ? ` (window after ${warm} s)` : ''}`, out[key]);
    rmrf(dir);
  };
  await floorOf('timeout', 'timeout', LOADS.realistic, '19 × timeout');
  await loadOf('realistic', 'realistic', false, warmupSeconds);
  // The CPU bar is a ratio of two 15 s windows that each move ±25 % on 2 cores: judged as the
  // median of `cpuPairs` back-to-back pairs (the first is the pair above), as issue 16's bars are.
  const pairs = [{ edgecap: out.realistic?.cpuPct, floor: out.floors.timeout?.cpuPct }];
  for (let i = 1; i < cpuPairs; i++) {
    const f = await guard(`pair ${i + 1} floor`, () => child('floor', { rates: LOADS.realistic, how: 'timeout', seconds, warmupSeconds, heapMb }));
    const dir = scratch(`real-pair-${i}`);
    const e = await guard(`pair ${i + 1} realistic`, () => child('load', { dir, load: 'realistic', seconds, warmupSeconds }));
    rmrf(dir);
    if (!f.error && !e.error) pairs.push({ edgecap: e.cpuPct, floor: f.cpuPct });
    step(`   pair ${i + 1}: edgecap ${fmt(e.cpuPct)} %, floor ${fmt(f.cpuPct)} %`);
  }
  const ratios = pairs.filter((p) => p.edgecap && p.floor).map((p) => p.edgecap / p.floor);
  out.cpuPairs = { pairs, ratio: median(ratios) };
  for (const how of ['atomics', 'onethread']) await floorOf(how, how, LOADS.realistic, `19 × ${how}`);
  await loadOf('realisticShared', 'realistic', true, warmupSeconds);
  await floorOf('idle', 'timeout', LOADS.idle, 'one thread @ 1 Hz');
  await loadOf('idle', 'idle', false, warmupSeconds);
  await loadOf('realisticEarly', 'realistic', false, earlyWarmupSeconds);
  await loadOf('idleEarly', 'idle', false, earlyWarmupSeconds);
  // Start-up again on the same capture dir: a machine's restart (its recovery, and the threads'
  // compile cache in the state dir, warm), against the first start above (cold)
  out.restart = await guard('restart', async () => {
    const dir = scratch('real-restart');
    const runs = [];
    for (let i = 0; i < 6; i++) runs.push((await child('load', { dir, load: 'realistic', seconds: 0.5, warmupSeconds: 0 })).allFirstMs);
    rmrf(dir);
    return { firstMs: runs[0], restartMs: median(runs.slice(1)), runs };
  });
  if (!out.restart.error) step(`   start-up on the same dir: first ${fmt(out.restart.firstMs)} ms, restarts ${out.restart.runs.slice(1).map((x) => fmt(x)).join(', ')} ms`);
  // The published package, made once from the dist just compiled: the first starts and the
  // import time below load it
  await guard('building the edgecap package', async () => buildPackage());
  // First starts (fresh capture dir, cold compile cache) from the workspace build and from the
  // published package a user installs (one bundle per thread and for the library), interleaved
  out.firstStarts = await guard('first starts', async () => {
    const runs = { workspace: [], package: [] };
    for (let i = 0; i < 5; i++) {
      for (const pkg of [false, true]) {
        const dir = scratch(`real-first-${i}-${pkg ? 'pkg' : 'ws'}`);
        runs[pkg ? 'package' : 'workspace'].push((await child('load', { dir, load: 'realistic', seconds: 0.5, warmupSeconds: 0, pkg })).allFirstMs);
        rmrf(dir);
      }
    }
    return { workspaceMs: median(runs.workspace), packageMs: median(runs.package), runs };
  });
  if (!out.firstStarts.error) step(`   first starts: workspace ${out.firstStarts.runs.workspace.map((x) => fmt(x)).join(', ')} ms; package ${out.firstStarts.runs.package.map((x) => fmt(x)).join(', ')} ms`);
  out.importTime = await guard('import', () => child('importTime', { runs: 5 }));
  if (!out.importTime.error) step(`   import('@edgecap/datamanager') ${fmt(out.importTime.importMs)} ms; import('edgecap') ${fmt(out.importTime.packageMs)} ms; node -e 0 ${fmt(out.importTime.nodeMs)} ms`);
  for (const [key, shared] of [['slope', false], ['slopeShared', true]]) {
    const points = [];
    for (const n of slopeNs) {
      const dir = scratch(`real-${key}-${n}`);
      const r = await guard(`${n} resources${shared ? ', shared' : ''}`, () => child('load', { dir, resources: n, hz: 10, seconds: Math.min(seconds, 3), warmupSeconds: 1, shared }));
      points.push(r.error ? { resources: n, error: r.error } : { resources: n, rssMB: r.rssMB, cpuPct: r.cpuPct, allFirstMs: r.allFirstMs });
      rmrf(dir);
    }
    const good = points.filter((p) => !p.error);
    out[key] = { points, mbPerCollector: good.length >= 2 ? slope(good.map((p) => [p.resources, p.rssMB])) : NaN };
    step(`   RSS per ${shared ? 'shared resource' : 'collector'}: ${fmt(out[key].mbPerCollector)} MB (${good.map((p) => `${p.resources}: ${fmt(p.rssMB)}`).join(', ')})`);
  }
  return out;
}
