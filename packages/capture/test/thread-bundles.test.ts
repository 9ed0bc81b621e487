// The capture threads start one-file bundles (scripts/bundle-threads.js, issue 14): what each
// one loads at start is its entry plus every chunk it imports statically. Checked here in the
// built files: no logger, no validator, no gRPC in any capture thread, no LMDB in a collector,
// and undici only behind the http model's dynamic import.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const threads = fileURLToPath(new URL('../dist/threads/', import.meta.url));

/** Non-relative packages (and node: builtins) a file and the chunks it imports statically load at start; and its dynamic imports. */
function loadsAtStart(file: string, seen = new Set<string>()): { packages: Set<string>; builtins: Set<string>; lazy: Set<string> } {
  const packages = new Set<string>();
  const builtins = new Set<string>();
  const lazy = new Set<string>();
  if (seen.has(file)) return { packages, builtins, lazy };
  seen.add(file);
  const src = fs.readFileSync(path.join(threads, file), 'utf8');
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*"([^"]+)"|(?:^|\n)\s*import\s*"([^"]+)"/g)) {
    const spec = (m[1] ?? m[2])!;
    if (spec.startsWith('./')) {
      const sub = loadsAtStart(spec.slice(2), seen);
      sub.packages.forEach((p) => packages.add(p));
      sub.builtins.forEach((p) => builtins.add(p));
      sub.lazy.forEach((p) => lazy.add(p));
    } else if (spec.startsWith('node:')) builtins.add(spec);
    else packages.add(spec);
  }
  for (const m of src.matchAll(/import\("([^"]+)"\)/g)) lazy.add(m[1]!);
  return { packages, builtins, lazy };
}

describe('capture thread bundles', () => {
  it('a collector thread loads no logger, validator, gRPC, LMDB or HTTP client at start', () => {
    const { packages, lazy } = loadsAtStart('collector.js');
    for (const p of ['pino', 'zod', '@grpc/grpc-js', 'protobufjs', 'lmdb', 'undici']) expect([...packages], p).not.toContain(p);
    // the http model's chunk is the one place undici comes from, and only when imported
    const http = [...lazy].filter((s) => s.startsWith('./'));
    expect(http.length).toBeGreaterThan(0);
    expect(http.some((c) => loadsAtStart(c.slice(2)).packages.has('undici'))).toBe(true);
  });

  it('a collector thread boots without node:crypto: only the writer names files', () => {
    // ~4 ms of every collector's boot (19 threads on 2 cores: tens of ms of spawn → every first reading)
    expect([...loadsAtStart('collector.js').builtins]).not.toContain('node:crypto');
  });

  it('the native CRC32C binding resolves from the bundles (they load it with createRequire at run time): else every CRC in a capture thread runs in JS', () => {
    // In a node of its own without NODE_PATH: pnpm's shims (npx vitest) set it to the store,
    // where anything resolves; a user's `node app.js` does not.
    const { NODE_PATH: _, ...env } = process.env;
    for (const f of ['collector.js', 'writer.js']) {
      const probe = `console.log(typeof require('node:module').createRequire(${JSON.stringify(path.join(threads, f))})('@node-rs/crc32').crc32c)`;
      expect(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }).trim(), f).toBe('function');
    }
  });

  it('the writer thread loads LMDB (its ledger) and nothing a collector refuses besides', () => {
    const { packages } = loadsAtStart('writer.js');
    expect([...packages]).toContain('lmdb');
    for (const p of ['pino', 'zod', '@grpc/grpc-js', 'protobufjs', 'undici']) expect([...packages], p).not.toContain(p);
  });
});
