// The capture threads start one-file CommonJS bundles (scripts/bundle-threads.js, issue 14). What
// each loads at start is checked by loading it, as a thread does, in a node of its own: no logger,
// no validator, no gRPC in any capture thread, no LMDB in a collector, undici only when the http
// model runs, no ES module linked.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const threads = fileURLToPath(new URL('../dist/threads/', import.meta.url));

/**
 * Load `file` in a worker thread, as the engine starts one (its top level runs: what a thread does
 * before its first call), in a fresh node without NODE_PATH (pnpm's shims set it to the store,
 * where anything resolves; a user's `node app.js` does not): the packages it brought into the
 * module cache, the built-ins it loaded, and whether it linked an ES module (Node's module jobs).
 */
function loadsAtStart(file: string): { packages: Set<string>; builtins: Set<string>; esModules: boolean } {
  const inThread = `
    const before = new Set(process.moduleLoadList);
    require(${JSON.stringify(path.join(threads, file))});
    const packages = new Set();
    for (const k of Object.keys(require.cache)) {
      const m = [...k.matchAll(/node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/g)].at(-1);
      if (m) packages.add(m[1].replace(/\\\\/g, '/'));
    }
    const added = process.moduleLoadList.filter((m) => !before.has(m));
    require('node:worker_threads').parentPort.postMessage({ packages: [...packages], added });`;
  const probe = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(${JSON.stringify(inThread)}, { eval: true, workerData: { edgecap: { logLevel: 'silent', wakeSab: new SharedArrayBuffer(8) } } });
    w.once('message', (m) => { console.log(JSON.stringify(m)); process.exit(0); });
    w.once('error', (e) => { console.error(e); process.exit(1); });`;
  const { NODE_PATH: _, ...env } = process.env;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' })) as { packages: string[]; added: string[] };
  const builtins = new Set(out.added.filter((m) => m.startsWith('NativeModule ')).map((m) => `node:${m.slice('NativeModule '.length)}`));
  return { packages: new Set(out.packages), builtins, esModules: builtins.has('node:internal/modules/esm/module_job') };
}

describe('capture thread bundles', () => {
  it('a collector thread loads no logger, validator, gRPC, LMDB or HTTP client at start, and links no ES module', () => {
    const { packages, esModules } = loadsAtStart('collector.cjs');
    for (const p of ['pino', 'zod', '@grpc/grpc-js', 'protobufjs', 'lmdb', 'undici']) expect([...packages], p).not.toContain(p);
    // ESM's resolver, loader, translators and module jobs (and fs/promises, readline with them):
    // ~5 ms of each collector's boot, ~20 booting at once on 2 cores (scripts/esbuild-node.js)
    expect(esModules).toBe(false);
    // the http model is the one place undici comes from, required when it runs
    expect(fs.readFileSync(path.join(threads, 'collector.cjs'), 'utf8')).toMatch(/require\("undici"\)/);
  });

  it('a collector thread boots without node:crypto: only the writer names files', () => {
    // ~4 ms of every collector's boot (19 threads on 2 cores: tens of ms of spawn → every first reading)
    expect([...loadsAtStart('collector.cjs').builtins]).not.toContain('node:crypto');
  });

  it('the native CRC32C binding resolves from the bundles (they load it with createRequire at run time): else every CRC in a capture thread runs in JS', () => {
    // In a node of its own without NODE_PATH: pnpm's shims (npx vitest) set it to the store,
    // where anything resolves; a user's `node app.js` does not.
    const { NODE_PATH: _, ...env } = process.env;
    for (const f of ['collector.cjs', 'writer.cjs']) {
      const probe = `console.log(typeof require('node:module').createRequire(${JSON.stringify(path.join(threads, f))})('@node-rs/crc32').crc32c)`;
      expect(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }).trim(), f).toBe('function');
    }
  });

  it('the writer thread loads LMDB (its ledger) and nothing a collector refuses besides', () => {
    const { packages } = loadsAtStart('writer.cjs');
    expect([...packages]).toContain('lmdb');
    for (const p of ['pino', 'zod', '@grpc/grpc-js', 'protobufjs', 'undici']) expect([...packages], p).not.toContain(p);
  });
});
