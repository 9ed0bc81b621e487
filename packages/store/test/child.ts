import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Helpers to run fixtures/ledger-child.mjs: real processes sharing one state dir. */
export const ledgerChild = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'ledger-child.mjs');

export interface ChildOp {
  op: 'claimUpload' | 'claimDelete' | 'tryLock';
  file?: string;
  id?: string;
  lockModule?: string;
}

export interface Child {
  child: ChildProcess;
  /** The child's one report: its pid and each op's result. */
  report: Promise<{ pid: number; results: unknown[] }>;
  exited: Promise<number | null>;
  /** Close its stdin: it releases what it holds and exits 0. */
  end(): Promise<number | null>;
  /** SIGKILL it and wait until it is reaped. */
  kill(): Promise<void>;
}

export function runLedgerChild(o: { stateDir: string; runId: string; ops: ChildOp[]; at?: number; leaseMs?: number; renewMs?: number }): Child {
  const child = spawn(process.execPath, [ledgerChild, JSON.stringify(o)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, EDGECAP_LOG_LEVEL: 'error' } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const report = new Promise<{ pid: number; results: unknown[] }>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) resolve(JSON.parse(buf.slice(0, i)) as { pid: number; results: unknown[] });
    });
    void exited.then((code) => reject(new Error(`child exited (${code}) before reporting: ${err}`)));
  });
  return {
    child,
    report,
    exited,
    end: () => {
      child.stdin!.end();
      return exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
