#!/usr/bin/env node
// `pnpm torture [--long]`: the reliability suite; --long runs the long version and records
// its table in RELIABILITY.md.
import { spawnSync } from 'node:child_process';

const long = process.argv.includes('--long');
const r = spawnSync('pnpm', ['exec', 'vitest', 'run', 'test/torture.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, ...(long ? { EDGECAP_TORTURE: 'long' } : {}) },
});
process.exit(r.status ?? 1);
