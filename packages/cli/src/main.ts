import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS, setRootLogger } from '@edgecap/core';
import type { IngestCliOptions } from './ingest.js';
import { pino, type LevelWithSilent } from 'pino';
import { describeError, guardStdout, hostPortArg, numberArg, onceSignal, OutputClosedError, StdoutWriter, UsageError, userPath, Exit } from './util.js';

/**
 * Required options, checked in preAction. Commander checks requiredOption() before unknown
 * options, so `run --confg x.json` would blame the missing --config instead of naming the typo.
 */
const mustGive = new WeakSet<Option>();
function required(o: Option): Option {
  mustGive.add(o);
  o.description += ' (required)';
  return o;
}

/** The `edgecap` command. Returns the exit code; errors are one line unless --verbose. */
export async function main(argv: string[]): Promise<number> {
  let code: number = Exit.OK;
  // Before any output (help goes to stdout too): a reader that goes away is not a crash.
  guardStdout();
  const out = new StdoutWriter();
  const program = new Command('edgecap')
    .description('capture readings on an edge machine and sync them to an ingest server')
    .version((JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version)
    .option('--verbose', 'full error stacks and debug logs')
    .addOption(new Option('--log-level <level>', 'log level (run, sync, status: default the config\'s log_level)').choices(LOG_LEVELS).env('EDGECAP_LOG_LEVEL').default('info'))
    .exitOverride()
    // commander's own errors (unknown option, bad value) look like ours: one line, `edgecap: ...`
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(s.replace(/^error: /, 'edgecap: ').replace(/\n(?!$)/g, ' ')) })
    .hook('preAction', (cmd, action) => {
      for (const opt of action.options) {
        if (mustGive.has(opt) && action.getOptionValue(opt.attributeName()) === undefined) {
          action.error(`error: required option '${opt.flags}' not specified`, { exitCode: Exit.USAGE, code: 'commander.missingMandatoryOptionValue' });
        }
      }
      const o = cmd.opts<{ verbose?: boolean; logLevel: LevelWithSilent }>();
      // --verbose, --log-level or EDGECAP_LOG_LEVEL win over a config's log_level; the default does not
      const src = cmd.getOptionValueSource('logLevel');
      const chosen = o.verbose === true || src === 'cli' || src === 'env';
      setRootLogger(pino({ level: o.verbose ? 'debug' : o.logLevel, base: undefined }, pino.destination({ fd: 2, sync: true })), { levelChosen: chosen });
    });

  program
    .command('run')
    .description('capture and sync as configured, until Ctrl-C/SIGTERM')
    .addOption(required(new Option('-c, --config <file>', 'JSON config file')))
    .option('--metrics <[host:]port>', 'serve Prometheus metrics at /metrics', hostPortArg)
    .option('--http <[host:]port>', 'serve the live status page (and /metrics, /healthz); loopback unless a host is given', hostPortArg)
    .option('--http-token <token>', 'token for the status page controls (default $EDGECAP_HTTP_TOKEN, else a random one printed at start)')
    .option('--http-tls-cert <file>', 'serve --http and --metrics over HTTPS with this certificate (PEM); required beyond loopback')
    .option('--http-tls-key <file>', 'the private key (PEM) of --http-tls-cert')
    .action(async (o: { config: string; metrics?: string; http?: string; httpToken?: string; httpTlsCert?: string; httpTlsKey?: string }) => {
      if (Boolean(o.httpTlsCert) !== Boolean(o.httpTlsKey)) throw new UsageError(o.httpTlsCert ? '--http-tls-key' : '--http-tls-cert', 'give both --http-tls-cert and --http-tls-key');
      // Listen before the heavy imports: a SIGTERM during start-up still stops cleanly.
      const stop = onceSignal(['SIGINT', 'SIGTERM']);
      const { run } = await import('./run.js');
      const tls = o.httpTlsCert && o.httpTlsKey ? { certFile: userPath(o.httpTlsCert), keyFile: userPath(o.httpTlsKey) } : undefined;
      code = await run(userPath(o.config), { ...o, ...(tls ? { tls } : {}) }, stop, process.stderr);
    });

  program
    .command('ingest')
    .description('run the ingest server (the receiving end of sync)')
    .addOption(required(new Option('--listen <host:port>', 'address to listen on')))
    .option('--data <dir>', 'storage folder (with postgres: scratch space for uploads in progress)')
    .addOption(new Option('--storage <kind>', 'storage backend').choices(['files', 'postgres']).default('files'))
    .option('--pg-url <url>', 'PostgreSQL connection URL (storage postgres; default $EDGECAP_PG_URL)')
    .option('--pg-pool-size <n>', 'PostgreSQL pool size per node', numberArg({ integer: true, min: 1 }))
    .option('--tls-cert <file>', 'TLS certificate (PEM)')
    .option('--tls-key <file>', 'TLS private key (PEM)')
    .option('--api-key <key>', 'fleet key: may act as any part (repeatable, or comma-separated; default $EDGECAP_API_KEY). Device keys: `edgecap keys`', (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter(Boolean)])
    .option('--token-ttl <seconds>', 'lifetime of access tokens issued by the viam AuthService (default 3600)', numberArg({ min: 1 }))
    .option('--limit <name=value>', 'a resource limit, e.g. maxConcurrentUploads=512 (repeatable; see docs/security.md)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--insecure', 'plain text; only allowed on a loopback address')
    .option('--ui <[host:]port>', 'serve the web data browser on its own port (off by default; loopback unless a host is given)', hostPortArg)
    .option('--ui-token <token>', 'admin token of the web UI (default $EDGECAP_UI_TOKEN, else a random one printed at start)')
    .action(async (o: IngestCliOptions) => {
      const { serveIngest } = await import('./ingest.js');
      code = await serveIngest(o);
    });

  const keys = program.command('keys').description('per-device API keys of an ingest store (each key acts only as its own part)');
  for (const [action, args, desc] of [
    ['create', '', 'create a key for --part (prints the secret once)'],
    ['list', '', 'list keys (ids, parts, state; never secrets)'],
    ['revoke', '<key-id>', 'revoke a key (a running ingest refuses it within seconds)'],
  ] as const) {
    const c = keys
      .command(`${action}${args ? ` ${args}` : ''}`)
      .description(desc)
      .option('--data <dir>', 'ingest storage folder (embedded storage)')
      .option('--pg-url <url>', 'ingest PostgreSQL database (default $EDGECAP_PG_URL)')
      .option('--json', 'JSON output');
    if (action === 'create') c.addOption(required(new Option('--part <part-id>', 'the part (machine) the key may act as')));
    c.action(async (...a: unknown[]) => {
      const o = (action === 'revoke' ? a[1] : a[0]) as { data?: string; pgUrl?: string; json?: boolean; part?: string };
      const { keysCmd } = await import('./keys.js');
      code = await keysCmd(action, action === 'revoke' ? (a[0] as string) : o.part, o, out);
    });
  }

  program
    .command('export')
    .description('print what the ingest server received: one JSON object per reading')
    .option('--data <dir>', 'ingest storage folder (embedded storage)')
    .option('--pg-url <url>', 'read from an ingest PostgreSQL database instead')
    .option('--files', 'list received files instead of readings')
    .option('--gaps', 'completeness report: seq ranges received and every gap, explained or not')
    .action(async (o: { data?: string; pgUrl?: string; files?: boolean; gaps?: boolean }) => {
      const { exportCmd } = await import('./ingest.js');
      const target = o.pgUrl ? { pgUrl: o.pgUrl } : o.data ? userPath(o.data) : undefined;
      if (!target) throw new UsageError('--data', 'give --data DIR or --pg-url URL');
      code = await exportCmd(target, o, out);
    });

  program
    .command('inspect')
    .description('decode a capture file or folder; exits non-zero on corruption')
    .argument('<path>', 'capture file or folder; - reads one capture file from stdin')
    .option('--json', 'one JSON object per reading instead of a summary table')
    .action(async (p: string, o: { json?: boolean }) => {
      const { inspect } = await import('./inspect.js');
      code = await inspect(p === '-' ? '-' : userPath(p), o, out, process.stderr);
    });

  program
    .command('status')
    .description('what is on disk, what is pending, the sync checkpoints')
    .argument('[dir]', 'a capture folder (its state in DIR/.edgecap), instead of --config')
    .option('-c, --config <file>', 'JSON config file')
    .action(async (dir: string | undefined, o: { config?: string }) => {
      if (dir !== undefined && o.config !== undefined) throw new UsageError('--config', 'give a capture folder or --config FILE, not both');
      if (dir === undefined && o.config === undefined) throw new UsageError('--config', 'give a capture folder (edgecap status DIR) or --config FILE');
      const { status } = await import('./status.js');
      code = await status(dir !== undefined ? { captureDir: userPath(dir) } : { configFile: userPath(o.config!) }, out);
    });

  program
    .command('sync')
    .description('sync once now (capture not started) and exit')
    .addOption(required(new Option('-c, --config <file>', 'JSON config file')))
    .option('--retry-failed', 'first move the files in <state_dir>/failed/ back, to be uploaded again')
    .action(async (o: { config: string; retryFailed?: boolean }) => {
      const { DataManager } = await import('@edgecap/datamanager');
      const dm = DataManager.fromFile(userPath(o.config));
      const cfg = dm.currentConfig;
      const once = new DataManager({ ...cfg, capture_disabled: true, sync_disabled: true }, {});
      await once.start();
      try {
        const r = await once.sync({ retryFailed: o.retryFailed === true });
        // Files left behind because the server was unreachable or refused us are a failure too.
        // (Set before printing: a closed stdout must not turn a failed sync into exit 0.)
        code = r.failed || r.errors.length || r.retried?.errors.length ? Exit.FAILURE : Exit.OK;
        out.write(JSON.stringify(r) + '\n');
      } finally {
        await once.stop();
      }
    });

  program
    .command('demo')
    .description('the main job: embedded ingest + simulated resources, then a captured-vs-synced check')
    .addOption(new Option('--seconds <n>', 'how long to capture').default(10).argParser(numberArg({ integer: true, min: 1 })))
    .option('--dir <dir>', 'keep all data in this folder')
    .option('--keep', 'keep the temporary folder')
    .action(async (o: { seconds: number; dir?: string; keep?: boolean }) => {
      const { demo } = await import('./demo.js');
      code = await demo({ ...o, ...(o.dir ? { dir: userPath(o.dir) } : {}) }, process.stdout);
    });

  program
    .command('certs')
    .description('make a self-signed TLS pair for development')
    .addOption(required(new Option('--out <dir>', 'folder for cert.pem, key.pem')))
    .option('--host <name...>', 'host names / IPs the cert is valid for', ['localhost', '127.0.0.1'])
    .action(async (o: { out: string; host: string[] }) => {
      const { makeDevCert } = await import('@edgecap/ingest');
      const r = makeDevCert(userPath(o.out), o.host);
      out.write(JSON.stringify(r) + '\n');
    });

  const verbose = argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    // The reader of stdout left: stop quietly, with what the command had decided so far.
    if (e instanceof OutputClosedError) return code;
    const d = describeError(e, verbose);
    process.stderr.write(d.text + '\n');
    return d.code;
  }
  return code;
}
