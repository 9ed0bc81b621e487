import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NATIVE_MIN_BYTES, crc32c, crc32cImpl, crc32cJs } from '../src/crc32c.js';

describe('crc32c', () => {
  it('uses the native binding where it ships a build (linux/darwin/windows x64 and arm64)', () => {
    const shipped = ['linux', 'darwin', 'win32'].includes(process.platform) && ['x64', 'arm64'].includes(process.arch);
    if (shipped && process.env.EDGECAP_CRC32C !== 'js') expect(crc32cImpl()).toBe('native');
  });

  it('the binding loads at the first long span, not at import: a thread of small readings never loads it', () => {
    const dist = new URL('../dist/crc32c.js', import.meta.url).href;
    const loaded = `Object.keys(require('node:module')._cache).some((k) => k.includes('@node-rs'))`;
    const run = (spans: number[]): string =>
      execFileSync(process.execPath, ['--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); const { crc32c } = await import(${JSON.stringify(dist)}); for (const n of ${JSON.stringify(spans)}) crc32c(new Uint8Array(n)); console.log(${loaded});`], { encoding: 'utf8', env: { ...process.env, EDGECAP_CRC32C: '' } }).trim();
    expect(run([10, 100, NATIVE_MIN_BYTES - 1])).toBe('false');
    const shipped = ['linux', 'darwin', 'win32'].includes(process.platform) && ['x64', 'arm64'].includes(process.arch);
    if (shipped) expect(run([10, NATIVE_MIN_BYTES])).toBe('true');
  });

  it('matches the standard check value on both paths', () => {
    const v = Buffer.from('123456789');
    expect(crc32cJs(v)).toBe(0xe3069283);
    const long = Buffer.concat(Array.from({ length: 64 }, () => v));
    expect(crc32c(long)).toBe(crc32cJs(long));
  });

  it('native and JS agree on every span length, offset and chained state', () => {
    const buf = randomBytes(70_000);
    const lengths = [0, 1, 7, 8, 9, NATIVE_MIN_BYTES - 1, NATIVE_MIN_BYTES, NATIVE_MIN_BYTES + 1, 4096, 65_537];
    for (const len of lengths) {
      for (const start of [0, 1, 3, 13]) {
        const end = start + len;
        const seed = crc32cJs(buf, 70_000 - 40, 70_000);
        expect(crc32c(buf, start, end)).toBe(crc32cJs(buf, start, end));
        expect(crc32c(buf, start, end, seed)).toBe(crc32cJs(buf, start, end, seed));
      }
    }
    // A chained computation over two spans equals one over both.
    const whole = crc32c(buf, 5, 60_005);
    expect(crc32c(buf, 30_005, 60_005, crc32c(buf, 5, 30_005))).toBe(whole);
    expect(whole).toBe(crc32cJs(buf, 5, 60_005));
  });
});
