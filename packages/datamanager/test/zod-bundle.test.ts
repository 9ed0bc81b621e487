// The config is validated with the build's one-file bundle of the zod parts the schema uses
// (src/zod-parts.ts, scripts/bundle-zod.js), not zod's ~95 modules: ~40 ms of every start.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const index = new URL('../dist/index.js', import.meta.url).href;

describe('config validation loads the zod bundle', () => {
  it('a DataManager built from dist requires dist/zod-parts.cjs and no module of zod itself; a bad config still names its field', () => {
    const probe = `
      const { DataManager } = await import(${JSON.stringify(index)});
      new DataManager({ capture_dir: '/nonexistent/edgecap', sync_disabled: true, resources: [] });
      let error = '';
      try { new DataManager({ capture_dir: '/x', resources: [{ name: 'a', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: -1 }] }] }); } catch (e) { error = e.message; }
      const { createRequire } = await import('node:module');
      console.log(JSON.stringify({ loaded: Object.keys(createRequire(import.meta.url).cache), error }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', env: { ...process.env, EDGECAP_LOG_LEVEL: 'silent' } })) as { loaded: string[]; error: string };
    expect(out.loaded.filter((f) => f.endsWith('/dist/zod-parts.cjs'))).toHaveLength(1);
    expect(out.loaded.filter((f) => /[\\/]node_modules[\\/](\.pnpm[\\/][^\\/]+[\\/]node_modules[\\/])?zod[\\/]/.test(f))).toEqual([]);
    expect(out.error).toMatch(/resources\[0\]\.capture_methods\[0\]\.capture_frequency_hz/);
  });
});
