import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Gate, openGated } from '../../core/dist/threads/txn-gate.js';

/**
 * @edgecap/core threads/txn-gate.ts: a thread that writes the ledger (the capture writer) is never terminated inside an
 * LMDB transaction. Without the gate, lmdb-js leaves its write lock held by the dead thread and
 * the next ledger write of the main thread blocks the process for good (found by the torture's
 * writer-kill scenario). Runs in a child process: a hang fails the test instead of freezing it.
 */
const child = fileURLToPath(new URL('./fixtures/gate-child.mjs', import.meta.url));

describe('terminating a thread that writes the ledger', () => {
  it('never lands inside a transaction: the process writes on after each of 25 random terminations', async () => {
    const p = spawn(process.execPath, [child, '25'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGECAP_LOG_LEVEL: 'error' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => p.on('exit', (c, s) => r([c, s])));
    clearTimeout(timer);
    expect({ code, signal, err: err.slice(-2000) }).toEqual({ code: 0, signal: null, err: '' });
    const m = /^ok (\d+) (\d+)/.exec(out);
    expect(Number(m?.[1])).toBe(25);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(25 * 200); // each thread really was writing when it was stopped
  }, 120_000);
});

describe('opening the ledger behind the gate', () => {
  it('holds the gate while the handle opens (a terminate() then waits: inside LMDB\'s native open it aborted the process), and gates every call after', () => {
    const word = new Int32Array(new SharedArrayBuffer(8));
    const seen: number[] = [];
    const store = openGated(
      () => {
        seen.push(Atomics.load(word, 1));
        return { put: () => seen.push(Atomics.load(word, 1)) };
      },
      word,
      1,
    );
    expect(Atomics.load(word, 1)).toBe(Gate.FREE);
    store.put();
    expect(seen).toEqual([Gate.IN_TXN, Gate.IN_TXN]);
    expect(Atomics.load(word, 1)).toBe(Gate.FREE);
  });
});
