import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFiles, readCaptureFile, FRAME_HEADER_BYTES } from '@edgecap/format';
import { startIngestServer, exportReadings } from '@edgecap/ingest';
import { cli, freePort, runCli, tmpdir, waitFor, writeJson } from './helpers.js';
import { viamCaptureBytes } from '../packages/viam/test/helpers.js';

describe('edgecap CLI as a subprocess', () => {
  it('run → SIGTERM: files closed, synced, and the run says what it flushed', async () => {
    const root = tmpdir('cli-run');
    const server = await startIngestServer({ listen: '127.0.0.1:0', dataDir: path.join(root, 'ingest'), insecure: true, apiKeys: ['k'] });
    try {
      fs.writeFileSync(path.join(root, 'my-sensor.js'), 'let n = 0;\nexport default { kind: "sensor", Readings: () => ({ n: n++, ok: true }) };\n');
      const config = writeJson(path.join(root, 'edgecap.json'), {
        capture_dir: path.join(root, 'capture'),
        sync_interval_mins: 0.005,
        maximum_capture_file_age_ms: 300,
        ingest: { address: server.address, insecure: true, api_key: 'k' },
        resources: [
          { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] },
          { name: 'mine', module: './my-sensor.js', capture_methods: [{ method: 'Readings', capture_frequency_hz: 100 }] },
        ],
      });
      const metricsPort = await freePort();
      const run = runCli(['run', '--config', config, '--metrics', `127.0.0.1:${metricsPort}`]);
      const metrics = await waitFor('metrics', async () => {
        try {
          const t = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
          return /edgecap_captured_readings_total\{resource="mine",kind="sensor",method="Readings"\} [1-9]/.test(t) ? t : undefined;
        } catch {
          return undefined;
        }
      });
      expect(metrics).toMatch(/# TYPE edgecap_sync_pending_files gauge/);
      await waitFor('files synced', async () => {
        let n = 0;
        for await (const _ of exportReadings(path.join(root, 'ingest'))) n++;
        return n > 50;
      });
      run.proc.kill('SIGTERM');
      const end = await run.exited;
      expect(end.code).toBe(0);
      expect(run.stderr.join('\n')).toMatch(/stopped; \d+ readings flushed to disk, 0 dropped \(ring full\), 0 dropped \(write errors\)/);
      // a clean stop with the ingest reachable syncs what it just closed: nothing is left
      expect(run.stderr.join('\n')).toMatch(/at stop [1-9]\d* synced, 0 left for next time/);
      expect(listFiles(path.join(root, 'capture'), '.prog')).toEqual([]);
      expect(listFiles(path.join(root, 'capture'), '.capture')).toEqual([]);
      // Everything left on disk is finished and clean, and a sync drains it.
      for (const f of listFiles(path.join(root, 'capture'), '.capture')) expect(readCaptureFile(f).problems).toEqual([]);
      const st = await cli(['status', '--config', config]);
      expect(st.code).toBe(0);
      expect(st.stdout).toMatch(/sensor\/mine\/Readings/);
      expect(st.stdout).toMatch(/synced and deleted so far: [1-9]\d* files/);
      const s = await cli(['sync', '--config', config]);
      expect(s.code).toBe(0);
      expect(listFiles(path.join(root, 'capture'), '.capture')).toEqual([]);
      const mine: number[] = [];
      for await (const r of exportReadings(path.join(root, 'ingest'))) if (r.resource === 'mine') mine.push(r.seq);
      expect(mine.length).toBeGreaterThan(10);
      expect(mine.sort((a, b) => a - b)).toEqual([...Array(mine.length).keys()]);
    } finally {
      await server.close();
    }
  });

  it('status lists the files in failed/ with their reasons', async () => {
    const root = tmpdir('cli-failed');
    const capture = path.join(root, 'capture');
    const failedDir = path.join(capture, '.edgecap', 'failed', 'sensor', 'temp', 'Readings');
    fs.mkdirSync(failedDir, { recursive: true });
    fs.writeFileSync(path.join(failedDir, 'bad.capture'), 'not a capture file');
    fs.writeFileSync(path.join(failedDir, 'bad.capture.reason'), 'INVALID_ARGUMENT: not a valid edgecap capture file\nsource: sensor/temp/Readings/bad.capture\n');
    const config = writeJson(path.join(root, 'edgecap.json'), { capture_dir: capture, resources: [] });
    const st = await cli(['status', '--config', config]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/failed \(not retried until `edgecap sync --retry-failed`\): 1 file\(s\)/);
    expect(st.stdout).toMatch(/failed\/sensor\/temp\/Readings\/bad\.capture .*INVALID_ARGUMENT: not a valid edgecap capture file/);
  });

  it('invalid configs: each gives the expected message and exit code 2', async () => {
    const root = tmpdir('cli-bad');
    const cases: [unknown, RegExp][] = [
      [{ capture_dir: 7 }, /capture_dir: .*expected string/i],
      [{ sync_interval_mins: 'soon' }, /sync_interval_mins: .*expected number/i],
      [{ surprise: 1 }, /surprise/],
      [{ resources: [{ name: 'a', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: -5 }] }] }, /resources\[0\]\.capture_methods\[0\]\.capture_frequency_hz: .*>=0/],
      [{ resources: [{ name: 'm', module: './missing.js', capture_methods: [{ method: 'Readings', capture_frequency_hz: 1 }] }] }, /resources\[0\]\.module: module file not found: .*missing\.js/],
    ];
    for (const [i, [cfg, msg]] of cases.entries()) {
      const file = writeJson(path.join(root, `bad${i}.json`), cfg);
      const r = await cli(['run', '--config', file]);
      expect(r.code, JSON.stringify(cfg)).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/^\s+at /m); // one clear message, no stack trace
    }
    fs.writeFileSync(path.join(root, 'notjson.json'), '{ nope');
    const r = await cli(['run', '--config', path.join(root, 'notjson.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/notjson\.json is not valid JSON/);
  });

  it('inspect reports a corrupted file with the offset and exits non-zero; a clean file exits 0', async () => {
    const root = tmpdir('cli-inspect');
    const { DataManager } = await import('@edgecap/datamanager');
    const dm = new DataManager({ capture_dir: path.join(root, 'capture'), resources: [{ name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 200 }] }] });
    await dm.start();
    await new Promise((r) => setTimeout(r, 600));
    await dm.stop();
    const [file] = listFiles(path.join(root, 'capture'), '.capture');
    expect(file).toBeDefined();
    const clean = await cli(['inspect', file!]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/sensor\/temp\/Readings/);
    const json = await cli(['inspect', file!, '--json']);
    const lines = json.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq?: number });
    expect(lines.length).toBe(readCaptureFile(file!).readings.length);
    const s = readCaptureFile(file!);
    const victim = s.readings[3]!;
    const bytes = fs.readFileSync(file!);
    bytes[victim.offset + FRAME_HEADER_BYTES + 2]! ^= 0xff;
    fs.writeFileSync(file!, bytes);
    const bad = await cli(['inspect', file!]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain(`corrupt at offset ${victim.offset}`);
  });

  it("inspect decodes a viam-server .capture file (written with protobufjs)", async () => {
    const root = tmpdir('cli-viam');
    const file = path.join(root, 'imu.capture');
    fs.writeFileSync(file, viamCaptureBytes(7));
    const r = await cli(['inspect', file, '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { format: string; resource: string; method: string; data: { linear_acceleration: { x: number } } });
    expect(lines).toHaveLength(7);
    expect(lines[3]).toMatchObject({ format: 'viam', resource: 'imu', method: 'LinearAcceleration', data: { linear_acceleration: { x: 3 } } });
    fs.writeFileSync(file, viamCaptureBytes(7).subarray(0, -5));
    const cut = await cli(['inspect', file]);
    expect(cut.code).toBe(3);
    expect(cut.stderr).toMatch(/truncated/);
  });
});

