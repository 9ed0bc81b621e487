#!/usr/bin/env node
/**
 * The capture threads' entries as one file each (issue 14), written after `tsc -b`:
 *
 *   dist/collector-worker.js ── esbuild (bundle, CommonJS) ──► dist/threads/collector.cjs
 *   dist/writer-worker.js    ── esbuild (bundle, CommonJS) ──► dist/threads/writer.cjs
 *
 * Why: a thread loading ~25 ES modules pays for each (resolution, a module record, its own
 * compiled code) in every isolate. Measured on Node 22 (24 threads, RSS slope per thread): a
 * bare worker 11.0 MB, the unbundled collector entry 15.0 MB, this bundle 11.7 MB; all 24 online
 * in 1.29 s against 1.76 s. The engine starts these files (engine.ts); the per-module entries
 * stay for tests that run a thread body directly. CommonJS, one file each: a thread started from
 * an ES module loads Node's ESM loader first (scripts/esbuild-node.js says what that cost).
 *
 * Pure-JS dependencies are bundled too (@msgpack/msgpack is 15 modules of its own); these stay
 * requires, resolved from packages/capture at run time: lmdb is native, undici must load only in
 * an http collector (a dynamic import: required when the first http resource starts), pino
 * must not load in a capture thread at all (an import of it fails the build instead). The
 * native CRC32C (@edgecap/format's crc32c.ts) is loaded with createRequire from the bundle's
 * own place, so it is a dependency of this package too (without it every CRC here ran in JS).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { NODE_CJS_THREAD_BUNDLE } from '../../../scripts/esbuild-node.js';

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(pkgDir, 'dist');
const out = path.join(dist, 'threads');

/** Output name → the tsc-built entry it bundles. */
export const THREAD_ENTRIES = { collector: 'collector-worker.js', writer: 'writer-worker.js' };

const entryPoints = {};
for (const [name, file] of Object.entries(THREAD_ENTRIES)) {
  const p = path.join(dist, file);
  if (!fs.existsSync(p)) throw new Error(`packages/capture/dist/${file} is missing: run tsc -b first`);
  entryPoints[name] = p;
}

fs.rmSync(out, { recursive: true, force: true });
await esbuild.build({
  entryPoints,
  outdir: out,
  ...NODE_CJS_THREAD_BUNDLE,
  external: ['lmdb', 'undici'],
  plugins: [
    {
      name: 'no-logger-in-threads',
      setup(build) {
        build.onResolve({ filter: /^pino(\/|$)/ }, (args) => ({ errors: [{ text: `${args.importer} imports ${args.path}: capture threads log through their parent (@edgecap/core's threads/thread-log.ts)` }] }));
      },
    },
  ],
  logLevel: 'warning',
});
