/**
 * CRC32C (Castagnoli). Spans from NATIVE_MIN_BYTES up go to @node-rs/crc32 (SSE4.2 / ARMv8 CRC
 * instructions, a prebuilt N-API binding that loads in worker threads too): measured 3–8× our
 * slicing-by-8 from 4 KiB up on Node 22/24/26. Shorter spans (frame headers, small readings)
 * stay in JS, where the call into the addon costs more than the sum. Without the binding (a
 * platform it has no build for) everything is JS. EDGECAP_CRC32C=js forces JS (tests, A/B).
 *
 * The binding loads at the first long span, not at import: a thread of small readings (most
 * sensors) never needs it, and loading it (the napi-rs loader probes the libc, resolves the
 * platform package) cost each of 19 collectors ~2 ms at start-up, all booting on 2 cores.
 */
import { createRequire } from 'node:module';

type NativeCrc = (input: Uint8Array, initialState?: number) => number;

/** Below this many bytes the JS table is faster than the call into the addon. */
export const NATIVE_MIN_BYTES = 256;

function loadNative(): NativeCrc | undefined {
  if (process.env.EDGECAP_CRC32C === 'js') return undefined;
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c?: NativeCrc };
    return typeof mod.crc32c === 'function' ? mod.crc32c : undefined;
  } catch {
    return undefined;
  }
}

/** null: not tried yet; undefined: none (JS for every span). */
let native: NativeCrc | undefined | null = null;

function binding(): NativeCrc | undefined {
  if (native === null) native = loadNative();
  return native;
}

/** Which implementation long spans use (reported by benchmarks; loads the binding if not yet). */
export function crc32cImpl(): 'native' | 'js' {
  return binding() ? 'native' : 'js';
}

const POLY = 0x82f63b78;
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let s = 1; s < 8; s++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[s * 256 + n] = c;
  }
}

/** Continue a CRC32C over buf[start, end). Pass the previous result as `crc` to chain. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length, crc = 0): number {
  const nat = end - start >= NATIVE_MIN_BYTES ? binding() : undefined;
  if (nat) return nat(start === 0 && end === buf.length ? buf : buf.subarray(start, end), crc);
  return crc32cJs(buf, start, end, crc);
}

/** The portable table implementation (also the reference the native path is tested against). */
export function crc32cJs(buf: Uint8Array, start = 0, end = buf.length, crc = 0): number {
  let c = ~crc;
  let i = start;
  const stop8 = end - 8;
  while (i <= stop8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    c =
      T[0x700 + (a & 0xff)]! ^
      T[0x600 + ((a >>> 8) & 0xff)]! ^
      T[0x500 + ((a >>> 16) & 0xff)]! ^
      T[0x400 + (a >>> 24)]! ^
      T[0x300 + buf[i + 4]!]! ^
      T[0x200 + buf[i + 5]!]! ^
      T[0x100 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
    i += 8;
  }
  while (i < end) c = T[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
