/**
 * Shared fixtures for cross-package and fault tests: real processes (the `edgecap` CLI),
 * real sockets, real files. Nothing here fakes a component.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(REPO, 'packages/cli/bin/edgecap.js');

export function tmpdir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `edgecap-${prefix}-`));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Child {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, EDGECAP_LOG_LEVEL: process.env.EDGECAP_LOG_LEVEL ?? 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => stdout.push(l));
  readline.createInterface({ input: proc.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, stdout, stderr, exited };
}

/** Run the CLI to completion. */
export async function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = runCli(args, opts);
  // A command that never ends is a finding: fail with its last words instead of hanging the test.
  let timer: NodeJS.Timeout | undefined;
  const end = await Promise.race([c.exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), opts.timeoutMs ?? 120_000)))]);
  clearTimeout(timer);
  if (!end) {
    c.proc.kill('SIGKILL');
    throw new Error(`edgecap ${args.join(' ')} did not end within ${(opts.timeoutMs ?? 120_000) / 1000} s:\n${c.stderr.slice(-30).join('\n')}`);
  }
  const { code } = end;
  await new Promise((r) => setImmediate(r));
  return { code, stdout: c.stdout.join('\n'), stderr: c.stderr.join('\n') };
}

export interface IngestProc extends Child {
  address: string;
}

/** Start `edgecap ingest` as a child and wait for its "listening" line. */
export async function startIngestProcess(o: { data: string; port: number; tls?: { certFile: string; keyFile: string }; apiKey: string; args?: string[] }): Promise<IngestProc> {
  const args = ['ingest', '--listen', `127.0.0.1:${o.port}`, '--data', o.data, '--api-key', o.apiKey, ...(o.args ?? [])];
  if (o.tls) args.push('--tls-cert', o.tls.certFile, '--tls-key', o.tls.keyFile);
  else args.push('--insecure');
  const c = runCli(args);
  const line = await waitFor('ingest to listen', () => c.stdout.find((l) => l.startsWith('listening ')) ?? (c.proc.exitCode !== null ? Promise.reject(new Error(`ingest exited: ${c.stderr.join('\n')}`)) : undefined), 20_000);
  return { ...c, address: line.slice('listening '.length) };
}

export function writeJson(file: string, value: unknown): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
}

export function sigkill(c: Child): Promise<unknown> {
  c.proc.kill('SIGKILL');
  return c.exited;
}
