#!/usr/bin/env node
/**
 * dist/zod-parts.js (tsc-built, src/zod-parts.ts) ─► esbuild (bundle, tree-shaken ESM sources of
 * zod, CommonJS out) ─► dist/zod-parts.cjs, which config.ts requires synchronously on the first
 * validation: a DataManager's constructor throws ConfigError at once, and zod's full module graph
 * stays off a process's start (see src/zod-parts.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { NODE_ESM_BUNDLE } from '../../../scripts/esbuild-node.js';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const entry = path.join(dist, 'zod-parts.js');
if (!fs.existsSync(entry)) throw new Error('packages/datamanager/dist/zod-parts.js is missing: run tsc -b first');
await esbuild.build({
  entryPoints: [entry],
  outfile: path.join(dist, 'zod-parts.cjs'),
  bundle: true,
  format: 'cjs', // required synchronously (config.ts)
  // the Node our bundles target (the oldest package.json's engines allow), kept in one place
  platform: NODE_ESM_BUNDLE.platform,
  target: NODE_ESM_BUNDLE.target,
  logLevel: 'warning',
});
