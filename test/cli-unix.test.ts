/**
 * The edgecap CLI as a Unix tool (issue #15): quiet on a closed pipe, usage errors that name the
 * flag (exit 2), stdin as a capture file, honest verdicts on garbage, folders that change under
 * it, and log levels that hold. Every case spawns the built CLI as a real process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeFileStart, FrameEncoder, listFiles } from '@edgecap/format';
import { startIngestServer } from '@edgecap/ingest';
import { CLI, REPO, freePort, tmpdir, waitFor, writeJson } from './helpers.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawn `node packages/cli/bin/edgecap.js ...`. EDGECAP_LOG_LEVEL is removed unless given (a
 * level in the environment would hide what a config's log_level does). `stdin` is piped in;
 * `closeAfterFirstLine` closes our end of its stdout after the first line, as `| head -1` does.
 */
function edgecap(args: string[], o: { env?: Record<string, string>; stdin?: Uint8Array; closeAfterFirstLine?: boolean } = {}): Promise<Run & { firstLine?: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  if (!o.env?.EDGECAP_LOG_LEVEL) delete env.EDGECAP_LOG_LEVEL;
  const p = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env, stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let firstLine: string | undefined;
  p.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    const nl = stdout.indexOf('\n');
    if (o.closeAfterFirstLine && nl >= 0 && firstLine === undefined) {
      firstLine = stdout.slice(0, nl);
      p.stdout!.destroy();
    }
  });
  p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  if (o.stdin) p.stdin!.end(o.stdin);
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr, ...(firstLine !== undefined ? { firstLine } : {}) }));
  });
}

/** A capture file of `n` readings, each with `pad` bytes of text. */
function captureBytes(n: number, pad = 500): Buffer {
  const { bytes: start } = encodeFileStart({ kind: 'sensor', name: 'temp', method: 'Readings', type: 'tabular', tags: [], start_us: 1 });
  const enc = new FrameEncoder();
  const parts = [Buffer.from(start)];
  for (let i = 0; i < n; i++) parts.push(Buffer.from(enc.readingFrame(i, 1_000 + i, 2_000 + i, { i, pad: 'x'.repeat(pad) })));
  return Buffer.concat(parts);
}

const oneLine = (s: string): void => expect(s.trim().split('\n'), s).toHaveLength(1);

describe('edgecap CLI as a Unix tool', () => {
  it('inspect --json | head -1 and export | head -1 stop quietly with exit 0', async () => {
    const root = tmpdir('unix-epipe');
    const dir = path.join(root, 'capture');
    fs.mkdirSync(dir);
    // megabytes of output: far more than a pipe holds, so the writer meets the closed pipe
    for (let f = 0; f < 4; f++) fs.writeFileSync(path.join(dir, `f${f}.capture`), captureBytes(2000));
    const r = await edgecap(['inspect', dir, '--json'], { closeAfterFirstLine: true });
    expect(JSON.parse(r.firstLine!)).toMatchObject({ seq: 0, resource: 'temp' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    // export: readings received by a real ingest server, from a DataManager that pushed them
    const ingest = path.join(root, 'ingest');
    const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: ingest, insecure: true, apiKeys: ['k'] });
    try {
      const { DataManager } = await import('@edgecap/datamanager');
      const dm = new DataManager({
        capture_dir: path.join(root, 'edge'),
        sync_interval_mins: 60,
        ingest: { address: server.address, insecure: true, api_key: 'k' },
        resources: [{ name: 'big', model: 'sim:sensor', capture_methods: [{ method: 'Event', capture_frequency_hz: 0 }] }],
      });
      await dm.start();
      for (let i = 0; i < 3000; ) {
        if (dm.push('big', 'Event', { i, pad: 'y'.repeat(2000) })) i++;
        else await new Promise((res) => setTimeout(res, 5)); // ring full: let the writer catch up
      }
      await dm.stopCapture();
      await waitFor('everything synced', async () => {
        const s = await dm.sync();
        return s.uploaded + s.alreadyHad === 0 && s.deferred === 0 && s.errors.length === 0 && listFiles(path.join(root, 'edge'), '.capture').length === 0;
      });
      await dm.stop();
    } finally {
      await server.close();
    }
    const all = await edgecap(['export', '--data', ingest]);
    expect(all.code).toBe(0);
    expect(all.stdout.length).toBeGreaterThan(4_000_000);
    const e = await edgecap(['export', '--data', ingest], { closeAfterFirstLine: true });
    expect(JSON.parse(e.firstLine!)).toMatchObject({ resource: 'big', method: 'Event' });
    expect(e.stderr).toBe('');
    expect(e.code).toBe(0);
  });

  it('an unknown option is a usage error naming it, for every command (exit 2)', async () => {
    const help = await edgecap(['--help']);
    expect(help.code).toBe(0);
    const commands = [...help.stdout.split('Commands:')[1]!.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['run', 'ingest', 'keys', 'export', 'inspect', 'status', 'sync', 'demo', 'certs']));
    const keysHelp = await edgecap(['keys', '--help']);
    const keys = [...keysHelp.stdout.split('Commands:')[1]!.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(keys).toEqual(expect.arrayContaining(['create', 'list', 'revoke']));
    const invocations = [...commands.filter((c) => c !== 'keys').map((c) => [c]), ...keys.map((k) => ['keys', k])];
    for (const cmd of invocations) {
      // no required option given either: the typo must still be what is reported
      const r = await edgecap([...cmd, '--bogus-flag', 'x']);
      expect(r.code, cmd.join(' ')).toBe(2);
      expect(r.stderr, cmd.join(' ')).toMatch(/^edgecap: unknown option '--bogus-flag'/);
      oneLine(r.stderr);
    }
    const typo = await edgecap(['run', '--confg', 'x.json']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/unknown option '--confg'.*did you mean --config\?/i);
    oneLine(typo.stderr);
    // and a missing required option is still reported as such
    const missing = await edgecap(['run']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/required option '-c, --config <file>' not specified/);
  });

  it('bad values: --log-level, --listen and every number flag are usage errors naming the flag (exit 2)', async () => {
    const cases: [string[], RegExp, Record<string, string>?][] = [
      [['--log-level', 'loud', 'status', '/tmp'], /--log-level.*'loud'.*fatal, error, warn, info, debug, trace, silent/],
      [['status', '/tmp'], /--log-level.*'loud'.*EDGECAP_LOG_LEVEL.*fatal, error, warn, info, debug, trace, silent/, { EDGECAP_LOG_LEVEL: 'loud' }],
      [['ingest', '--listen', 'nonsense', '--data', '/tmp/x', '--insecure'], /--listen: .*"nonsense" must be HOST:PORT/],
      [['demo', '--seconds', 'abc'], /--seconds.*'abc'.*integer >= 1/],
      [['demo', '--seconds', '-1'], /--seconds.*'-1'.*integer >= 1/],
      [['demo', '--seconds', ''], /--seconds.*''.*integer >= 1/],
      [['ingest', '--listen', '127.0.0.1:0', '--pg-pool-size', 'many'], /--pg-pool-size.*'many'/],
      [['ingest', '--listen', '127.0.0.1:0', '--token-ttl', '0'], /--token-ttl.*'0'/],
      [['run', '-c', 'x.json', '--metrics', '99999'], /--metrics.*'99999'.*0 to 65535/],
      [['run', '-c', 'x.json', '--http', 'localhost:http'], /--http.*'localhost:http'/],
      [['ingest', '--listen', '127.0.0.1:0', '--ui', ':8080'], /--ui.*':8080'/],
      // nothing listens beyond loopback in plain text (refused before anything starts)
      [['run', '-c', 'x.json', '--http', '0.0.0.0:0'], /--http-tls-cert: --http 0.0.0.0:0 is beyond loopback/],
      [['run', '-c', 'x.json', '--metrics', '0.0.0.0:9100'], /--http-tls-cert: --metrics 0.0.0.0:9100 is beyond loopback/],
      [['run', '-c', 'x.json', '--http-tls-cert', 'c.pem', '--http', '127.0.0.1:0'], /--http-tls-key: give both/],
      [['ingest', '--listen', '127.0.0.1:0', '--insecure', '--data', '/tmp/x', '--ui', '0.0.0.0:0'], /--ui: 0.0.0.0:0 is beyond loopback: the data browser needs TLS/],
    ];
    for (const [args, msg, env] of cases) {
      const r = await edgecap(args, env ? { env } : {});
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(msg);
      oneLine(r.stderr);
    }
  });

  it('status DIR works on a capture folder; --config still works; wrong uses are exit 2', async () => {
    const root = tmpdir('unix-status');
    const capture = path.join(root, 'capture');
    const { DataManager } = await import('@edgecap/datamanager');
    const dm = new DataManager({ capture_dir: capture, maximum_capture_file_age_ms: 200, resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] }] });
    await dm.start();
    await waitFor('a finished file', () => listFiles(capture, '.capture').length > 0);
    await dm.stop();
    const byDir = await edgecap(['status', capture]);
    expect(byDir.code, byDir.stderr).toBe(0);
    expect(byDir.stdout).toMatch(/sensor\/temp\/Readings/);
    expect(byDir.stdout).toMatch(/next seq/);
    const config = writeJson(path.join(root, 'edgecap.json'), { capture_dir: capture });
    const byConfig = await edgecap(['status', '--config', config]);
    expect(byConfig.code).toBe(0);
    expect(byConfig.stdout).toBe(byDir.stdout);
    // a folder edgecap never ran in: said so, and no state is created there
    const plain = tmpdir('unix-status-plain');
    const p = await edgecap(['status', plain]);
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/no edgecap state/);
    expect(fs.readdirSync(plain)).toEqual([]);
    for (const args of [['status'], ['status', capture, '--config', config], ['status', path.join(root, 'missing')]]) {
      const r = await edgecap(args);
      expect(r.code, args.join(' ')).toBe(2);
      oneLine(r.stderr);
    }
  });

  it('inspect - and inspect /dev/stdin read a capture file from a pipe', async () => {
    const bytes = captureBytes(25, 10);
    for (const arg of ['-', '/dev/stdin']) {
      const r = await edgecap(['inspect', arg, '--json'], { stdin: bytes });
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; resource: string });
      expect(lines.map((l) => l.seq)).toEqual([...Array(25).keys()]);
      expect(lines[0]!.resource).toBe('temp');
      const table = await edgecap(['inspect', arg], { stdin: bytes });
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/sensor\/temp\/Readings\s+tabular\s+25\s+0\.\.24/);
    }
    const garbage = await edgecap(['inspect', '-'], { stdin: Buffer.from('0123456789abcdef') });
    expect(garbage.code).toBe(3);
    expect(garbage.stderr).toMatch(/^<stdin>: corrupt .*not a capture file/m);
  });

  it('garbage, an empty file and a file cut inside the magic are reported as such, with the file name (exit 3)', async () => {
    const root = tmpdir('unix-garbage');
    const cases: [string, Buffer, RegExp][] = [
      ['garbage.bin', Buffer.from([0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x42]), /garbage\.bin: corrupt at offset 0 \(8 bytes\): not a capture file/],
      ['empty.capture', Buffer.alloc(0), /empty\.capture: truncated at offset 0 \(0 bytes\): empty file \(0 bytes\)/],
      ['cut.capture', captureBytes(1).subarray(0, 5), /cut\.capture: truncated at offset 0 \(5 bytes\): cut short: 5 bytes, inside the 8-byte edgecap file magic/],
    ];
    for (const [name, bytes, msg] of cases) {
      const file = path.join(root, name);
      fs.writeFileSync(file, bytes);
      const r = await edgecap(['inspect', file]);
      expect(r.code, name).toBe(3);
      expect(r.stderr, name).toMatch(msg);
      if (bytes.length > 0) expect(r.stderr, name).not.toMatch(/empty file/);
    }
  });

  it('inspect of a folder whose files are renamed while it reads skips or follows them (exit 0)', async () => {
    const root = tmpdir('unix-rename');
    const dir = path.join(root, 'sensor', 'temp', 'Readings');
    fs.mkdirSync(dir, { recursive: true });
    const N = 150;
    const one = captureBytes(5, 10);
    let gen = 0;
    const newProg = (): string => {
      const base = path.join(dir, `f${String(gen++).padStart(6, '0')}`);
      fs.writeFileSync(`${base}.prog`, one);
      return base;
    };
    // As a live capture does: the writer renames .prog → .capture when a file closes and starts
    // a new .prog; sync deletes finished files once uploaded. Names are never reused.
    // Finished files waiting for sync in another stream: never touched, so however slow inspect
    // is next to the churn, it has these to print (all 5 readings of each).
    const stable = path.join(root, 'sensor', 'other', 'Readings');
    fs.mkdirSync(stable, { recursive: true });
    for (let k = 0; k < 10; k++) fs.writeFileSync(path.join(stable, `s${k}.capture`), one);
    const prog = [...Array(N).keys()].map(() => newProg());
    const finished: string[] = [];
    let stop = false;
    let renames = 0;
    const churn = (async () => {
      while (!stop) {
        for (let k = 0; k < 20; k++) {
          const base = prog.shift()!;
          fs.renameSync(`${base}.prog`, `${base}.capture`);
          renames++;
          finished.push(base);
          if (finished.length > N) fs.rmSync(`${finished.shift()!}.capture`);
          prog.push(newProg());
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      for (let i = 0; i < 4; i++) {
        const before = renames;
        const r = await edgecap(['inspect', root, '--json']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(renames - before, 'files were renamed while inspect ran').toBeGreaterThan(N);
        expect(r.stdout.split('\n').filter((l) => l.includes(`${path.sep}other${path.sep}`)).length).toBe(10 * 5);
        // every reading printed once per file at most, and each from a complete file
        const seen = new Map<string, number>();
        for (const l of r.stdout.trim().split('\n')) {
          const j = JSON.parse(l) as { file: string; seq: number };
          const base = j.file.replace(/\.(prog|capture)$/, '');
          seen.set(base, (seen.get(base) ?? 0) + 1);
        }
        for (const [f, n] of seen) expect(n, f).toBe(5);
      }
    } finally {
      stop = true;
      await churn;
    }
  });

  describe("a config's log_level is honoured; --log-level given explicitly wins", () => {
    /** A resource whose method always throws (the collector logs a warn) and counts its calls. */
    function failingSetup(level: string): { config: string; marks: string } {
      const root = tmpdir('unix-loglevel');
      const marks = path.join(root, 'calls');
      fs.writeFileSync(
        path.join(root, 'failing.js'),
        'import fs from "node:fs";\nexport default (ctx) => ({ kind: "sensor", Readings: () => { fs.appendFileSync(ctx.attributes.marks, "x"); throw new Error("sensor unplugged"); } });\n',
      );
      const config = writeJson(path.join(root, 'edgecap.json'), {
        capture_dir: path.join(root, 'capture'),
        log_level: level,
        resources: [{ name: 'flaky', module: './failing.js', attributes: { marks }, capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] }],
      });
      return { config, marks };
    }

    /** `edgecap run` until the failing method has been called a few times (or `until` is on stderr), then SIGTERM. */
    async function runUntil(args: string[], marks: string, until?: RegExp): Promise<Run> {
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env.EDGECAP_LOG_LEVEL;
      const p = spawn(process.execPath, [CLI, 'run', ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const closed = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
      // a failed call is logged (or not) right after it counts itself, in the same turn
      await waitFor('failing calls', () => (fs.existsSync(marks) && fs.readFileSync(marks, 'utf8').length >= 3) || p.exitCode !== null, 60_000);
      if (until) await waitFor(`${until} on stderr`, () => until.test(stderr) || p.exitCode !== null, 60_000);
      p.kill('SIGTERM');
      const code = await closed;
      return { code, stdout, stderr };
    }

    it('run: "silent" prints no log line; "warn" prints the warning; --log-level warn beats "silent"', async () => {
      const quiet = failingSetup('silent');
      const q = await runUntil(['--config', quiet.config], quiet.marks);
      expect(q.code, q.stderr).toBe(0);
      expect(q.stderr).not.toMatch(/"level":/);
      expect(q.stderr).toMatch(/stopped; /); // the run's own summary is not a log line

      const loud = failingSetup('warn');
      const l = await runUntil(['--config', loud.config], loud.marks, /capture method failed/);
      expect(l.code).toBe(0);
      expect(l.stderr).toMatch(/"level":40.*capture method failed/);
      expect(l.stderr).not.toMatch(/"level":30/);

      const flag = failingSetup('silent');
      const f = await runUntil(['--config', flag.config, '--log-level', 'warn'], flag.marks, /capture method failed/);
      expect(f.code).toBe(0);
      expect(f.stderr).toMatch(/"level":40.*capture method failed/);
    });

    it('sync: "silent" keeps stderr empty; "warn" shows the unreachable server; EDGECAP_LOG_LEVEL beats the config', async () => {
      const root = tmpdir('unix-loglevel-sync');
      const port = await freePort(); // nothing listens there
      const cfg = (level: string): string =>
        writeJson(path.join(root, `${level}.json`), { capture_dir: path.join(root, 'capture'), log_level: level, ingest: { address: `127.0.0.1:${port}`, insecure: true, api_key: 'k' } });
      const silent = await edgecap(['sync', '-c', cfg('silent')]);
      expect(silent.code).toBe(1);
      expect(JSON.parse(silent.stdout)).toMatchObject({ errors: [expect.stringMatching(/unreachable/)] });
      expect(silent.stderr).toBe('');
      const warn = await edgecap(['sync', '-c', cfg('warn')]);
      expect(warn.code).toBe(1);
      expect(warn.stderr).toMatch(/"level":40.*ingest server unreachable/);
      const env = await edgecap(['sync', '-c', cfg('silent')], { env: { EDGECAP_LOG_LEVEL: 'warn' } });
      expect(env.stderr).toMatch(/"level":40.*ingest server unreachable/);
    });

    it('an embedder: DataManager applies log_level to the logger it did not get from the app', async () => {
      const { config, marks } = failingSetup('silent');
      const script = (level: string): string => `
        import fs from 'node:fs';
        import { DataManager } from ${JSON.stringify(pathToFileURL(createRequire(path.join(REPO, 'package.json')).resolve('@edgecap/datamanager')).href)};
        const marks = ${JSON.stringify(marks)};
        fs.rmSync(marks, { force: true });
        const cfg = JSON.parse(fs.readFileSync(${JSON.stringify(config)}, 'utf8'));
        const dm = new DataManager({ ...cfg, log_level: ${JSON.stringify(level)} }, { baseDir: ${JSON.stringify(path.dirname(config))} });
        await dm.start();
        const end = Date.now() + 60000;
        while ((!fs.existsSync(marks) || fs.readFileSync(marks, 'utf8').length < 3) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        await dm.stop();
      `;
      for (const [level, expectWarn] of [['silent', false], ['warn', true]] as const) {
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.EDGECAP_LOG_LEVEL;
        // a file, not --input-type -e: worker threads inherit execArgv
        const file = path.join(path.dirname(config), `embed-${level}.mjs`);
        fs.writeFileSync(file, script(level));
        const p = spawn(process.execPath, [file], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const code = await new Promise<number | null>((r) => p.on('close', r));
        expect(code, stderr).toBe(0);
        if (expectWarn) expect(stderr).toMatch(/"level":40.*capture method failed/);
        else expect(stderr).toBe('');
      }
    });
  });
});
