import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConfigError } from '@edgecap/core';
import { configSchema, parseConfig, loadConfigFile } from '../src/config.js';
import { toResourceSpecs } from '../src/manager.js';

function issuesOf(input: unknown, baseDir?: string): { path: string; message: string }[] {
  try {
    parseConfig(input, baseDir ? { baseDir } : {});
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('the README example parses, with defaults filled and module paths resolved against the config file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-cfg-'));
    fs.writeFileSync(path.join(dir, 'my-sensor.js'), 'export default {}');
    const file = path.join(dir, 'edgecap.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        capture_dir: '/tmp/demo/capture',
        sync_interval_mins: 0.05,
        ingest: { address: '127.0.0.1:50051', insecure: true, api_key: 'dev-key' },
        resources: [
          { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'Position', capture_frequency_hz: 1000 }] },
          { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 10 }] },
          { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 65536 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 5, additional_params: { mime_type: 'image/jpeg' } }] },
          { name: 'mine', module: './my-sensor.js', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] },
        ],
      }),
    );
    const c = loadConfigFile(file);
    expect(c.capture_dir).toBe('/tmp/demo/capture');
    expect(c.resources[3]!.module).toBe(path.join(dir, 'my-sensor.js'));
    expect(c.maximum_capture_file_size_bytes).toBe(256 * 1024);
    expect(c.file_last_modified_millis).toBe(10_000);
    expect(c.delete_every_nth_when_disk_full).toBe(5);
    expect(c.maximum_num_sync_threads).toBeGreaterThanOrEqual(1);
    expect(c.flush_interval_ms).toBe(100);
    expect(c.fsync_interval_ms).toBe(1000);
    expect(c.capture_disabled).toBe(false);
  });

  it('defaults the capture dir to ~/.edgecap/capture', () => {
    expect(parseConfig({}).capture_dir).toBe(path.join(os.homedir(), '.edgecap', 'capture'));
  });

  it('reports every problem at once, each with the path of the bad field', () => {
    const issues = issuesOf({
      capture_dir: 5,
      sync_interval_mins: 'often',
      bogus_key: true,
      resources: [
        { name: 'a', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: -1 }] },
        { name: 'b', model: 'sim:nope', capture_methods: [] },
      ],
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('capture_dir');
    expect(paths).toContain('sync_interval_mins');
    expect(paths).toContain('resources[0].capture_methods[0].capture_frequency_hz');
    expect(paths).toContain('resources[1].model');
    expect(issues.some((i) => /bogus_key/.test(i.message))).toBe(true);
  });

  it('names a missing resource module and its resolved path', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-cfg-'));
    const issues = issuesOf({ resources: [{ name: 'm', module: './nope.js', capture_methods: [{ method: 'Readings', capture_frequency_hz: 1 }] }] }, dir);
    expect(issues).toEqual([{ path: 'resources[0].module', message: `module file not found: ${path.join(dir, 'nope.js')}` }]);
  });

  it('collector: "thread" by default, "shared" on request (kept in the resource spec), anything else an error', () => {
    const c = parseConfig({
      resources: [
        { name: 'a', model: 'sim:sensor' },
        { name: 'b', model: 'sim:sensor', collector: 'shared' },
      ],
    });
    expect(c.resources.map((r) => r.collector)).toEqual(['thread', 'shared']);
    expect(toResourceSpecs(c).map((r) => r.collector)).toEqual([undefined, 'shared']);
    expect(issuesOf({ resources: [{ name: 'a', model: 'sim:sensor', collector: 'pooled' }] }).map((i) => i.path)).toEqual(['resources[0].collector']);
  });

  it('collector_heap_mb: unset by default (the engine applies its own), kept as heapMb, bounded', () => {
    const c = parseConfig({ resources: [{ name: 'a', model: 'sim:sensor' }, { name: 'b', model: 'sim:sensor', collector_heap_mb: 64 }] });
    expect(toResourceSpecs(c).map((r) => r.heapMb)).toEqual([undefined, 64]);
    for (const bad of [8, 64.5, '64']) expect(issuesOf({ resources: [{ name: 'a', model: 'sim:sensor', collector_heap_mb: bad }] }).map((i) => i.path)).toEqual(['resources[0].collector_heap_mb']);
    // a shared resource has no thread of its own to limit: refused, not silently ignored
    expect(issuesOf({ resources: [{ name: 'a', model: 'sim:sensor', collector: 'shared', collector_heap_mb: 64 }] })).toEqual([
      { path: 'resources[0].collector_heap_mb', message: 'applies to a collector thread of its own; resources with collector "shared" run under the shared thread\'s limit' },
    ]);
  });

  it('the exported schema value validates as parseConfig does (built on first use)', () => {
    expect(configSchema.safeParse({ resources: [{ name: 'a', model: 'sim:sensor' }] }).success).toBe(true);
    expect(configSchema.safeParse({ resources: [{ name: 'a', model: 'sim:nope' }] }).success).toBe(false);
  });

  it('rejects names that would escape the capture dir, duplicates, and an unknown selective syncer', () => {
    const issues = issuesOf({
      selective_syncer_name: 'ghost',
      resources: [
        { name: '../x', model: 'sim:sensor' },
        { name: 's', model: 'sim:sensor' },
        { name: 's', model: 'sim:sensor' },
      ],
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['resources[0].name', 'resources[2].name', 'selective_syncer_name']));
  });

  it('fuzz: wrong types and values always give a ConfigError naming fields, never another exception', () => {
    const junk = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer()), fc.object());
    const keys = ['capture_dir', 'sync_interval_mins', 'maximum_num_sync_threads', 'tags', 'ingest', 'resources', 'additional_sync_paths', 'capture_disabled'];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), junk, { minKeys: 1 }), (cfg) => {
        try {
          parseConfig(cfg);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          for (const i of (e as ConfigError).issues) expect(i.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
