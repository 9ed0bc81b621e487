#!/usr/bin/env node
// edgecap benchmarks: one command runs every section, writes BENCHMARKS.md at the repo root,
// benchmarks/results/latest.json and SVG plots in benchmarks/results/.
//   node benchmarks/run.js            full run (< 10 min on a 2-core machine)
//   node benchmarks/run.js --quick    ~1-minute smoke run (smaller sizes, shorter windows)
//   --only=limits,capture,...         run some sections (the report marks the others as not run)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, execSync } from 'node:child_process';
import { makeDevCert } from '@edgecap/ingest';
import { BENCH_DIR, ROOT_DIR, MiB, runChild, scratch, rmrf, fmt, median } from './lib/util.js';
import { summarizeProfiles } from './lib/profile.js';
import { writeReport } from './lib/report.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const lib = (f) => path.join(BENCH_DIR, 'lib', f);

const P = quick
  ? {
      diskBytes: 128 * MiB, memcpyBytes: 1024 * MiB, tlsBytes: 256 * MiB,
      capSizes: [64, 1024, 65536], capResources: [1, 4], capSeconds: 1, capTunedResources: [2],
      peerCounts: { 64: 200_000, 1024: 50_000 },
      schedHz: [100, 1000, 10_000], schedCollectors: [1, 16], schedSeconds: 1,
      smallFiles: 300, files256k: 40, files8m: 8, drainBytes: 64 * MiB,
      scaleNs: [1000], microMs: 150, profile: false,
    }
  : {
      diskBytes: 512 * MiB, memcpyBytes: 4096 * MiB, tlsBytes: 1024 * MiB,
      capSizes: [64, 1024, 65536], capResources: [1, 4, 16], capSeconds: 3, capTunedResources: [1, 2, 4],
      peerCounts: { 64: 1_000_000, 1024: 250_000 },
      schedHz: [100, 1000, 10_000], schedCollectors: [1, 16], schedSeconds: 3,
      smallFiles: 10_000, files256k: 400, files8m: null, drainBytes: 1024 * MiB,
      scaleNs: [1000, 10_000, 100_000], microMs: 500, profile: true,
    };

/** `maximum_capture_file_size_bytes` and `capture_queue_size` of the high-rate capture rows. */
const TUNED = { maxFileBytes: 8 * MiB, queueBytes: 8 * MiB };

const t00 = Date.now();
const stamp = () => `[${((Date.now() - t00) / 1000).toFixed(1).padStart(6)} s]`;
const step = (msg) => console.log(`${stamp()} ${msg}`);

function machine() {
  const cpus = os.cpus();
  let disk = '';
  try {
    disk = execSync(`df -hT ${JSON.stringify(os.tmpdir())} | tail -1`, { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch {
    /* no df */
  }
  let commit = '';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: ROOT_DIR, encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    ramGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    arch: process.arch,
    loadavg: os.loadavg(),
    disk,
    scratch: process.env.EDGECAP_BENCH_DIR ?? path.join(os.tmpdir(), 'edgecap-bench'),
    commit,
  };
}

const results = {
  date: new Date().toISOString(),
  command: `node benchmarks/run.js${args.length ? ' ' + args.join(' ') : ''}`,
  quick,
  params: P,
  machine: machine(),
  sections: {},
};

/** With --only, the sections not run keep their figures from the last full run (marked as carried). */
const previous = (() => {
  try {
    return only ? JSON.parse(fs.readFileSync(path.join(BENCH_DIR, 'results', quick ? 'quick.json' : 'latest.json'), 'utf8')) : undefined;
  } catch {
    return undefined;
  }
})();

async function section(name, fn) {
  if (only && !only.includes(name)) {
    const prev = previous?.sections?.[name];
    results.sections[name] = prev?.ok ? { ...prev, carriedFrom: prev.carriedFrom ?? previous.date } : { ok: false, skipped: true, error: 'not run (--only)' };
    return;
  }
  const t0 = Date.now();
  step(`── ${name}`);
  try {
    const data = await fn();
    results.sections[name] = { ok: true, seconds: (Date.now() - t0) / 1000, data };
  } catch (e) {
    step(`   ${name} FAILED: ${e.message.split('\n')[0]}`);
    results.sections[name] = { ok: false, seconds: (Date.now() - t0) / 1000, error: e.message };
  }
}

/** Run one measurement; a failure is recorded in the row (the section goes on). */
async function row(label, fn) {
  try {
    const r = await fn();
    step(`   ${label}: ${r.__line ?? ''}`);
    delete r.__line;
    return { label, ...r };
  } catch (e) {
    step(`   ${label}: FAILED ${e.message.split('\n')[0]}`);
    return { label, error: e.message.split('\n').slice(0, 4).join(' | ') };
  }
}

const base = scratch('run');
const certDir = path.join(base, 'cert');
makeDevCert(certDir);

await section('limits', async () => {
  const L = lib('limits.js');
  const out = {};
  out.diskNoSync = await row('disk seq write, no fdatasync', async () => {
    const r = await runChild(L, 'diskWrite', { dir: base, totalBytes: P.diskBytes, sync: false });
    return { ...r, __line: `${fmt(r.mbps)} MB/s` };
  });
  out.diskSync = await row('disk seq write, fdatasync every 8 MiB', async () => {
    const r = await runChild(L, 'diskWrite', { dir: base, totalBytes: P.diskBytes, sync: true });
    return { ...r, __line: `${fmt(r.mbps)} MB/s` };
  });
  out.memcpy = await row('memcpy', async () => {
    const r = await runChild(L, 'memcpy', { totalBytes: P.memcpyBytes });
    return { ...r, __line: `${fmt(r.mbps)} MB/s` };
  });
  out.tls = await row('raw TLS loopback', async () => {
    const r = await runChild(L, 'rawTls', { certDir, totalBytes: P.tlsBytes });
    return { ...r, __line: `${fmt(r.mbps)} MB/s` };
  });
  return out;
});

await section('capture', async () => {
  const C = lib('capture.js');
  const rows = [];
  for (const bytes of P.capSizes) {
    for (const resources of P.capResources) {
      const binary = bytes >= 65536;
      rows.push(
        await row(`${resources} × ${bytes} B ${binary ? 'binary' : 'tabular'}`, async () => {
          const r = await runChild(C, 'captureThroughput', { dir: scratch('cap'), resources, bytes, binary, seconds: P.capSeconds }, { timeoutMs: 120_000 });
          return { ...r, __line: `${fmt(r.perSec)} readings/s, ${fmt(r.mbps)} MB/s, ${fmt(r.cpuSecPerMillion)} CPU s/M, RSS ${fmt(r.proc.maxRssMB)} MB` };
        }),
      );
    }
  }
  // The same small readings with a config for high rates: 8 MiB files (a rotation costs an open,
  // an fdatasync and a rename, ~600 of them per second at 256 KiB) and 8 MiB rings per method.
  for (const resources of P.capTunedResources) {
    rows.push(
      await row(`${resources} × 64 B tabular, high-rate config`, async () => {
        const r = await runChild(C, 'captureThroughput', { dir: scratch('cap'), resources, bytes: 64, binary: false, seconds: P.capSeconds, maxFileBytes: TUNED.maxFileBytes, queueBytes: TUNED.queueBytes }, { timeoutMs: 120_000 });
        return { ...r, tuned: true, __line: `${fmt(r.perSec)} readings/s, ${fmt(r.mbps)} MB/s, ${fmt(r.cpuSecPerMillion)} CPU s/M, RSS ${fmt(r.proc.maxRssMB)} MB` };
      }),
    );
  }
  return { rows };
});

// storage "memory" beside disk, same run (memory-mode.js): readings/s and CPU per million.
await section('memory-mode', async () => {
  const r = await runChild(lib('memory-mode.js'), 'memoryVsDisk', { dir: scratch('memmode'), resources: 2, bytes: 64, seconds: P.capSeconds }, { timeoutMs: 120_000 });
  step(`memory mode: disk ${fmt(r.disk.perSec)} readings/s (${fmt(r.disk.cpuSecPerMillion)} CPU s/M), memory ${fmt(r.memory.perSec)} readings/s (${fmt(r.memory.cpuSecPerMillion)} CPU s/M)`);
  return r;
});

await section('peers', async () => {
  const PE = lib('peers.js');
  const rows = [];
  for (const size of [64, 1024]) {
    for (const [fn, name] of [['pinoTransport', 'pino transport (pino/file worker)'], ['pinoDestination', 'pino.destination (async, 8 KiB, 100 ms flush)'], ['naiveJsonLines', 'naive JSON lines (writeSync each)']]) {
      rows.push(
        await row(`${name} ${size} B`, async () => {
          const r = await runChild(PE, fn, { dir: base, count: P.peerCounts[size], size }, { timeoutMs: 120_000 });
          return { peer: fn, name, size, ...r, cpuSecPerMillion: r.proc.cpuSec / (r.count / 1e6), __line: `${fmt(r.perSec)} records/s (${fmt(r.bytesPerRecord)} B), ${fmt(r.mbps)} MB/s` };
        }),
      );
    }
  }
  return { rows };
});

await section('scheduling', async () => {
  const C = lib('capture.js');
  const rows = [];
  for (const collectors of P.schedCollectors) {
    for (const hz of P.schedHz) {
      rows.push(
        await row(`${collectors} collector(s) @ ${hz} Hz`, async () => {
          const r = await runChild(C, 'scheduling', { dir: scratch('sched'), collectors, hz, seconds: P.schedSeconds }, { timeoutMs: 120_000 });
          return { ...r, __line: `achieved ${fmt(r.achievedHzMean)} Hz (min ${fmt(r.achievedHzMin)}), jitter p50/p99/max ${r.jitterP50}/${r.jitterP99}/${r.jitterMax} µs, CPU ${fmt(r.cpuPctOfCore)}% of a core` };
        }),
      );
    }
  }
  return { rows };
});

await section('sync', async () => {
  const S = lib('sync.js');
  // EDGECAP_BENCH_SYNC_SMALL_FILES / EDGECAP_BENCH_SYNC_DRAIN_MIB shorten the section for a smoke run.
  const smallFiles = Number(process.env.EDGECAP_BENCH_SYNC_SMALL_FILES) || P.smallFiles;
  const drainBytes = (Number(process.env.EDGECAP_BENCH_SYNC_DRAIN_MIB) || P.drainBytes / MiB) * MiB;
  const drainFiles = Math.max(1, Math.round(drainBytes / (8 * MiB)));
  const plan = [
    { key: 'small', label: `${smallFiles} small files (~5 KiB)`, files: smallFiles, fileBytes: 4096 },
    { key: '256k', label: `${P.files256k} × 256 KiB files`, files: P.files256k, fileBytes: 256 * 1024 },
    { key: '8m', label: `${drainFiles} × 8 MiB files = ${fmt((drainFiles * 8 * MiB) / 2 ** 30)} GiB backlog (drain)`, files: drainFiles, fileBytes: 8 * MiB },
  ];
  const rows = [];
  for (const p of plan) {
    rows.push(
      await row(p.label, async () => {
        const r = await runChild(S, 'syncBacklog', { dir: scratch(`sync-${p.key}`), certDir, files: p.files, fileBytes: p.fileBytes }, { timeoutMs: 400_000 });
        return { key: p.key, ...r, __line: `${fmt(r.mbps)} MB/s, ${fmt(r.filesPerSec)} files/s, ${fmt(r.seconds)} s; CPU per file edge ${fmt(r.edgeCpuMsPerFile)} ms, ingest ${fmt(r.ingestCpuMsPerFile)} ms; CPU per GB edge ${fmt(r.edgeCpuSecPerGB)} s, ingest ${fmt(r.ingestCpuSecPerGB)} s` };
      }),
    );
  }
  // Issue #16's bar, each figure with the ratio it is judged by (all from this run). Each ratio is
  // the median of back-to-back pairs (the first pair uses the row above): on this host class both
  // terms move by tens of % from minute to minute, a pair measured together moves less.
  const pairs = quick ? 1 : 3;
  const byKey = (k) => rows.find((r) => r.key === k && !r.error);
  const small = byKey('small');
  const bar = {};
  /** Rows of other shapes than a backlog's (kept out of `rows`, which the report tabulates). */
  const barRows = [];
  const oneFile = (bytes, label) =>
    row(label, async () => {
      const r = await runChild(S, 'syncBacklog', { dir: scratch('sync-one'), certDir, files: 1, fileBytes: Math.round(bytes) }, { timeoutMs: 400_000 });
      return { key: 'one', ...r, __line: `${fmt(r.seconds)} s` };
    });
  if (small) {
    // Per-file overhead: the small-file backlog vs ONE file of the same total size, same path.
    const one = await oneFile(small.bytes, `one file of the same total size (${fmt(small.bytes / MiB)} MiB)`);
    rows.push(one);
    if (!one.error) {
      const runs = [{ small: small.seconds, one: one.seconds }];
      for (let i = 1; i < pairs; i++) {
        const s2 = await row(`pair ${i + 1}: ${smallFiles} small files`, () => runChild(S, 'syncBacklog', { dir: scratch('sync-small'), certDir, files: smallFiles, fileBytes: 4096 }, { timeoutMs: 400_000 }));
        const o2 = await oneFile(small.bytes, `pair ${i + 1}: one file of the same total size`);
        if (!s2.error && !o2.error) runs.push({ small: s2.seconds, one: o2.seconds });
      }
      const ratios = runs.map((r) => r.small / r.one);
      bar.smallVsOneFile = { ratio: median(ratios), ratios, runs, max: 2, filesPerSec: small.filesPerSec, edgeCpuMsPerFile: small.edgeCpuMsPerFile, ingestCpuMsPerFile: small.ingestCpuMsPerFile };
    }
  }
  const big = byKey('8m');
  const ceilingRun = (label) =>
    row(label, async () => {
      const out = execFileSync(process.execPath, [path.join(BENCH_DIR, 'lib/grpc-ceiling.js'), `--mib=${Math.max(64, Math.min(512, drainBytes / MiB))}`, '--runs=1', '--only=bare-win', '--json'], { encoding: 'utf8', timeout: 600_000 });
      const line = out.split('\n').find((l) => l.startsWith('JSON '));
      const bare = line ? JSON.parse(line.slice(5)).cases['bare-win'] : undefined;
      if (!bare) throw new Error(`unexpected grpc-ceiling output: ${out.slice(-300)}`);
      return { key: 'ceiling', ...bare, __line: `${fmt(bare.mbps)} MB/s, client ${fmt(bare.clientCpuSecPerGB)} CPU-s/GB` };
    });
  if (big) {
    // 8 MiB files vs the bare grpc-js client → bare server (16 MiB windows), measured right after.
    const ceiling = await ceilingRun('bare grpc-js ceiling, same run (8 MiB files, 4 in flight)');
    barRows.push(ceiling);
    if (!ceiling.error) {
      const runs = [{ sync: big.mbps, ceiling: ceiling.mbps, edgeCpu: big.edgeCpuSecPerGB, clientCpu: ceiling.clientCpuSecPerGB }];
      for (let i = 1; i < pairs; i++) {
        const b2 = await row(`pair ${i + 1}: ${drainFiles} × 8 MiB files`, () => runChild(S, 'syncBacklog', { dir: scratch('sync-8m'), certDir, files: drainFiles, fileBytes: 8 * MiB }, { timeoutMs: 400_000 }));
        const c2 = await ceilingRun(`pair ${i + 1}: bare grpc-js ceiling`);
        if (!b2.error && !c2.error) runs.push({ sync: b2.mbps, ceiling: c2.mbps, edgeCpu: b2.edgeCpuSecPerGB, clientCpu: c2.clientCpuSecPerGB });
      }
      const ratios = runs.map((r) => r.sync / r.ceiling);
      const cpuRatios = runs.map((r) => r.edgeCpu / r.clientCpu);
      bar.vsGrpcCeiling = { ratio: median(ratios), ratios, cpuRatio: median(cpuRatios), cpuRatios, runs, min: 0.7, cpuMax: 1.3 };
    }
  }
  // Capture first: a 1 kHz stream idle vs while the backlog drains (and with the renice off).
  const cap = await row(`1 kHz capture stream while ${fmt(drainBytes / 2 ** 30)} GiB drains`, async () => {
    const r = await runChild(S, 'captureUnderDrain', { dir: scratch('sync-capfirst'), certDir, drainBytes, seconds: quick ? 3 : 30, compareNice: true }, { timeoutMs: 600_000 });
    const ph = Object.fromEntries(r.rows.map((x) => [x.phase, x]));
    const ratio = ph.drain.missedPerSec / Math.max(ph.idle.missedPerSec, 1);
    return { key: 'captureFirst', ...r, ratio, __line: `missed deadlines ${fmt(ph.idle.missedPerSec)}/s idle, ${fmt(ph.drain.missedPerSec)}/s draining = ${fmt(ratio)}× (bar ≤ 2×), ${fmt(ph['drain-flat-out']?.missedPerSec)}/s flat out, ${fmt(ph['drain-nice0']?.missedPerSec)}/s flat out without the renice; drops ${ph.drain.dropped}; drained at ${fmt(ph.drain.drainMBps)} MB/s (flat out ${fmt(ph['drain-flat-out']?.drainMBps)})` };
  });
  barRows.push(cap);
  if (!cap.error) bar.captureFirst = { ratio: cap.ratio, max: 2, dropped: cap.rows.find((x) => x.phase === 'drain').dropped };
  return { rows, barRows, bar, drainBytesPlanned: drainFiles * 8 * MiB };
});

// Slow link (issue #16): one 8 MiB file through a 32 KB/s link, and the bandwidth cap over 60 s.
// EDGECAP_BENCH_SLOW_FILE_BYTES / EDGECAP_BENCH_CAP_SECONDS shorten them for a smoke run.
await section('slow-link', async () => {
  const L = lib('slow-link.js');
  const fileBytes = Number(process.env.EDGECAP_BENCH_SLOW_FILE_BYTES) || (quick ? 1 * MiB : 8 * MiB);
  const rate = 32 * 1024;
  const cap = 262144;
  const capSeconds = Number(process.env.EDGECAP_BENCH_CAP_SECONDS) || (quick ? 15 : 60);
  const rows = [];
  rows.push(
    await row(`${fmt(fileBytes / MiB)} MiB file through a ${rate / 1024} KiB/s link`, async () => {
      const r = await runChild(L, 'slowFile', { dir: scratch('slow-file'), certDir, fileBytes, rate, giveUpSec: Math.ceil((3 * fileBytes) / rate) }, { timeoutMs: Math.ceil((4 * fileBytes) / rate) * 1000 + 60_000 });
      return { key: 'slowFile', ...r, __line: `${r.completed ? 'completed' : 'NOT completed'} (${r.committed} commit), ${fmt(r.seconds)} s = ${fmt(r.ratio)}× the ideal ${fmt(r.idealSec)} s, ${r.errors} sync errors` };
    }),
  );
  rows.push(
    await row(`sync_max_bytes_per_second ${cap} over ${capSeconds} s`, async () => {
      const r = await runChild(L, 'bandwidthCap', { dir: scratch('slow-cap'), certDir, cap, seconds: capSeconds }, { timeoutMs: capSeconds * 1000 + 120_000 });
      return { key: 'bandwidthCap', ...r, __line: `${fmt(r.bytesPerSec)} B/s = ${fmt(r.ratio)}× the cap (bar: 0.9–1.1), ${r.errors} sync errors` };
    }),
  );
  return { rows };
});

await section('scale', async () => {
  const S = lib('sync.js');
  const rows = [];
  for (const n of P.scaleNs) {
    rows.push(
      await row(`${n} pending files`, async () => {
        const r = await runChild(S, 'scaleCurve', { dir: scratch(`scale-${n}`), certDir, n }, { timeoutMs: 300_000 });
        return { ...r, __line: `scan ${fmt(r.scanMs)} ms, recovery walk ${fmt(r.recoverMs)} ms, sync first upload cold/restart ${fmt(r.coldFirstUploadMs)}/${fmt(r.restartFirstUploadMs)} ms, engine RSS ${fmt(r.coldRssMB)} MB (peak ${fmt(r.engineMaxRssMB)})` };
      }),
    );
  }
  return { rows };
});

await section('micro', async () => {
  const r = await runChild(lib('micro.js'), 'micro', { dir: scratch('micro'), timeMs: P.microMs }, { timeoutMs: 180_000 });
  for (const x of r.rows) step(`   ${x.name}: ${x.error ? 'FAILED ' + x.error : `${fmt(x.perSec)}/s${x.mbps ? `, ${fmt(x.mbps)} MB/s` : ''}`}`);
  return r;
});

await section('grpc-ceiling', async () => {
  // What grpc-js client streaming can do at all on this machine, and what our server and client
  // add on top: separates the transport's cost from ours (issues 3 and 7).
  const out = execFileSync(process.execPath, [path.join(BENCH_DIR, 'lib/grpc-ceiling.js'), `--mib=${quick ? 128 : 256}`, `--runs=${quick ? 1 : 2}`], { encoding: 'utf8', timeout: 600_000 });
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.startsWith('8 MiB files'));
  if (start < 0 || !lines.some((l) => l.startsWith('| case'))) throw new Error(`unexpected grpc-ceiling output: ${out.slice(-500)}`);
  const text = lines.slice(start).join('\n').trim();
  step(`   ${lines.filter((l) => l.startsWith('| bare server') || l.startsWith('| ingest')).length} rows`);
  return { text };
});

await section('postgres', async () => {
  // Readings/s ingested into PostgreSQL through 1 and 2 stateless ingest nodes (issue 8).
  const files = quick ? 12 : 48;
  const out = execFileSync(process.execPath, [path.join(ROOT_DIR, 'packages/ingest/bench/pg-ingest.js'), '--files', String(files)], { encoding: 'utf8', timeout: 300_000 });
  const rows = [...out.matchAll(/(\d) nodes? ?: (\d+) readings in ([\d.]+) s = ([\d,]+) readings\/s \(([\d.]+) MB\/s/g)].map((m) => ({ nodes: Number(m[1]), readings: Number(m[2]), seconds: Number(m[3]), perSec: Number(m[4].replaceAll(',', '')), mbps: Number(m[5]) }));
  if (rows.length !== 2) throw new Error(`unexpected pg-ingest output: ${out}`);
  for (const r of rows) step(`   ${r.nodes} node(s): ${fmt(r.perSec)} readings/s`);
  return { header: out.split('\n')[0], rows };
});

await section('ingest-latency', async () => {
  // Health latency at the ingest while a 512 MiB capture file arrives, against the idle latency of
  // the same run (issue #12's bar: within 200 ms).
  const out = execFileSync(process.execPath, [path.join(ROOT_DIR, 'packages/ingest/bench/health-latency.js'), '--readings', quick ? '16' : '65'], { encoding: 'utf8', timeout: 600_000 });
  const r = JSON.parse(out.trim().split('\n').at(-1));
  step(`   idle p99 ${fmt(r.idle.p99)} ms; during the upload p50 ${fmt(r.during.p50)} / p99 ${fmt(r.during.p99)} / max ${fmt(r.during.max)} ms`);
  return r;
});

await section('realistic', async () => {
  // What edgecap costs at a robot's load, beside bare-thread floors of the same run (issue 14).
  // --realistic-seconds=N sets the steady-state window (default 15 s, 3 s with --quick).
  const { runSection } = await import('./lib/realistic.js');
  const seconds = Number(args.find((a) => a.startsWith('--realistic-seconds='))?.slice(20) ?? (quick ? 3 : 15));
  return runSection({ runChild, scratch, rmrf, step, seconds, warmupSeconds: quick ? 5 : 30, earlyWarmupSeconds: quick ? 1 : 3, slopeNs: [1, 4, 16, 64], cpuPairs: quick ? 1 : 3, os });
});

if (P.profile || args.includes('--profile')) {
  await section('profile', async () => {
    const pd = scratch('prof');
    const r = await runChild(lib('capture.js'), 'captureThroughput', { dir: scratch('cap-prof'), resources: 1, bytes: 64, binary: false, seconds: 2 }, { execArgv: ['--cpu-prof', '--cpu-prof-dir', pd] });
    const threads = summarizeProfiles(pd);
    rmrf(pd);
    for (const t of threads) step(`   ${t.thread}: busy ${fmt(t.busyMs)} of ${fmt(t.totalMs)} ms; top: ${t.top[0]?.fn ?? '-'}`);
    return { config: '1 collector × 64 B tabular, 2 s, --cpu-prof', perSec: r.perSec, threads };
  });
}

rmrf(base);
results.totalSeconds = (Date.now() - t00) / 1000;
const resultsDir = path.join(BENCH_DIR, 'results');
fs.mkdirSync(resultsDir, { recursive: true });
fs.writeFileSync(path.join(resultsDir, quick ? 'quick.json' : 'latest.json'), JSON.stringify(results, null, 2) + '\n');
const written = writeReport(results, { root: ROOT_DIR, resultsDir });
{
  // the realistic-load section renders itself (lib/realistic.js), after the other sections
  const { realisticMarkdown } = await import('./lib/realistic.js');
  const md = path.join(ROOT_DIR, written[0]);
  fs.appendFileSync(md, `\n${realisticMarkdown(results.sections.realistic)}`);
}
step(`done in ${fmt(results.totalSeconds)} s → ${written.join(', ')}`);
