/**
 * Scale-out, end to end: two `serve.js --storage postgres` ingest nodes (child processes) on
 * one PostgreSQL; three edges (SyncEngine from @edgecap/sync, each given both addresses)
 * sync capture files made with @edgecap/format. Node A is SIGKILLed while it is receiving an
 * upload, and restarted on the same port. At the end every reading is in `readings` exactly
 * once (SQL count and distinct count), every file once in `files`, no capture file left on
 * any edge, none moved to failed/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings } from '@edgecap/ingest';
import { encodeFileStart, FrameEncoder } from '@edgecap/format';
import { SyncEngine, type FileSyncedEvent, type SyncErrorEvent } from '@edgecap/sync';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../dist/pg/cluster.js';
import { tmpDir } from './helpers.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const why = pgUnavailableReason();
if (why) console.warn(`SKIPPING PostgreSQL multi-node ingest test: ${why}`);

const SERVE = fileURLToPath(new URL('../dist/serve.js', import.meta.url));
const EDGES = 3;
const FILES_PER_EDGE = 8;
const READINGS_PER_FILE = 3000;

interface Node {
  proc: ChildProcess;
  exited: Promise<unknown>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function startNode(port: number, pgUrl: string, scratch: string): Promise<Node> {
  const proc = spawn(process.execPath, [SERVE, '--listen', `127.0.0.1:${port}`, '--insecure', '--storage', 'postgres', '--pg-url', pgUrl, '--data', scratch, '--pg-pool-size', '4'], {
    env: { ...process.env, EDGECAP_API_KEY: 'test-key-1', EDGECAP_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`serve.js exited with ${code} before listening`)));
  });
  expect(line).toBe(`listening 127.0.0.1:${port}`);
  return { proc, exited };
}

/** Finished capture files for one edge: stream `temp`, consecutive seq ranges. */
function writeCaptures(captureDir: string): void {
  const dir = path.join(captureDir, 'sensor', 'temp', 'Readings');
  fs.mkdirSync(dir, { recursive: true });
  const enc = new FrameEncoder();
  const buf = new Uint8Array(1 << 16);
  const pad = 'x'.repeat(200);
  for (let f = 0; f < FILES_PER_EDGE; f++) {
    const { bytes: head, header } = encodeFileStart({ kind: 'sensor', name: 'temp', method: 'Readings', type: 'tabular', tags: [], start_us: 1_700_000_000_000_000 + f });
    const parts: Buffer[] = [Buffer.from(head)];
    for (let i = 0; i < READINGS_PER_FILE; i++) {
      const seq = f * READINGS_PER_FILE + i;
      const n = enc.reading(buf, 0, seq, 1_700_000_000_000_000 + seq, 1_700_000_000_000_100 + seq, { v: seq, pad });
      parts.push(Buffer.from(buf.subarray(0, n)));
    }
    fs.writeFileSync(path.join(dir, `${String(f).padStart(3, '0')}-${header.id}.capture`), Buffer.concat(parts));
  }
}

const remaining = (captureDir: string): number => (fs.readdirSync(captureDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.capture')).length;

/** Bytes of uploads in progress in a node's scratch dir. */
function stagedBytes(scratch: string): number {
  const base = path.join(scratch, 'pg-staging');
  if (!fs.existsSync(base)) return 0;
  let n = 0;
  for (const d of fs.readdirSync(base)) {
    try {
      for (const f of fs.readdirSync(path.join(base, d))) n += fs.statSync(path.join(base, d, f)).size;
    } catch {
      /* removed meanwhile */
    }
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(why)('two ingest nodes on one PostgreSQL', () => {
  let cluster: PgCluster;
  let dir: string;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { fsync: 'off', synchronous_commit: 'off' } });
    dir = tmpDir('pgmulti');
  });
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    cluster?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('three edges through both nodes, node A SIGKILLed mid-upload and restarted: every reading exactly once', async () => {
    const url = cluster.url;
    const [portA, portB] = [await freePort(), await freePort()];
    const scratchA = path.join(dir, 'scratch-a');
    const scratchB = path.join(dir, 'scratch-b');
    let nodeA = await startNode(portA, url, scratchA);
    const nodeB = await startNode(portB, url, scratchB);
    procs.push(nodeA.proc, nodeB.proc);
    const A = `127.0.0.1:${portA}`;
    const B = `127.0.0.1:${portB}`;

    const engines: SyncEngine[] = [];
    const synced: FileSyncedEvent[] = [];
    const errors: SyncErrorEvent[] = [];
    const captureDirs: string[] = [];
    for (let e = 0; e < EDGES; e++) {
      const captureDir = path.join(dir, `edge${e}`, 'capture');
      writeCaptures(captureDir);
      captureDirs.push(captureDir);
      const engine = new SyncEngine({
        captureDir,
        stateDir: path.join(dir, `edge${e}`, 'state'),
        additionalSyncPaths: [],
        fileLastModifiedMs: 0,
        intervalMs: 60_000,
        threads: 2,
        partId: `edge-${e}`,
        tags: ['multi'],
        // Edge 1 prefers node B; the others node A. Fail-over rotates on connectivity errors.
        ingest: { address: e === 1 ? [B, A] : [A, B], insecure: true, apiKey: 'test-key-1' },
        chunkBytes: 32 * 1024,
        backoff: { initialMs: 50, maxMs: 500 },
      });
      engine.on('file-synced', (ev: FileSyncedEvent) => synced.push(ev));
      engine.on('sync-error', (ev: SyncErrorEvent) => errors.push(ev));
      engines.push(engine);
    }

    const q = new pg.Client({ connectionString: url });
    await q.connect();
    const count = async (sql: string): Promise<number> => Number((await q.query(sql)).rows[0].n);
    try {
      // The edges sync until their capture dirs are empty (bounded by the test timeout).
      const edgeLoops = engines.map(async (engine, e) => {
        while (remaining(captureDirs[e]!) > 0) {
          await engine.syncNow();
          if (remaining(captureDirs[e]!) > 0) await sleep(50);
        }
      });

      // Kill A while it is receiving an upload (bytes staged, not committed), once both nodes
      // have committed files.
      while (!((await count('SELECT count(DISTINCT ingest_node) AS n FROM files')) >= 2 && stagedBytes(scratchA) > 0)) await sleep(5);
      const stagedAtKill = stagedBytes(scratchA);
      const filesAtKill = await count('SELECT count(*) AS n FROM files');
      nodeA.proc.kill('SIGKILL');
      await nodeA.exited;
      const deadScratch = fs.readdirSync(path.join(scratchA, 'pg-staging'));
      expect(deadScratch.length).toBe(1);
      // Node B keeps committing while A is down (the edges that preferred A fail over to B).
      while ((await count('SELECT count(*) AS n FROM files')) < filesAtKill + 2) await sleep(20);
      nodeA = await startNode(portA, url, scratchA);
      procs.push(nodeA.proc);
      // The restarted node removed the dead node's half-received upload.
      expect(fs.readdirSync(path.join(scratchA, 'pg-staging'))).not.toContain(deadScratch[0]);

      await Promise.all(edgeLoops);

      const total = EDGES * FILES_PER_EDGE * READINGS_PER_FILE;
      expect(stagedAtKill).toBeGreaterThan(0);
      expect(errors.length).toBeGreaterThan(0); // some edge saw node A die
      expect(await count('SELECT count(*) AS n FROM files')).toBe(EDGES * FILES_PER_EDGE);
      expect(await count('SELECT count(*) AS n FROM readings')).toBe(total);
      expect(await count('SELECT count(DISTINCT (part_id, resource_kind, resource, method, seq)) AS n FROM readings')).toBe(total);
      const perEdge = await q.query('SELECT part_id, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM readings GROUP BY part_id ORDER BY part_id');
      expect(perEdge.rows).toEqual(Array.from({ length: EDGES }, (_, e) => ({ part_id: `edge-${e}`, n: FILES_PER_EDGE * READINGS_PER_FILE, lo: 0, hi: FILES_PER_EDGE * READINGS_PER_FILE - 1 })));
      // Both nodes committed files (node names are host:pid; the restarted A is a third name
      // when an edge came back to it).
      expect(await count('SELECT count(DISTINCT ingest_node) AS n FROM files')).toBeGreaterThanOrEqual(2);
      // Fail-over: the edges that preferred A (edge-0, edge-2) had files committed by B.
      expect(await count(`SELECT count(*) AS n FROM files WHERE ingest_node LIKE '%:${nodeB.proc.pid}' AND part_id IN ('edge-0', 'edge-2')`)).toBeGreaterThan(0);
      for (let e = 0; e < EDGES; e++) {
        expect(remaining(captureDirs[e]!)).toBe(0);
        expect(fs.existsSync(path.join(dir, `edge${e}`, 'state', 'failed'))).toBe(false);
      }
      expect(new Set(synced.map((s) => s.fileId)).size).toBe(EDGES * FILES_PER_EDGE);
      // The export reads the same rows back.
      let exported = 0;
      for await (const _ of exportReadings({ pgUrl: url })) exported++;
      expect(exported).toBe(total);
    } finally {
      await Promise.all(engines.map((e) => e.stop()));
      await q.end();
      nodeA.proc.kill('SIGTERM');
      nodeB.proc.kill('SIGTERM');
      await Promise.all([nodeA.exited, nodeB.exited]);
    }
  });
});
