import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * A ledger on a full filesystem (a real 1 MiB tmpfs, filled to the last byte). Needs root
 * (mount); otherwise skipped with the reason. Each open runs in a process of its own: lmdb-js
 * killed the process (SIGBUS, SIGSEGV) when it created a ledger there.
 */
const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'open-store.mjs');
let mnt = '';
let skipReason: string | undefined;

beforeAll(() => {
  mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'store-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    skipReason = `cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}`;
  }
});

afterAll(() => {
  if (!skipReason) execFileSync('umount', [mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

function openIn(dir: string): { status: number | null; signal: NodeJS.Signals | null; out: Record<string, unknown> } {
  const r = spawnSync(process.execPath, [fixture, dir], { encoding: 'utf8', env: { ...process.env, EDGECAP_LOG_LEVEL: 'error' } });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return { status: r.status, signal: r.signal, out: line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : { stdout: r.stdout, stderr: r.stderr } };
}

/** Fill the filesystem to the last byte; returns a function that frees it again. */
function fill(): () => void {
  const ballast = path.join(mnt, 'ballast');
  const fd = fs.openSync(ballast, 'w');
  try {
    const block = Buffer.alloc(64 * 1024);
    for (;;) fs.writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
  // the last partial block too
  try {
    fs.appendFileSync(ballast, Buffer.alloc(4096));
    for (;;) fs.appendFileSync(ballast, Buffer.alloc(1));
  } catch {
    // full
  }
  return () => fs.rmSync(ballast, { force: true });
}

describe('a ledger on a full disk', () => {
  it('a new ledger on a full filesystem is an error naming the state dir; the process lives, and the ledger opens once there is space', (ctx) => {
    if (skipReason) return ctx.skip(skipReason);
    const dir = path.join(mnt, 'capture', '.edgecap');
    fs.mkdirSync(dir, { recursive: true });
    let free = fill();
    try {
      const r = openIn(dir);
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expect(r.out.code).toBe('EDGECAP_ERR_STATE');
      expect(String(r.out.message)).toContain(dir);
      expect(String(r.out.message)).toContain('ENOSPC');
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('.space-probe'))).toEqual([]);
      free();
      free = () => undefined;
      expect(openIn(dir).out).toEqual({ opened: true });
    } finally {
      free();
      fs.rmSync(path.join(mnt, 'capture'), { recursive: true, force: true });
    }
  });

  it('an existing ledger still opens on a full filesystem (the capture writer opens it there)', (ctx) => {
    if (skipReason) return ctx.skip(skipReason);
    const dir = path.join(mnt, 'capture2', '.edgecap');
    expect(openIn(dir).out).toEqual({ opened: true });
    const free = fill();
    try {
      const r = openIn(dir);
      expect(r.signal).toBeNull();
      expect(r.out).toEqual({ opened: true });
    } finally {
      free();
      fs.rmSync(path.join(mnt, 'capture2'), { recursive: true, force: true });
    }
  });
});
