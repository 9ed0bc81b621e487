import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BUILTIN_MODEL_NAMES, ConfigError, DEFAULT_CAPTURE_DIR, DEFAULTS, defaultSyncThreads, isLoopback } from '@edgecap/core';
import type { ZodParts } from './zod-parts.js';

/**
 * The config contract (Viam-style snake_case). Every key, its default and its meaning is in
 * the README's config table; keep the two in step. Objects are strict: an unknown key is an
 * error, because a misspelt key silently ignored is a field outage waiting to happen.
 *
 * zod is required (synchronously) the first time a config is validated, not when this package
 * is imported, so `new DataManager(bad)` still throws ConfigError at once while
 * `import('@edgecap/datamanager')` stays cheap. What is required is the build's one-file bundle
 * of the parts the schema uses (zod-parts.ts): ~8 ms against ~50 ms for zod's ~95 modules.
 */
const requireCjs = createRequire(import.meta.url);

/** The bundle beside this file (dist/, and the edgecap package); run from sources (tests), zod itself. */
function loadZod(): ZodParts {
  try {
    return (requireCjs('./zod-parts.cjs') as { z: ZodParts }).z;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !import.meta.url.endsWith('.ts')) throw e;
    return (requireCjs('zod') as typeof import('zod')).z;
  }
}

function buildSchema(z: ZodParts) {
  const segment = z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.\-]*$/, 'may only contain letters, digits, _ . - and may not start with .')
    .refine((s) => !s.includes('..'), 'may not contain ..');

  const captureMethod = z.strictObject({
    method: segment,
    capture_frequency_hz: z.number().finite().nonnegative(),
    additional_params: z.record(z.string(), z.unknown()).optional(),
    disabled: z.boolean().default(false),
    /** Ring size in bytes for this method's resource (the largest value of its methods wins). */
    capture_queue_size: z.number().int().min(4096).max(1 << 30).optional(),
  });

  const resource = z
    .strictObject({
      name: segment,
      model: z.enum(BUILTIN_MODEL_NAMES).optional(),
      module: z.string().min(1).optional(),
      export: z.string().min(1).optional(),
      kind: segment.optional(),
      attributes: z.record(z.string(), z.unknown()).optional(),
      capture_methods: z.array(captureMethod).default([]),
      /**
       * "thread" (default): a collector thread of its own, isolated from every other resource.
       * "shared": one collector thread for every resource that says so (~1 MB each, its ring, instead of
       * ~10): for fleets of slow sensors; they are not isolated from each other.
       */
      collector: z.enum(['thread', 'shared']).default('thread'),
      /** V8 heap limit of this resource's own collector thread, MB (default 512); beyond it the collector is restarted. */
      collector_heap_mb: z.number().int().min(16).max(65_536).optional(),
    })
    .refine((r) => !(r.model && r.module), { message: 'set either "model" or "module", not both', path: ['module'] })
    .refine((r) => !(r.collector === 'shared' && r.collector_heap_mb !== undefined), {
      message: 'applies to a collector thread of its own; resources with collector "shared" run under the shared thread\'s limit',
      path: ['collector_heap_mb'],
    });

  const ingest = z.strictObject({
    /** host:port, or several for fail-over. */
    address: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    insecure: z.boolean().default(false),
    ca_file: z.string().optional(),
    api_key: z.string().optional(),
    /** viam protocol: the API key's id; the key is then exchanged for an access token first. */
    api_key_id: z.string().min(1).optional(),
    server_name: z.string().optional(),
    /** `viam`: speak viam.app.datasync.v1 to a viam-compatible endpoint instead of edgecap.sync.v1. */
    protocol: z.enum(['edgecap', 'viam']).default('edgecap'),
  }).refine((i) => i.api_key_id === undefined || i.protocol === 'viam', { message: 'api_key_id is used only with protocol "viam"', path: ['api_key_id'] });

  const mongo = z.strictObject({
    uri: z.string().min(1),
    database: z.string().min(1).default('edgecap'),
    collection: z.string().min(1).default('readings'),
  });

  const fraction = z.number().gt(0).max(1);

  const configSchema = z
    .strictObject({
      capture_dir: z.string().min(1).default(DEFAULT_CAPTURE_DIR),
      /** "memory": sealed capture files are held in memory until synced; nothing is written under capture_dir (docs/memory-mode.md). */
      storage: z.enum(['disk', 'memory']).default('disk'),
      /** Memory mode: bytes of capture files (sealed and open) held at most. */
      memory_budget_bytes: z.number().int().min(256 * 1024).default(32 * 1024 * 1024),
      /** Memory mode, budget full: which unsynced file is dropped (its seq range a memory_full gap). */
      memory_full_policy: z.enum(['drop_oldest', 'drop_newest']).default('drop_oldest'),
      state_dir: z.string().min(1).optional(),
      part_id: z.string().min(1).default(os.hostname()),
      capture_disabled: z.boolean().default(false),
      sync_disabled: z.boolean().default(false),
      sync_interval_mins: z.number().positive().default(DEFAULTS.sync_interval_mins),
      /** While the ingest is unreachable: one Health probe this often, whatever the backoff; an answer syncs at once. */
      sync_probe_interval_ms: z.number().int().min(100).max(10_000).default(5000),
      /** An upload with no acknowledged progress for this long is cut and retried (a slow, moving link never is). */
      sync_stall_timeout_ms: z.number().int().min(1000).max(3_600_000).default(60_000),
      /** One bandwidth cap over all uploads of this edge, bytes/s (unset: none). */
      sync_max_bytes_per_second: z.number().int().min(1024).optional(),
      /** While capture runs, sync's pace follows capture's punctuality: cut back while readings run late, grown back while on time. */
      sync_capture_first: z.boolean().default(true),
      /** At a clean stop, a last sync round for the files capture just closed, bounded by this (0: none). */
      stop_sync_timeout_ms: z.number().int().min(0).max(600_000).default(10_000),
      additional_sync_paths: z.array(z.string().min(1)).default([]),
      file_last_modified_millis: z.number().int().nonnegative().default(DEFAULTS.file_last_modified_millis),
      delete_every_nth_when_disk_full: z.number().int().min(2).default(DEFAULTS.delete_every_nth_when_disk_full),
      disk_usage_deletion_threshold: fraction.default(DEFAULTS.disk_usage_deletion_threshold),
      capture_dir_deletion_threshold: fraction.default(DEFAULTS.capture_dir_deletion_threshold),
      janitor_interval_ms: z.number().int().positive().default(DEFAULTS.janitor_interval_ms),
      maximum_num_sync_threads: z.number().int().min(1).max(64).default(defaultSyncThreads()),
      maximum_capture_file_size_bytes: z.number().int().min(1024).default(DEFAULTS.maximum_capture_file_size_bytes),
      maximum_capture_file_age_ms: z.number().int().positive().default(DEFAULTS.maximum_capture_file_age_ms),
      flush_interval_ms: z.number().int().positive().default(DEFAULTS.flush_interval_ms),
      fsync_interval_ms: z.number().int().positive().default(DEFAULTS.fsync_interval_ms),
      selective_syncer_name: z.string().min(1).optional(),
      tags: z.array(z.string()).default([]),
      ingest: ingest.optional(),
      mongo_capture_config: mongo.optional(),
      log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      resources: z.array(resource).default([]),
    })
    .superRefine((c, ctx) => {
      const seen = new Set<string>();
      c.resources.forEach((r, i) => {
        if (seen.has(r.name)) ctx.addIssue({ code: 'custom', message: `duplicate resource name "${r.name}"`, path: ['resources', i, 'name'] });
        seen.add(r.name);
        const methods = new Set<string>();
        r.capture_methods.forEach((m, j) => {
          if (methods.has(m.method)) ctx.addIssue({ code: 'custom', message: `duplicate method "${m.method}"`, path: ['resources', i, 'capture_methods', j, 'method'] });
          methods.add(m.method);
          if (m.capture_frequency_hz > 0 && !m.disabled && !r.model && !r.module) {
            ctx.addIssue({ code: 'custom', message: 'a polled method needs the resource to have "model" or "module"', path: ['resources', i, 'capture_methods', j, 'capture_frequency_hz'] });
          }
        });
      });
      if (c.ingest?.insecure) {
        for (const a of Array.isArray(c.ingest.address) ? c.ingest.address : [c.ingest.address]) {
          if (!isLoopback(a)) ctx.addIssue({ code: 'custom', message: `plain text is only allowed to a loopback address, not ${a}: use TLS (ca_file) for anything else`, path: ['ingest', 'insecure'] });
        }
      }
      if (c.storage === 'memory') {
        if (c.ingest?.protocol === 'viam') ctx.addIssue({ code: 'custom', message: 'storage "memory" syncs over the edgecap protocol only', path: ['storage'] });
        // additional_sync_paths are claimed through the state dir's ledger: it must be somewhere writable, named.
        if (c.additional_sync_paths.length > 0 && !c.state_dir) ctx.addIssue({ code: 'custom', message: 'with storage "memory", additional_sync_paths need a state_dir outside capture_dir', path: ['additional_sync_paths'] });
      }
      if (c.selective_syncer_name && !seen.has(c.selective_syncer_name)) {
        ctx.addIssue({ code: 'custom', message: `no resource named "${c.selective_syncer_name}"`, path: ['selective_syncer_name'] });
      }
    });
  return configSchema;
}

export type ConfigSchema = ReturnType<typeof buildSchema>;
let schema: ConfigSchema | undefined;

/** The zod schema of the config (built, and zod loaded, on first use). */
export function getConfigSchema(): ConfigSchema {
  return (schema ??= buildSchema(loadZod()));
}

/**
 * The schema as a value, for code that imported it before it was lazy: every use reaches the
 * real schema (built on first touch).
 */
export const configSchema: ConfigSchema = new Proxy({} as ConfigSchema, {
  get: (_t, k) => {
    const s = getConfigSchema();
    const v = Reflect.get(s, k, s) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(s) : v;
  },
  has: (_t, k) => Reflect.has(getConfigSchema(), k),
  getPrototypeOf: () => Reflect.getPrototypeOf(getConfigSchema()),
});

export type EdgecapConfigInput = import('zod').z.input<ConfigSchema>;
export type EdgecapConfig = import('zod').z.output<ConfigSchema>;
export type ResourceConfig = EdgecapConfig['resources'][number];

function pathString(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/**
 * Validate a config object. All problems are reported at once, each with the path of the bad
 * field. Relative paths (`module`, `capture_dir`, `additional_sync_paths`, `ca_file`) resolve
 * against `baseDir` (the config file's folder).
 */
export function parseConfig(input: unknown, opts: { baseDir?: string; source?: string } = {}): EdgecapConfig {
  const r = getConfigSchema().safeParse(input);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => ({ path: pathString(i.path), message: i.message })),
      opts.source,
    );
  }
  const c = r.data;
  const base = opts.baseDir ?? process.cwd();
  const abs = (p: string): string => path.resolve(base, expandHome(p));
  c.capture_dir = abs(c.capture_dir);
  if (c.state_dir) c.state_dir = abs(c.state_dir);
  c.additional_sync_paths = c.additional_sync_paths.map(abs);
  if (c.ingest?.ca_file) c.ingest.ca_file = abs(c.ingest.ca_file);
  const missing: { path: string; message: string }[] = [];
  c.resources.forEach((res, i) => {
    if (res.module) {
      res.module = abs(res.module);
      if (!fs.existsSync(res.module)) missing.push({ path: `resources[${i}].module`, message: `module file not found: ${res.module}` });
    }
  });
  if (c.state_dir && c.storage === 'memory') {
    // Memory mode writes nothing under capture_dir.
    const rel = path.relative(c.capture_dir, c.state_dir);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) missing.push({ path: 'state_dir', message: 'with storage "memory" it must be outside capture_dir (nothing is written there)' });
  } else if (c.state_dir) {
    // Inside the capture dir the state must sit in a dot-folder, which scanners and the janitor skip.
    const rel = path.relative(c.capture_dir, c.state_dir);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel) && !rel.split(path.sep)[0]!.startsWith('.'))) {
      missing.push({ path: 'state_dir', message: `inside capture_dir it must be a folder whose name starts with "." (e.g. ${path.join(c.capture_dir, '.edgecap')})` });
    }
  }
  if (c.ingest?.ca_file && !fs.existsSync(c.ingest.ca_file)) missing.push({ path: 'ingest.ca_file', message: `file not found: ${c.ingest.ca_file}` });
  if (missing.length) throw new ConfigError(missing, opts.source);
  return c;
}

/** Read and parse (JSON) a config file, without validating it. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read config file ${file}: ${(e as Error).message}` }]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([{ path: '', message: `${file} is not valid JSON: ${(e as Error).message}` }]);
  }
  return json;
}

/** Read, parse (JSON) and validate a config file. */
export function loadConfigFile(file: string): EdgecapConfig {
  return parseConfig(readConfigFile(file), { baseDir: path.dirname(path.resolve(file)), source: file });
}
