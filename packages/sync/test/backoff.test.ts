import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backoff } from '@edgecap/core';
import { SyncEngine } from '@edgecap/sync';
import { classifyStatus } from '../src/errors.js';
import { hostOf, isLoopback } from '../src/target.js';
import { TestServer, makeCapture, tmpDir } from './helpers.js';

describe('backoff schedule (injectable clock, no real waits)', () => {
  it('200, 400, 800, ... capped at 1 h, then hourly; reset on success', () => {
    let now = 1_000_000;
    const b = new Backoff({ clock: { now: () => now }, random: () => 0.5 }); // 0.5 ⇒ zero jitter
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) delays.push(b.fail());
    expect(delays.slice(0, 6)).toEqual([200, 400, 800, 1600, 3200, 6400]);
    expect(delays[14]).toBe(200 * 2 ** 14); // 3,276,800: last step below the cap
    expect(delays.slice(15)).toEqual(Array(5).fill(3_600_000)); // then hourly
    expect(b.nextAttemptAt).toBe(now + 3_600_000);
    expect(b.ready()).toBe(false);
    now += 3_599_999;
    expect(b.ready()).toBe(false);
    now += 1;
    expect(b.ready()).toBe(true);
    b.succeed();
    expect(b.attempts).toBe(0);
    expect(b.nextAttemptAt).toBe(0);
    expect(b.fail()).toBe(200);
  });

  it('jitter stays within ±20% and never exceeds the cap', () => {
    for (const r of [0, 0.25, 0.75, 0.999999]) {
      const b = new Backoff({ clock: { now: () => 0 }, random: () => r });
      for (let n = 1; n <= 20; n++) {
        const d = b.fail();
        const base = b.baseDelay(n);
        expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
        expect(d).toBeLessThanOrEqual(Math.min(3_600_000, Math.ceil(base * 1.2)));
      }
    }
  });

  it('classifies gRPC statuses', () => {
    expect(classifyStatus(14)).toBe('link');
    expect(classifyStatus(4)).toBe('link');
    expect(classifyStatus(16)).toBe('auth');
    expect(classifyStatus(3)).toBe('rejected');
    expect(classifyStatus(13)).toBe('server');
    expect(classifyStatus(8)).toBe('server');
    expect(classifyStatus(6)).toBe('rejected');
    expect(classifyStatus(9)).toBe('rejected');
    expect(classifyStatus(7)).toBe('auth');
    expect(hostOf('[::1]:5')).toBe('::1');
    expect(hostOf('dns:///localhost:5')).toBe('localhost');
    expect(isLoopback('127.0.0.2:1')).toBe(true);
    expect(isLoopback('192.168.1.2:1')).toBe(false);
  });
});

describe('one connectivity probe gates all files', () => {
  let dir: string;
  let server: TestServer;
  beforeAll(async () => {
    dir = tmpDir('gate');
    server = new TestServer();
    await server.start();
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('while the server is down, each due round costs one Health call and zero uploads', async () => {
    const captureDir = path.join(dir, 'capture');
    const files = Array.from({ length: 8 }, (_, i) => makeCapture(captureDir, `g${i}`, 5));
    let now = 5_000_000;
    const engine = new SyncEngine({
      captureDir,
      stateDir: path.join(captureDir, '.edgecap'),
      additionalSyncPaths: [],
      fileLastModifiedMs: 10_000,
      intervalMs: 60_000,
      threads: 4,
      partId: 'p',
      tags: [],
      ingest: { address: server.address, insecure: true },
      clock: { now: () => now },
      random: () => 0.5,
    });
    server.faults.down = 14; // UNAVAILABLE
    try {
      const r = await engine.syncNow();
      expect(r.uploaded).toBe(0);
      expect(r.deferred).toBe(8);
      expect(server.hits).toMatchObject({ Health: 1, Upload: 0 });
      expect(engine.stats().nextRetryAt).toBe(now + 200);
      expect(engine.stats().pendingFiles).toBe(8);

      // Scheduled ticks before the backoff expires do not touch the server at all.
      for (let i = 0; i < 5; i++) expect(await engine.runScheduled()).toBeUndefined();
      now += 199;
      expect(await engine.runScheduled()).toBeUndefined();
      expect(server.hits).toMatchObject({ Health: 1, Upload: 0 });

      now += 1;
      await engine.runScheduled(); // due: one probe, still down → 400 ms
      expect(server.hits).toMatchObject({ Health: 2, Upload: 0 });
      expect(engine.stats().nextRetryAt).toBe(now + 400);
      now += 400;
      await engine.runScheduled(); // → 800 ms
      expect(server.hits).toMatchObject({ Health: 3, Upload: 0 });
      expect(engine.stats().nextRetryAt).toBe(now + 800);

      // Selective sync gate: closed ⇒ scheduled runs do nothing, syncNow still works.
      server.faults = {};
      now += 800;
      engine.setGate(() => false);
      expect(await engine.runScheduled()).toBeUndefined();
      expect(server.hits.Health).toBe(3);
      engine.setGate(() => true);

      const ok = await engine.runScheduled();
      expect(ok?.uploaded).toBe(8);
      expect(server.hits).toMatchObject({ Health: 4, Upload: 8 });
      expect(engine.stats().nextRetryAt).toBeUndefined(); // reset on success
      for (const f of files) expect(server.stored.get(f.id)?.stores).toBe(1);
    } finally {
      await engine.stop();
    }
  });
});
