/**
 * Shared by the web UI tests: a real headless Chromium (Debian's `chromium`, which .ci/run
 * installs) driven by playwright-core, and a small real PNG.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Browser } from 'playwright-core';
import { REPO } from './helpers.js';

const CANDIDATES = [process.env.EDGECAP_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((x): x is string => !!x);

export const chromiumPath: string | undefined = CANDIDATES.find((p) => fs.existsSync(p));

/**
 * Why the browser tests cannot run here, or undefined. Under CI=true a missing browser is a
 * failure (thrown), never a skip: CI installs it.
 */
export function browserUnavailable(): string | undefined {
  if (chromiumPath) return undefined;
  const why = `no Chromium found (looked at ${CANDIDATES.join(', ')}); install Debian's "chromium" package (apt-get install --no-install-recommends chromium) or set EDGECAP_CHROMIUM`;
  if (process.env.CI === 'true') throw new Error(`CI: ${why}`);
  return why;
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: chromiumPath!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Where the README's screenshots go (committed). */
export function screenshotPath(name: string): string {
  const dir = path.join(REPO, 'docs/img');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A real w×h RGB PNG, a gradient shifted by `n` (so successive images differ). */
export function makePng(w: number, h: number, n = 0): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const rows: Buffer[] = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([(x * 8 + n) & 0xff, (y * 10) & 0xff, 160], 1 + x * 3);
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

export const HOSTILE = '<img src=x onerror=alert(1)>';
