/**
 * Fleet-scale trouble at the ingest (issue #12), each against an ingest in a process of its own.
 *
 * A flood: 20,000 hostile TLS connections (half idle, half holding an upload that never
 * finishes) — the ingest stays under 1 GiB RSS and an honest edge (a real SyncEngine) still
 * syncs everything, nothing in its failed/.
 *
 * A stampede of real edges: 20 SyncEngines with 25 capture files each (half of them staged on
 * disk at the ingest, half small enough to go into packs) sync at once
 * to an ingest whose fd limit is tiny (`ulimit -n 100`, a process of its own: its default limits then allow 32 connections and 16 uploads at once). Whatever the ingest
 * runs out of, it answers with a retryable status, so every file ends stored exactly once and
 * nothing lands in any edge's failed/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportReadings, makeDevCert, openKeyAdmin } from '@edgecap/ingest';
import { SyncEngine } from '@edgecap/sync';
import { makeCapture } from '../packages/sync/test/helpers.js';
import { REPO, tmpdir } from './helpers.js';

const SERVE = path.join(REPO, 'packages/ingest/dist/serve.js');
const FLOOD_SCRIPT = path.join(REPO, 'packages/ingest/test/fixtures/flood.mjs');
/** Hostile connections in the flood (issue #12's bar: 20,000). */
const FLOOD = Number(process.env.EDGECAP_FLOOD ?? 20_000);
const EDGES = 20;
const FILES = 25;
const readingsOf = (f: number): number => (f % 2 === 0 ? 20 : 40);
/** Readings per edge. */
const READINGS = Array.from({ length: FILES }, (_, f) => readingsOf(f)).reduce((a, b) => a + b, 0);

/** serve.js under a shell prefix (`ulimit -n N;`); resolves with its port once it listens. */
async function spawnIngest(prefix: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const quoted = [SERVE, '--listen', '127.0.0.1:0', ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('bash', ['-c', `${prefix} exec '${process.execPath}' ${quoted}`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' } });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening .*:(\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`ingest exited ${c}`)));
  });
  return { child, port };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/** Sync rounds until the capture dir holds no finished file (bounded). */
async function drain(eng: SyncEngine, captureDir: string, deadline: number): Promise<void> {
  const left = () => fs.readdirSync(captureDir, { recursive: true }).filter((f) => String(f).endsWith('.capture')).length;
  while (left() > 0) {
    if (Date.now() > deadline) throw new Error(`${captureDir}: ${left()} files left`);
    await eng.syncNow().catch(() => undefined);
    if (left() > 0) await new Promise((r) => setTimeout(r, 200));
  }
}

function failedFiles(captureDir: string): string[] {
  const failed = path.join(captureDir, '.edgecap', 'failed');
  return fs.existsSync(failed) ? fs.readdirSync(failed, { recursive: true }).map(String) : [];
}

describe('a flood of hostile connections', () => {
  it(`${FLOOD} hostile connections (idle, or an upload that never finishes): RSS under 1 GiB, an honest edge syncs everything, nothing in its failed/`, async () => {
    const root = tmpdir('flood');
    const cert = makeDevCert(path.join(root, 'tls'));
    const dataDir = path.join(root, 'ingest');
    const admin = await openKeyAdmin({ dataDir });
    const attacker = await admin.create('attacker');
    const honestKey = await admin.create('honest');
    await admin.close();
    const { child, port } = await spawnIngest('ulimit -n 20000 2>/dev/null;', ['--data', dataDir, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--limit', 'idleConnectionMs=600000', '--limit', 'firstMessageMs=600000', '--limit', 'progressWindowMs=600000']);
    const floods: ChildProcess[] = [];
    const captureDir = path.join(root, 'honest', 'capture');
    for (let f = 0; f < 10; f++) makeCapture(captureDir, `s${f}`, 50);
    const honest = new SyncEngine({
      captureDir,
      stateDir: path.join(captureDir, '.edgecap'),
      additionalSyncPaths: [],
      fileLastModifiedMs: 0,
      intervalMs: 60_000,
      threads: 1,
      partId: 'honest',
      tags: [],
      ingest: { address: `localhost:${port}`, caFile: cert.caFile, apiKey: honestKey.secret },
    });
    const honestErrors: string[] = [];
    honest.on('sync-error', (ev: { message: string }) => honestErrors.push(ev.message));
    try {
      const perProcess = Math.ceil(FLOOD / 2);
      const done = await Promise.all(
        [0, 1].map(
          () =>
            new Promise<string>((resolve, reject) => {
              const f = spawn('bash', ['-c', `ulimit -n 20000 2>/dev/null; exec '${process.execPath}' '${FLOOD_SCRIPT}' 127.0.0.1:${port} '${cert.caFile}' '${attacker.secret}' ${perProcess} 2`], { stdio: ['ignore', 'pipe', 'inherit'] });
              floods.push(f);
              f.stdout!.on('data', (d: Buffer) => {
                const m = /done .*/.exec(d.toString());
                if (m) resolve(m[0]);
              });
              f.once('exit', (c) => reject(new Error(`flood exited ${c}`)));
            }),
        ),
      );
      const opened = done.reduce((n, l) => n + Number(/opened=(\d+)/.exec(l)![1]), 0);
      expect(opened).toBeGreaterThanOrEqual(FLOOD * 0.9); // the attack really connected (the cap then closes idle ones)
      // the honest edge syncs while the attackers hold their connections and uploads
      await drain(honest, captureDir, Date.now() + 60_000).catch((e: Error) => {
        throw new Error(`${e.message}; the honest edge's errors: ${[...new Set(honestErrors)].slice(0, 5).join(' | ')}`);
      });
      const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
      process.stdout.write(`flood: ${done.join(' | ')}; ingest peak RSS ${(hwmKb / 1024).toFixed(0)} MB\n`);
      expect(hwmKb * 1024).toBeLessThan(1024 * 1024 * 1024);
      expect(failedFiles(captureDir)).toEqual([]);
    } finally {
      await honest.stop();
      for (const f of floods) f.kill('SIGTERM');
      await stopChild(child);
    }
    let rows = 0;
    for await (const r of exportReadings(dataDir)) if (r.part_id === 'honest') rows++;
    expect(rows).toBe(10 * 50);
  }, 300_000);
});

describe('a stampede of edges against an ingest with few fds', () => {
  it('every file of every edge is stored exactly once; nothing in any failed/', async () => {
    const root = tmpdir('stampede');
    const cert = makeDevCert(path.join(root, 'tls'));
    const dataDir = path.join(root, 'ingest');
    const engines: SyncEngine[] = [];
    const expected = new Map<string, number>();
    /** Each edge's sync errors, in order. */
    const edgeErrors: string[][] = [];
    const { child, port } = await spawnIngest('ulimit -n 100 &&', ['--data', dataDir, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--api-key', 'k']);
    try {
      for (let e = 0; e < EDGES; e++) {
        const captureDir = path.join(root, `edge${e}`, 'capture');
        // Half the files small (held in memory at the ingest, written into packs), half over 64 KiB
        // (each staged in a file of its own): an fd per upload in flight, as the stampede needs.
        for (let f = 0; f < FILES; f++) makeCapture(captureDir, `s${f}`, readingsOf(f), { payloadBytes: 2000 });
        expected.set(`edge-${e}`, READINGS);
        engines.push(
          new SyncEngine({
            captureDir,
            stateDir: path.join(captureDir, '.edgecap'),
            additionalSyncPaths: [],
            fileLastModifiedMs: 0,
            intervalMs: 60_000,
            threads: 1,
            // The production schedule doubles to 1 h: a file refused (RESOURCE_EXHAUSTED) ten
            // times in a row by this fd-starved ingest has waited ~100 s and next waits 102 s,
            // past this test's window (seen once on a slow CI host: 12 files of one edge left).
            // What is tested here is exactly once and retryable refusals; the schedule is
            // backoff.test.ts's.
            backoff: { maxMs: 5_000 },
            partId: `edge-${e}`,
            tags: [],
            ingest: { address: `localhost:${port}`, caFile: cert.caFile, apiKey: 'k' },
          }),
        );
        const mine: string[] = [];
        edgeErrors.push(mine);
        engines.at(-1)!.on('sync-error', (ev: { message: string }) => mine.push(ev.message));
      }
      // rounds at once from every edge until each capture dir is drained (bounded)
      const deadline = Date.now() + 120_000;
      await Promise.all(
        engines.map((eng, e) =>
          drain(eng, path.join(root, `edge${e}`, 'capture'), deadline).catch((err: Error) => {
            const last = [...new Set(edgeErrors[e]!.slice(-50))].slice(-5);
            throw new Error(`${err.message}; ${edgeErrors[e]!.length} errors, the last distinct: ${last.join(' | ')}`);
          }),
        ),
      );
      for (let e = 0; e < EDGES; e++) expect(failedFiles(path.join(root, `edge${e}`, 'capture')), `edge ${e} failed/`).toEqual([]);
    } finally {
      await Promise.all(engines.map((e) => e.stop()));
      await stopChild(child);
    }
    const got = new Map<string, Set<string>>();
    let rows = 0;
    for await (const r of exportReadings(dataDir)) {
      rows++;
      const s = got.get(r.part_id) ?? new Set<string>();
      s.add(`${r.file_id}/${r.seq}`);
      got.set(r.part_id, s);
    }
    expect(rows).toBe(EDGES * READINGS);
    // the stampede really hit the ingest's limits, and the edges waited instead of giving up
    const errors = edgeErrors.flat();
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.some((m) => /RESOURCE_EXHAUSTED|UNAVAILABLE/.test(m)), errors.slice(0, 3).join(' | ')).toBe(true);
    for (const [part, n] of expected) expect(got.get(part)?.size, part).toBe(n);
  }, 180_000);
});
