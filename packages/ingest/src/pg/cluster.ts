/**
 * A throwaway PostgreSQL cluster for tests and benchmarks (not part of the public API):
 * initdb into a temp dir, pg_ctl start on 127.0.0.1:<free port> with the socket in the same
 * temp dir, trust auth for the `postgres` role. As root, the server binaries refuse to run,
 * so every command runs as the `postgres` OS user (`runuser -u postgres`) on a dir it owns.
 *
 *   findPgBin()          → /usr/lib/postgresql/<newest>/bin, or undefined (caller skips)
 *   startPgCluster()     → { url, port, stop() }   stop = pg_ctl stop -m immediate + rm -rf
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EdgecapError, ErrorCodes } from '@edgecap/core';

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dir: string;
  stop(): void;
}

/** The newest installed PostgreSQL server bin dir (Debian layout), or `EDGECAP_PG_BIN`. */
export function findPgBin(): string | undefined {
  const env = process.env.EDGECAP_PG_BIN;
  if (env) return fs.existsSync(path.join(env, 'initdb')) ? env : undefined;
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return undefined;
  const versions = fs
    .readdirSync(base)
    .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')) && fs.existsSync(path.join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(base, versions[0], 'bin') : undefined;
}

/** Why a cluster cannot be started here, or undefined when it can (binaries, OS user). */
export function pgUnavailableReason(): string | undefined {
  if (!findPgBin()) return 'PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); install the Debian package `postgresql` or set EDGECAP_PG_BIN';
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root but there is no `postgres` OS user to run the server as';
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface PgClusterOptions {
  /** Extra `-c name=value` server settings, e.g. { fsync: 'off' } for fast tests. */
  settings?: Record<string, string>;
}

export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  const why = pgUnavailableReason();
  if (!bin || why) throw new EdgecapError(ErrorCodes.STATE, `cannot start PostgreSQL: ${why ?? 'no binaries'}`);
  const asRoot = process.getuid?.() === 0;
  // As root the server runs as `postgres`, which must reach the dir: /tmp, not a private TMPDIR.
  const dir = fs.mkdtempSync(path.join(asRoot ? '/tmp' : os.tmpdir(), 'edgecap-pg-'));
  const data = path.join(dir, 'data');
  const sock = path.join(dir, 'sock');
  fs.mkdirSync(sock);
  const run = (cmd: string, args: string[]): void => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
    try {
      execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new EdgecapError(ErrorCodes.STATE, `${cmd} failed: ${err.stderr?.toString() || err.stdout?.toString() || err.message}`, { cause: e });
    }
  };
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const port = await freePort();
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '-N']);
    const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: sock, max_connections: '200', ...(opts.settings ?? {}) };
    const o = [`-p ${port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
    run('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', '-o', o, 'start']);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      /* already gone */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dir, stop };
}
