/**
 * Importing the library is cheap: the modules `import('@edgecap/datamanager')` loads, recorded by
 * a resolve hook in a fresh process, include none of the heavy ones (they load on first use:
 * zod when a config is validated, capture/store at start(), sync and gRPC only with sync on,
 * prom-client with the first metrics registry). Checked by what loads, not by how long it takes.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const PKG = path.join(import.meta.dirname, '..');

const CHILD = `
import * as mod from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const seen = [];
let port1;
if (typeof mod.registerHooks === 'function') {
  // in-thread, synchronous hooks (Node 22.15+, 23.5+): every resolution is recorded as it happens
  mod.registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r; } });
} else {
  const ch = new MessageChannel();
  port1 = ch.port1;
  port1.on('message', (u) => seen.push(u));
  const hook = 'let port; export function initialize(d) { port = d.port; } export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }';
  mod.register('data:text/javascript,' + encodeURIComponent(hook), { data: { port: ch.port2 }, transferList: [ch.port2] });
}
const dm = await import('@edgecap/datamanager');
const afterImport = seen.length;
let threw = '';
try { new dm.DataManager({ resources: [{ name: 'x', model: 'sim:nope' }] }); } catch (e) { threw = e.constructor.name; }
await new Promise((r) => setTimeout(r, 200));
port1?.close();
console.log(JSON.stringify({ urls: seen.slice(0, afterImport), threw, exports: Object.keys(dm).sort() }));
`;

describe('import cost', () => {
  it("import('@edgecap/datamanager') loads no heavy module; a bad config still throws ConfigError at construction", () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { cwd: PKG, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { urls: string[]; threw: string; exports: string[] };
    // the hook saw the package itself (else this test proves nothing)
    expect(out.urls.some((u) => /datamanager\/dist\/index\.js$/.test(u))).toBe(true);
    const heavy = out.urls.filter((u) => /zod|prom-client|@grpc|protobuf|lmdb|mongodb|undici|pino|\/packages\/(sync|capture|store|janitor|mongo|viam|proto)\//.test(u));
    expect(heavy).toEqual([]);
    expect(out.threw).toBe('ConfigError');
    expect(out.exports).toEqual(expect.arrayContaining(['DataManager', 'configSchema', 'parseConfig', 'loadConfigFile', 'listFailed', 'createMetricsRegistry']));
  }, 60_000);
});
