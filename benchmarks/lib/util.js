// Small helpers shared by the sections: child-process isolation, timing, stats, formatting.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = path.resolve(BENCH_DIR, '..');

export const now = () => Number(process.hrtime.bigint()) / 1e9;

/** A fresh scratch dir on the same filesystem as the repo (the "capture dir's disk"). */
export function scratch(name) {
  const base = process.env.EDGECAP_BENCH_DIR ?? path.join(os.tmpdir(), 'edgecap-bench');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `${name}-`));
}

export function rmrf(p) {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

/**
 * Run `fn` exported by `modulePath` in a fresh Node process, so CPU (all threads, via
 * process.cpuUsage = getrusage(RUSAGE_SELF)) and peak RSS belong to that one measurement.
 */
export function runChild(modulePath, fn, args, { timeoutMs = 120_000, execArgv = [] } = {}) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(BENCH_DIR, 'lib', 'child.js'), [modulePath, fn, JSON.stringify(args)], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      execArgv,
    });
    let stderr = '';
    let msg;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
    });
    child.on('message', (m) => (msg = m));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${fn} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (msg && msg.ok) return resolve(msg.value);
      const why = msg && !msg.ok ? msg.error : `child exited ${code ?? sig}`;
      reject(new Error(`${why}${stderr ? `\n${stderr.trim().split('\n').slice(-8).join('\n')}` : ''}`));
    });
  });
}

/** The middle value (the upper one of an even count; undefined for none): ratios of back-to-back pairs, start-up runs. */
export function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(values) {
  const s = Float64Array.from(values).sort();
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN, min: s.length ? s[0] : NaN };
}

export function fmt(v, digits = 3) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(digits)} G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(digits)} M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(digits)} k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toPrecision(digits);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

export const MiB = 1024 * 1024;
export const KiB = 1024;
