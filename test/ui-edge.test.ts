import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { DataManager, type StatusServer } from '@edgecap/datamanager';
import { tmpdir, waitFor } from './helpers.js';
import { HOSTILE, browserUnavailable, launchBrowser, makePng, screenshotPath } from './ui-helpers.js';

/** A GET with a chosen Host header, answered with its status and headers; the response is left open for SSE. */
function rawGet(url: string, p: string, host?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}${p}`, host ? { headers: { host } } : {}, (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, res }));
    req.on('error', reject);
  });
}

// The edge status page in a real headless Chromium (issue 18).
const unavailable = browserUnavailable();
let browser: Browser | undefined;
beforeAll(async () => {
  if (!unavailable) browser = await launchBrowser();
}, 60_000);
afterAll(async () => browser?.close());

describe('edge status page', () => {
  it('shows every stream live with a rate, last readings and an image; stop capture works; hostile text stays text', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const root = tmpdir('ui-edge');
    const dm = new DataManager({
      capture_dir: path.join(root, 'capture'),
      // The part id is the user's; the page must show it as text, never as markup.
      part_id: HOSTILE,
      sync_disabled: true,
      resources: [
        { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 20 }] },
        { name: 'imu', model: 'sim:movement_sensor', capture_methods: [{ method: 'LinearVelocity', capture_frequency_hz: 10 }] },
        { name: 'cam', kind: 'camera', capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 0 }] },
      ],
    });
    await dm.start();
    let n = 0;
    const pusher = setInterval(() => {
      if (dm.stats().capture.running) dm.push('cam', 'ReadImage', new Uint8Array(makePng(48, 32, n++ * 16)), { mimeType: 'image/png' });
    }, 100);
    let server: StatusServer | undefined;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      server = await dm.serveStatus({ port: 0, token: 'sekret-token' });

      // The server side of the rules the page relies on.
      const plain = await fetch(`${server.url}/`);
      expect(plain.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect((await plain.text()).includes('<script>')).toBe(false); // no inline script
      expect((await fetch(`${server.url}/api/control/stop-capture`, { method: 'POST' })).status).toBe(401);
      expect((await fetch(`${server.url}/api/control/stop-capture`, { method: 'POST', headers: { 'x-edgecap-token': 'wrong' } })).status).toBe(401);
      expect(await (await fetch(`${server.url}/healthz`)).text()).toBe('ok\n');
      const metrics = await fetch(`${server.url}/metrics`);
      expect(metrics.headers.get('content-security-policy')).toContain("default-src 'none'");
      const metricsText = await metrics.text();
      expect(metricsText).toContain('edgecap_captured_readings_total{resource="temp"');
      expect(metricsText).toMatch(/edgecap_thread_cpu_seconds_total\{thread="collector",resource="temp"\} [0-9.e-]+/);
      expect(metricsText).toMatch(/edgecap_thread_cpu_seconds_total\{thread="writer",resource=""\} [0-9.e-]+/);
      // DNS rebinding: a foreign Host reads neither the metrics nor anything else.
      for (const p of ['/metrics', '/healthz', '/']) {
        const r = await rawGet(server.url, p, 'evil.example');
        r.res.resume();
        expect(r.status).toBe(421);
      }
      // At most 16 event streams (the status server's MAX_SSE_CLIENTS); the 17th gets 503.
      const open: http.IncomingMessage[] = [];
      try {
        for (let i = 0; i < 16; i++) {
          const r = await rawGet(server.url, '/events');
          open.push(r.res);
          expect(r.status).toBe(200);
        }
        const extra = await rawGet(server.url, '/events');
        extra.res.resume();
        expect(extra.status).toBe(503);
      } finally {
        for (const r of open) r.destroy();
      }
      // The slots come back once those clients have gone (the page below needs one).
      await waitFor('event slots freed', async () => {
        const r = await rawGet(server!.url, '/events');
        r.res.destroy();
        return r.status === 200;
      }, 20_000);

      await page.goto(`${server.url}/#token=sekret-token`);
      const keys = ['sensor/temp/Readings', 'movement_sensor/imu/LinearVelocity', 'camera/cam/ReadImage'];
      // Every configured stream with a non-zero rate within 3 s of the page opening.
      await page.waitForFunction(
        (ks) => ks.every((k) => Number(document.querySelector(`[data-stream="${k}"]`)?.getAttribute('data-rate')) > 0),
        keys,
        { timeout: 3000 },
      );
      // Last readings: tabular values as a table, the image as a decoded thumbnail.
      await page.waitForFunction(() => [...document.querySelectorAll('[data-stream="sensor/temp/Readings"] .last td')].some((td) => td.textContent === 'temperature_c'), undefined, { timeout: 10_000 });
      await page.waitForFunction(() => (document.querySelector<HTMLImageElement>('[data-stream="camera/cam/ReadImage"] .last img')?.naturalWidth ?? 0) === 48, undefined, { timeout: 10_000 });
      // CPU by thread over the last second: the writer and each resource's collector thread.
      await page.waitForFunction(
        () => {
          const rows = [...document.querySelectorAll('#cpu tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''));
          const has = (name: string) => rows.some(([k, v]) => k === name && /^\d+\.\d\d %$/.test(v ?? ''));
          return has('writer') && has('collector temp') && has('collector imu') && has('whole process');
        },
        undefined,
        { timeout: 10_000 },
      );
      // Uplot drew a rate plot per stream.
      expect(await page.locator('.stream canvas').count()).toBeGreaterThanOrEqual(3);

      expect(await page.textContent('#part')).toBe(HOSTILE);
      expect(await page.locator('img[src="x"]').count()).toBe(0);
      // A few seconds of history for the picture (the plots need more than one point).
      await page.waitForFunction(() => Number(document.querySelector('[data-stream="sensor/temp/Readings"]')?.getAttribute('data-points')) >= 5, undefined, { timeout: 30_000 });
      await page.screenshot({ path: screenshotPath('edge-status.png'), fullPage: true });

      await page.click('#stop-capture');
      await waitFor('capture to stop', () => !dm.stats().capture.running, 20_000);
      await page.waitForFunction(() => document.getElementById('capture-state')?.textContent === 'stopped', undefined, { timeout: 10_000 });
      await page.waitForFunction(() => Number(document.querySelector('[data-stream="sensor/temp/Readings"]')?.getAttribute('data-rate')) === 0, undefined, { timeout: 10_000 });
      expect(dialogs).toEqual([]);
    } finally {
      clearInterval(pusher);
      await page.close();
      await server?.close();
      await dm.stop();
    }
  }, 90_000);
});
