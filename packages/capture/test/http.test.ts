import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CaptureEngine, loadResource, type ResourceSpec } from '@edgecap/capture';
import { ErrorCodes } from '@edgecap/core';
import type { StateStore } from '@edgecap/store';
import { expectContiguous, newStore, readBack, sleep, tmpDir } from './helpers.js';

// A real HTTP server on loopback: JSON at /reading, bytes at /image, a 503 at /down, a stall at
// /slow. It counts TCP connections, to show the resource keeps one alive.
let server: http.Server;
let base = '';
let connections = 0;
let hits = 0;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits++;
    if (req.url === '/reading') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ temperature_c: 21.5, n: hits, auth: req.headers['x-key'] ?? null }));
    } else if (req.url === '/scalar') {
      res.end('42');
    } else if (req.url === '/image') {
      res.setHeader('content-type', 'image/png');
      res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47, hits & 0xff]));
    } else if (req.url === '/text') {
      res.end('not json');
    } else if (req.url === '/slow') {
      setTimeout(() => res.end('{}'), 2000);
    } else {
      res.statusCode = 503;
      res.end('busy');
    }
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const stores: StateStore[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

const spec = (attributes: Record<string, unknown>, method = 'Readings'): ResourceSpec => ({ name: 'plc', model: 'http', attributes, methods: [{ method, frequencyHz: 10 }] });

describe('http resource model', () => {
  it('Readings parses JSON (headers sent), a scalar is wrapped, Get returns bytes with their content-type', async () => {
    const { resource: r } = await loadResource(spec({ url: `${base}/reading`, headers: { 'x-key': 'k1' } }));
    const v = (await (r.Readings as () => Promise<Record<string, unknown>>)()) as { temperature_c: number; auth: string };
    expect(v.temperature_c).toBe(21.5);
    expect(v.auth).toBe('k1');
    const { resource: s } = await loadResource(spec({ url: `${base}/scalar` }));
    expect(await (s.Readings as () => Promise<unknown>)()).toEqual({ value: 42 });
    const { resource: img } = await loadResource(spec({ url: `${base}/image` }, 'Get'));
    const got = (await (img.Get as () => Promise<{ data: Uint8Array; mime_type: string }>)()) as { data: Uint8Array; mime_type: string };
    expect(got.mime_type).toBe('image/png');
    expect([...got.data.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    for (const x of [r, s, img]) await (x.close as () => Promise<void>)();
  });

  it('a non-2xx answer, a non-JSON body and a timeout each throw RESOURCE_CALL naming the resource', async () => {
    const call = async (attributes: Record<string, unknown>): Promise<unknown> => {
      const { resource } = await loadResource(spec(attributes));
      try {
        return await (resource.Readings as () => Promise<unknown>)().catch((e: unknown) => e);
      } finally {
        await (resource.close as () => Promise<void>)();
      }
    };
    expect(await call({ url: `${base}/down` })).toMatchObject({ code: ErrorCodes.RESOURCE_CALL, message: expect.stringMatching(/resource "plc": GET .*\/down answered 503/) });
    expect(await call({ url: `${base}/text` })).toMatchObject({ code: ErrorCodes.RESOURCE_CALL, message: expect.stringMatching(/did not answer JSON/) });
    expect(await call({ url: `${base}/slow`, timeout_ms: 200 })).toMatchObject({ code: ErrorCodes.RESOURCE_CALL, message: expect.stringMatching(/\/slow failed: .*timeout/i) });
  });

  it('bad attributes are config errors naming the field', async () => {
    await expect(loadResource(spec({}))).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, message: expect.stringMatching(/resource "plc" \(model http\): attributes.url must be an http\(s\) URL/) });
    await expect(loadResource(spec({ url: 'ftp://x/y' }))).rejects.toMatchObject({ details: { field: 'attributes.url' } });
    await expect(loadResource(spec({ url: base, method: 'BREW' }))).rejects.toMatchObject({ details: { field: 'attributes.method' } });
    await expect(loadResource(spec({ url: base, headers: { a: 1 } }))).rejects.toMatchObject({ details: { field: 'attributes.headers' } });
    await expect(loadResource(spec({ url: base, timeout_ms: 0 }))).rejects.toMatchObject({ details: { field: 'attributes.timeout_ms' } });
  });

  it('captured by a collector thread at 50 Hz over one kept-alive connection; failures are counted, not captured', async () => {
    const dir = tmpDir('http');
    const store = newStore(dir);
    stores.push(store);
    const before = connections;
    const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
    await eng.start([
      { name: 'plc', kind: 'sensor', model: 'http', attributes: { url: `${base}/reading` }, methods: [{ method: 'Readings', frequencyHz: 50 }] },
      { name: 'down', kind: 'sensor', model: 'http', attributes: { url: `${base}/down` }, methods: [{ method: 'Readings', frequencyHz: 20 }] },
    ]);
    await sleep(1500);
    await eng.stop();
    const stats = eng.stats();
    const plc = stats.find((s) => s.resource === 'plc')!;
    const down = stats.find((s) => s.resource === 'down')!;
    expect(plc.captured).toBeGreaterThan(30);
    const disk = readBack(dir);
    const d = disk.get('sensor/plc/Readings')!;
    expect(d.readings.length).toBe(plc.captured);
    expectContiguous(d.readings, 0);
    expect((d.readings[0]!.data as { temperature_c: number }).temperature_c).toBe(21.5);
    expect(down.captured).toBe(0);
    expect(down.captureErrors).toBeGreaterThan(10);
    expect(disk.has('sensor/down/Readings')).toBe(false);
    // one connection per resource, kept alive across every poll
    expect(connections - before).toBe(2);
  });
});
