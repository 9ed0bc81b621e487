/**
 * Scale-out, end to end: two `edgecap ingest --storage postgres` nodes (child processes) on
 * one PostgreSQL; three edges (SyncEngine from @edgecap/sync, each given both addresses)
 * sync capture files made with @edgecap/format. Node A sits behind a throttling proxy so an
 * upload is always in flight when it is SIGKILLed; it is then restarted on the same port. At
 * the end every reading is in `readings` exactly once (SQL count and distinct count), every
 * file once in `files`, no capture file left on any edge, none moved to failed/.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportReadings } from '@edgecap/ingest';
import { encodeFileStart, FrameEncoder } from '@edgecap/format';
import { SyncEngine, type FileSyncedEvent, type SyncErrorEvent } from '@edgecap/sync';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../packages/ingest/dist/pg/cluster.js';
import { freePort, sigkill, startIngestProcess, tmpdir, waitFor, type IngestProc } from './helpers.js';
import { FaultyProxy } from './proxy.js';

vi.hoisted(() => {
  process.env.EDGECAP_LOG_LEVEL ??= 'silent';
});

const why = pgUnavailableReason();
if (why) console.warn(`SKIPPING PostgreSQL multi-node ingest test: ${why}`);

const EDGES = 3;
const FILES_PER_EDGE = 8;
const READINGS_PER_FILE = 3000;
/** Node A's inbound rate: a file (~0.7 MB) takes about a second, so A is always mid-upload. */
const A_BYTES_PER_SECOND = 1 << 20;

const startNode = (port: number, pgUrl: string, scratch: string): Promise<IngestProc> =>
  startIngestProcess({ data: scratch, port, apiKey: 'test-key-1', args: ['--insecure', '--storage', 'postgres', '--pg-url', pgUrl, '--pg-pool-size', '4'] });

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

describe.skipIf(why)('two ingest nodes on one PostgreSQL', () => {
  let cluster: PgCluster;
  let dir: string;
  const procs: IngestProc[] = [];
  let proxy: FaultyProxy | undefined;

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { fsync: 'off', synchronous_commit: 'off' } });
    dir = tmpdir('pgmulti');
  });
  afterAll(() => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    void proxy?.close();
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
    procs.push(nodeA, nodeB);
    proxy = new FaultyProxy(portA, '127.0.0.1', A_BYTES_PER_SECOND);
    const A = `127.0.0.1:${await proxy.listen()}`;
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
        // `random: () => 0` pins the first address (an engine otherwise starts at a random one
        // to spread edges over nodes, and all three could start on B).
        ingest: { address: e === 1 ? [B, A] : [A, B], insecure: true, apiKey: 'test-key-1' },
        random: () => 0,
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
      // The edges sync until their capture dirs are empty (or give up after 45 s, so a stuck
      // edge fails this test instead of running on into the next file).
      const giveUpAt = Date.now() + 45_000;
      const edgeLoops = engines.map(async (engine, e) => {
        while (remaining(captureDirs[e]!) > 0) {
          if (Date.now() > giveUpAt) throw new Error(`edge ${e} still has ${remaining(captureDirs[e]!)} capture files`);
          await engine.syncNow();
          if (remaining(captureDirs[e]!) > 0) await new Promise((r) => setTimeout(r, 50));
        }
      });
      for (const l of edgeLoops) l.catch(() => {}); // awaited below; don't report twice

      // Kill A while it is receiving an upload (bytes staged, not committed), once both nodes
      // have committed files.
      await waitFor('both nodes to commit and A to be mid-upload', async () => (await count('SELECT count(DISTINCT ingest_node) AS n FROM files')) >= 2 && stagedBytes(scratchA) > 0, 30_000, 5);
      const stagedAtKill = stagedBytes(scratchA);
      const filesAtKill = await count('SELECT count(*) AS n FROM files');
      await sigkill(nodeA);
      const deadScratch = fs.readdirSync(path.join(scratchA, 'pg-staging'));
      expect(deadScratch.length).toBe(1);
      // Node B keeps committing while A is down (the edges that preferred A fail over to B).
      await waitFor('node B to commit while A is down', async () => (await count('SELECT count(*) AS n FROM files')) >= filesAtKill + 2, 30_000, 20);
      nodeA = await startNode(portA, url, scratchA);
      procs.push(nodeA);
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
