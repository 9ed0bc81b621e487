/**
 * A stampede of real edges (issue #12): 20 SyncEngines with 25 capture files each sync at once
 * to an ingest whose fd limit is tiny (`ulimit -n 100`, a process of its own: its default limits then allow 18 connections and 9 uploads at once). Whatever the ingest
 * runs out of, it answers with a retryable status, so every file ends stored exactly once and
 * nothing lands in any edge's failed/.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportReadings, makeDevCert } from '@edgecap/ingest';
import { SyncEngine } from '@edgecap/sync';
import { makeCapture } from '../packages/sync/test/helpers.js';
import { REPO, tmpdir } from './helpers.js';

const SERVE = path.join(REPO, 'packages/ingest/dist/serve.js');
const EDGES = 20;
const FILES = 25;

describe('a stampede of edges against an ingest with few fds', () => {
  it('every file of every edge is stored exactly once; nothing in any failed/', async () => {
    const root = tmpdir('stampede');
    const cert = makeDevCert(path.join(root, 'tls'));
    const dataDir = path.join(root, 'ingest');
    const child = spawn('bash', ['-c', `ulimit -n 100 && exec '${process.execPath}' '${SERVE}' --listen 127.0.0.1:0 --data '${dataDir}' --tls-cert '${cert.certFile}' --tls-key '${cert.keyFile}' --api-key k`], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' },
    });
    const engines: SyncEngine[] = [];
    const expected = new Map<string, number>();
    const errors: string[] = [];
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          const m = /listening .*:(\d+)/.exec(d.toString());
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (c) => reject(new Error(`ingest exited ${c}`)));
      });
      for (let e = 0; e < EDGES; e++) {
        const captureDir = path.join(root, `edge${e}`, 'capture');
        for (let f = 0; f < FILES; f++) makeCapture(captureDir, `s${f}`, 20, { payloadBytes: 2000 });
        expected.set(`edge-${e}`, FILES * 20);
        engines.push(
          new SyncEngine({
            captureDir,
            stateDir: path.join(captureDir, '.edgecap'),
            additionalSyncPaths: [],
            fileLastModifiedMs: 0,
            intervalMs: 60_000,
            threads: 1,
            partId: `edge-${e}`,
            tags: [],
            ingest: { address: `localhost:${port}`, caFile: cert.caFile, apiKey: 'k' },
          }),
        );
        engines.at(-1)!.on('sync-error', (ev: { message: string }) => errors.push(ev.message));
      }
      // rounds at once from every edge until each capture dir is drained (bounded)
      const deadline = Date.now() + 120_000;
      const left = (e: number) => fs.readdirSync(path.join(root, `edge${e}`, 'capture'), { recursive: true }).filter((f) => String(f).endsWith('.capture')).length;
      await Promise.all(
        engines.map(async (eng, e) => {
          while (left(e) > 0) {
            if (Date.now() > deadline) throw new Error(`edge ${e}: ${left(e)} files left`);
            await eng.syncNow().catch(() => undefined);
            if (left(e) > 0) await new Promise((r) => setTimeout(r, 200));
          }
        }),
      );
      for (let e = 0; e < EDGES; e++) {
        const failed = path.join(root, `edge${e}`, 'capture', '.edgecap', 'failed');
        expect(fs.existsSync(failed) ? fs.readdirSync(failed, { recursive: true }) : [], `edge ${e} failed/`).toEqual([]);
      }
    } finally {
      await Promise.all(engines.map((e) => e.stop()));
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    }
    const got = new Map<string, Set<string>>();
    let rows = 0;
    for await (const r of exportReadings(dataDir)) {
      rows++;
      const s = got.get(r.part_id) ?? new Set<string>();
      s.add(`${r.file_id}/${r.seq}`);
      got.set(r.part_id, s);
    }
    expect(rows).toBe(EDGES * FILES * 20);
    // the stampede really hit the ingest's limits, and the edges waited instead of giving up
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.some((m) => /RESOURCE_EXHAUSTED|UNAVAILABLE/.test(m)), errors.slice(0, 3).join(' | ')).toBe(true);
    for (const [part, n] of expected) expect(got.get(part)?.size, part).toBe(n);
  }, 180_000);
});
