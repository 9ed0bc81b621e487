/**
 * The shared collector thread (ResourceSpec.collector 'shared'): resources that opt in run in one
 * thread, each with its own ring, seqs and gaps; a crash of that thread restarts each of them;
 * stop is bounded while one of them blocks; resources with threads of their own never wait for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUILTIN_MODEL_NAMES } from '@edgecap/core';
import { BUILTIN_MODELS, CaptureEngine, type ResourceSpec } from '@edgecap/capture';
import type { StateStore } from '@edgecap/store';
import { expectAccounted, expectContiguous, newStore, readBack, sleep, tmpDir } from './helpers.js';

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

/** Each reading says which thread made it. */
const WHOAMI = `
import { threadId } from 'node:worker_threads';
export default () => { let n = 0; return { kind: 'sensor', Readings: () => ({ tid: threadId, n: n++ }) }; };
`;

/** The 3rd reading blocks the whole thread (synchronously) for 20 s. */
const BLOCKER = `
let n = 0;
const word = new Int32Array(new SharedArrayBuffer(4));
export default () => ({ kind: 'sensor', Readings() { if (++n === 3) Atomics.wait(word, 0, 0, 20000); return { n }; } });
`;

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function setup(tag: string): { dir: string; store: StateStore; mod: (name: string, src: string) => string } {
  const dir = tmpDir(tag);
  const store = newStore(dir);
  stores.push(store);
  const mods = fs.mkdtempSync(path.join(dir, '..', `edgecap-${tag}-mods-`));
  return {
    dir,
    store,
    mod: (name, src) => {
      const f = path.join(mods, name);
      fs.writeFileSync(f, src);
      return f;
    },
  };
}

const spec = (name: string, src: string | { model: string }, hz: number, shared: boolean): ResourceSpec => ({
  name,
  ...(typeof src === 'string' ? { module: src } : src),
  methods: [{ method: 'Readings', frequencyHz: hz }],
  ...(shared ? { collector: 'shared' as const } : {}),
});

describe('shared collector thread', () => {
  it('runs every opted-in resource in one thread, each stream numbered exactly once from 0', async () => {
    const { dir, store, mod } = setup('shared-seqs');
    const who = mod('whoami.mjs', WHOAMI);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 50 });
    const errors: Error[] = [];
    eng.on('error', (e: Error) => errors.push(e));
    await eng.start([spec('a', who, 50, true), spec('b', who, 50, true), spec('c', who, 20, true), spec('own', who, 50, false)]);
    await until('readings on every stream', () => eng.stats().length === 4 && eng.stats().every((s) => s.captured >= 15));
    await eng.stop();
    expect(errors).toEqual([]);
    const disk = readBack(dir);
    const tids = new Map<string, Set<number>>();
    for (const n of ['a', 'b', 'c', 'own']) {
      const rs = disk.get(`sensor/${n}/Readings`)!.readings;
      expectContiguous(rs, 0);
      expect(rs.length).toBe(eng.stats().find((s) => s.resource === n)!.captured);
      tids.set(n, new Set(rs.map((r) => (r.data as { tid: number }).tid)));
    }
    const [ta, tb, tc, town] = ['a', 'b', 'c', 'own'].map((n) => [...tids.get(n)!]);
    expect(ta).toHaveLength(1);
    expect(tb).toEqual(ta);
    expect(tc).toEqual(ta);
    expect(town).toHaveLength(1);
    expect(town).not.toEqual(ta);
    const reasons = expectAccounted(dir, store, eng.stats());
    for (const r of reasons.values()) expect([...r]).toEqual([]);
  }, 60_000);

  it('a shared resource crashing its thread restarts with the others; no seq lost or doubled, the own-thread one untouched', async () => {
    const { dir, store } = setup('shared-crash');
    const marker = path.join(dir, '..', `${path.basename(dir)}-crashed`);
    const crashy = path.join(import.meta.dirname, 'fixtures', 'crashy.mjs');
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 50, restart: { initialMs: 100, maxMs: 500 } });
    const errors: Error[] = [];
    const restarted: string[] = [];
    eng.on('error', (e: Error) => errors.push(e));
    eng.on('collector-restarted', (e: { resource: string }) => restarted.push(e.resource));
    await eng.start([
      { ...spec('crashy', crashy, 50, true), attributes: { marker } },
      spec('steady', { model: 'sim:sensor' }, 50, true),
      spec('own', { model: 'sim:sensor' }, 50, false),
    ]);
    const stat = (n: string) => eng.stats().find((s) => s.resource === n)!;
    await until('both shared resources restarted', () => restarted.includes('crashy') && restarted.includes('steady'));
    const atRestart = stat('steady').captured;
    await until('steady readings after the restart', () => stat('steady').captured >= atRestart + 20 && stat('crashy').captured >= 20);
    await eng.stop();
    expect(fs.existsSync(marker)).toBe(true); // it did crash
    expect(errors.length).toBe(1); // one report for the thread, not one per resource
    expect(restarted.filter((r) => r === 'own')).toEqual([]);
    const reasons = expectAccounted(dir, store, eng.stats());
    for (const n of ['steady', 'own']) {
      const k = `sensor/${n}/Readings`;
      // every reading the stream took is on disk (a crash can cost at most the one being published)
      expect([...reasons.get(k)!].filter((r) => r !== 'collector_crash')).toEqual([]);
      const onDisk = readBack(dir).get(k)!.readings.length;
      expect(onDisk).toBeGreaterThanOrEqual(stat(n).captured - 1);
    }
    expect([...reasons.get('sensor/own/Readings')!]).toEqual([]);
    expectContiguous(readBack(dir).get('sensor/own/Readings')!.readings, 0);
  }, 60_000);

  it('stop is bounded while a shared resource blocks its thread; a resource with its own thread keeps its schedule and stops cleanly', async () => {
    const { dir, store, mod } = setup('shared-block');
    const blocker = mod('blocker.mjs', BLOCKER);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 50, collectorStopTimeoutMs: 1000 });
    const errors: Error[] = [];
    eng.on('error', (e: Error) => errors.push(e));
    await eng.start([spec('blocker', blocker, 20, true), spec('neighbour', { model: 'sim:sensor' }, 20, true), spec('own', { model: 'sim:sensor' }, 50, false)]);
    const stat = (n: string) => eng.stats().find((s) => s.resource === n)!;
    await until('the block', () => stat('blocker').captured >= 2);
    await sleep(300);
    const own0 = stat('own').captured;
    const neighbour0 = stat('neighbour').captured;
    await sleep(1000);
    // the shared thread is stuck; the own thread is not
    expect(stat('neighbour').captured).toBe(neighbour0);
    expect(stat('own').captured).toBeGreaterThanOrEqual(own0 + 10);
    const t0 = performance.now();
    await eng.stop();
    const stopMs = performance.now() - t0;
    // 1 s stop timeout + a bounded terminate; the 20 s block is never waited out
    expect(stopMs).toBeLessThan(10_000);
    expect(errors.some((e) => /did not answer stop\(\)/.test(e.message))).toBe(true);
    const reasons = expectAccounted(dir, store, eng.stats());
    expect([...reasons.get('sensor/own/Readings')!]).toEqual([]);
    expectContiguous(readBack(dir).get('sensor/own/Readings')!.readings, 0);
    expect(readBack(dir).get('sensor/own/Readings')!.readings.length).toBe(stat('own').captured);
  }, 60_000);

  it('reconfigure: a shared resource removed or changed stops alone; the others in the thread keep streaming', async () => {
    const { dir, store, mod } = setup('shared-reconf');
    const who = mod('whoami.mjs', WHOAMI);
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [], flushIntervalMs: 50 });
    const errors: Error[] = [];
    eng.on('error', (e: Error) => errors.push(e));
    await eng.start([spec('a', who, 50, true), spec('b', who, 50, true), spec('gone', who, 50, true)]);
    const stat = (n: string) => eng.stats().find((s) => s.resource === n)!;
    await until('readings', () => ['a', 'b', 'gone'].every((n) => (stat(n)?.captured ?? 0) >= 10));
    await eng.reconfigure([spec('a', who, 50, true), spec('b', who, 25, true), spec('new', who, 50, true)]);
    const a0 = stat('a').captured;
    const gone0 = stat('gone').captured;
    await until('readings after reconfigure', () => stat('a').captured >= a0 + 20 && (stat('new')?.captured ?? 0) >= 10 && stat('b').captured >= 25);
    expect(stat('gone').captured).toBe(gone0);
    await eng.stop();
    expect(errors).toEqual([]);
    const disk = readBack(dir);
    // 'a' was never restarted: one thread throughout, and it is the thread 'new' joined
    const tidsA = new Set(disk.get('sensor/a/Readings')!.readings.map((r) => (r.data as { tid: number }).tid));
    expect(tidsA.size).toBe(1);
    expect(new Set(disk.get('sensor/new/Readings')!.readings.map((r) => (r.data as { tid: number }).tid))).toEqual(tidsA);
    for (const n of ['a', 'gone', 'new']) expectContiguous(disk.get(`sensor/${n}/Readings`)!.readings, 0);
    const reasons = expectAccounted(dir, store, eng.stats());
    for (const r of reasons.values()) expect([...r]).toEqual([]);
  }, 60_000);
});

describe('built-in model names', () => {
  it('core\'s list (what a config may name) is exactly what capture implements', () => {
    expect(Object.keys(BUILTIN_MODELS).sort()).toEqual([...BUILTIN_MODEL_NAMES].sort());
  });
});
