import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncOptions } from '@edgecap/sync';
import { StateStore } from '@edgecap/store';
import { TestServer, makeCapture, makeFile, tmpDir, until } from './helpers.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'sync-child.mjs');

function runChild(opts: SyncOptions): { child: ChildProcess; lines: Record<string, unknown>[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [fixture, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGECAP_LOG_LEVEL: 'error' } });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(err);
    res(code);
  }));
  return { child, lines, exited };
}

describe('crash/resume: SIGKILL mid-upload, restart', () => {
  let dir: string;
  let server: TestServer;
  beforeAll(async () => {
    dir = tmpDir('crash');
    server = new TestServer({ apiKey: 'k' });
    await server.start();
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every file ends committed exactly once on the server; a lost ack is answered ALREADY_HAVE', async () => {
    const captureDir = path.join(dir, 'capture');
    const stateDir = path.join(captureDir, '.edgecap');
    const extra = path.join(dir, 'extra');
    const caps = Array.from({ length: 6 }, (_, i) => makeCapture(captureDir, `c${i}`, 200, { payloadBytes: 200 }));
    const arb = [makeFile(extra, 'a/one.bin', Buffer.alloc(200_000, 1)), makeFile(extra, 'two.txt', 'two')];
    const lostAck = caps[2]!; // committed by the server, ack never arrives
    const midUpload = caps[3]!; // received, never committed
    // One-shot hangs: the lost-ack file hangs after commit in run 1, the next file before commit in run 2.
    const hung = new Set<string>();
    server.on('hung', (m: { file_id: string }) => hung.add(m.file_id));
    server.faults.hang = (m) => {
      if (hung.has(m.file_id)) return undefined;
      if (m.file_id === lostAck.id) return 'after-commit';
      if (m.file_id === midUpload.id) return 'before-commit';
      return undefined;
    };

    const opts: SyncOptions = {
      captureDir,
      stateDir,
      additionalSyncPaths: [extra],
      fileLastModifiedMs: 10_000,
      intervalMs: 60_000,
      threads: 1,
      partId: 'p',
      tags: [],
      ingest: { address: server.address, insecure: true, apiKey: 'k' },
      chunkBytes: 16 * 1024,
    };

    // Run 1: hangs on the lost-ack file → SIGKILL.
    const run1 = runChild(opts);
    await until(() => hung.has(lostAck.id), 'server to hang after committing the lost-ack file');
    run1.child.kill('SIGKILL');
    await run1.exited;
    expect(server.stored.get(lostAck.id)?.stores).toBe(1);
    expect(fs.existsSync(lostAck.path)).toBe(true); // committed but not deleted

    // Run 2: hangs mid-upload of the next file → SIGKILL.
    const run2 = runChild(opts);
    await until(() => hung.has(midUpload.id), 'server to hang mid-upload');
    run2.child.kill('SIGKILL');
    await run2.exited;
    expect(server.stored.has(midUpload.id)).toBe(false);
    const store = new StateStore(stateDir);
    expect(store.fileState(midUpload.path)?.status).toBe('uploading'); // a stale claim from a dead run
    await store.close();

    // Run 3: no faults → everything goes, exactly once.
    server.faults = {};
    const run3 = runChild(opts);
    expect(await run3.exited).toBe(0);
    const synced = run3.lines.filter((l) => l.event === 'file-synced');
    expect(synced.find((l) => l.fileId === midUpload.id)?.status).toBe('committed');

    expect(server.stored.size).toBe(caps.length + arb.length);
    for (const s of server.stored.values()) expect(s.stores).toBe(1);
    for (const c of caps) {
      expect(server.stored.get(c.id)!.data.equals(c.bytes)).toBe(true);
      expect(fs.existsSync(c.path)).toBe(false);
    }
    for (const a of arb) expect(fs.existsSync(a)).toBe(false);
    // The lost ack: re-sent after the restart, answered ALREADY_HAVE, stored once.
    const la = [...run1.lines, ...run2.lines, ...run3.lines].filter((l) => l.event === 'file-synced' && l.fileId === lostAck.id);
    expect(la.map((l) => l.status)).toEqual(['already_have']);
    expect(server.stored.get(lostAck.id)!.alreadyHave).toBe(1);
  });
});
