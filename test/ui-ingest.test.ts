import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { DataManager } from '@edgecap/datamanager';
import { readCaptureFile } from '@edgecap/format';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../packages/ingest/dist/pg/cluster.js';
import { freePort, runCli, tmpdir, waitFor, type Child } from './helpers.js';
import { HOSTILE, browserUnavailable, launchBrowser, makePng, screenshotPath } from './ui-helpers.js';

// The ingest data browser in a real headless Chromium, over a real sync into a real
// `edgecap ingest --ui` process, on both storages (issue 18).
const unavailable = browserUnavailable();
const pgUnavailable = pgUnavailableReason();
let browser: Browser | undefined;
let cluster: PgCluster | undefined;
beforeAll(async () => {
  if (unavailable) return;
  browser = await launchBrowser();
  if (!pgUnavailable) cluster = await startPgCluster({ settings: { fsync: 'off' } });
}, 90_000);
afterAll(async () => {
  await browser?.close();
  cluster?.stop();
});

const TOKEN = 'admin-token-for-tests';

/** Capture on `part` and sync; with `holeInTemp`, a finished temp file is deleted first (an unexplained gap). */
async function captureAndSync(root: string, port: number, part: string, o: { holeInTemp?: boolean; images?: boolean }): Promise<{ hole?: [number, number] }> {
  const extra = path.join(root, `extra-${o.holeInTemp ? 1 : 2}`);
  fs.mkdirSync(extra, { recursive: true });
  if (o.images) fs.writeFileSync(path.join(extra, 'notes.txt'), 'hello from the edge\n');
  const dm = new DataManager({
    capture_dir: path.join(root, `capture-${o.holeInTemp ? 1 : 2}`),
    part_id: part,
    sync_disabled: true,
    maximum_capture_file_age_ms: 250,
    file_last_modified_millis: 0,
    additional_sync_paths: [extra],
    ingest: { address: `127.0.0.1:${port}`, insecure: true, api_key: 'k' },
    resources: [
      { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] },
      ...(o.images ? [{ name: 'cam', kind: 'camera', capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 0 }] }] : []),
    ],
  });
  await dm.start();
  let hole: [number, number] | undefined;
  try {
    for (let i = 0; i < 5 && o.images; i++) dm.push('cam', 'ReadImage', new Uint8Array(makePng(48, 32, i * 40)), { mimeType: 'image/png' });
    const dir = path.join(dm.currentConfig.capture_dir, 'sensor', 'temp', 'Readings');
    const finished = (): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.capture')).sort() : []);
    await waitFor('four finished temp files', () => finished().length >= 4, 30_000);
    await dm.stopCapture();
    if (o.holeInTemp) {
      // A file that never reaches the server: its seqs are a gap nobody explained.
      const victim = path.join(dir, finished()[1]!);
      const seqs = readCaptureFile(victim).readings.map((r) => r.seq);
      hole = [Math.min(...seqs), Math.max(...seqs)];
      fs.rmSync(victim);
    }
    const r = await dm.sync();
    expect(r.uploaded).toBeGreaterThan(0);
  } finally {
    await dm.stop();
  }
  return hole ? { hole } : {};
}

describe.each([['files'], ['postgres']] as const)('ingest UI on %s storage', (storage) => {
  it('lists machines and streams of a real sync, plots a field, shows images, marks an unexplained gap, manages keys; hostile names stay text', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    if (storage === 'postgres' && pgUnavailable) ctx.skip(pgUnavailable);
    const root = tmpdir(`ui-ingest-${storage}`);
    const port = await freePort();
    const uiPort = await freePort();
    const args = ['ingest', '--listen', `127.0.0.1:${port}`, '--insecure', '--api-key', 'k', '--ui', `127.0.0.1:${uiPort}`, '--ui-token', TOKEN];
    if (storage === 'files') args.push('--data', path.join(root, 'ingest'));
    else {
      args.push('--storage', 'postgres', '--pg-url', cluster!.url, '--data', path.join(root, 'scratch'));
    }
    const ingest: Child = runCli(args);
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      const line = await waitFor('ingest UI', () => ingest.stdout.find((l) => l.startsWith('ui ')) ?? (ingest.proc.exitCode !== null && Promise.reject(new Error(ingest.stderr.join('\n')))), 30_000);
      const url = line.slice(3, line.indexOf('/#'));
      const robot = `robot-${storage}`;
      const { hole } = await captureAndSync(root, port, robot, { holeInTemp: true, images: true });
      await captureAndSync(root, port, `${HOSTILE}-${storage}`, {});

      // The API refuses a call without the admin token; the page itself has no inline script.
      expect((await fetch(`${url}/api/machines`)).status).toBe(401);
      const html = await fetch(`${url}/`);
      expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect((await html.text()).includes('<script>')).toBe(false);

      await page.goto(`${url}/#token=${TOKEN}`);
      const machine = page.locator(`li.machine[data-part="${robot}"]`);
      await machine.waitFor({ timeout: 20_000 });
      expect(await machine.locator('.stream-link').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-key')))).toEqual(['camera/cam/ReadImage', 'sensor/temp/Readings']);
      // The hostile part id is shown as its text; nothing of it became markup.
      const parts = await page.locator('li.machine .part').allTextContents();
      expect(parts).toContain(`${HOSTILE}-${storage}`);
      expect(await page.locator('img[src="x"]').count()).toBe(0);

      // The plot of a numeric field (decimated server-side).
      await machine.locator('[data-key="sensor/temp/Readings"]').click();
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLOptionElement>('#field option')].some((o) => o.value === 'temperature_c'), undefined, { timeout: 20_000 });
      await page.selectOption('#field', 'temperature_c');
      await page.waitForFunction(() => Number(document.getElementById('plot')?.getAttribute('data-points')) > 0 && !!document.querySelector('#plot canvas'), undefined, { timeout: 20_000 });
      expect(await page.locator('#readings tbody tr').count()).toBeGreaterThan(0);

      // The gap picture: the deleted file's seqs are an unexplained gap.
      const seg = page.locator(`.gapbar[data-stream="${robot}/sensor/temp/Readings"] .seg.unexplained`);
      await seg.first().waitFor({ timeout: 20_000 });
      expect(await seg.evaluateAll((xs) => xs.map((x) => [Number(x.getAttribute('data-from')), Number(x.getAttribute('data-to'))]))).toContainEqual(hole);
      if (storage === 'files') await page.screenshot({ path: screenshotPath('ingest-stream.png'), fullPage: true });

      // Images of the camera stream, decoded by the browser.
      await machine.locator('[data-key="camera/cam/ReadImage"]').click();
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#gallery img')].filter((i) => i.naturalWidth === 48).length === 5, undefined, { timeout: 20_000 });
      if (storage === 'files') await page.locator('#stream-view').screenshot({ path: screenshotPath('ingest-gallery.png') });

      // Arbitrary files: listed, and the download is the stored bytes.
      await machine.locator('.files-link').click();
      await page.locator('#files tbody tr', { hasText: 'notes.txt' }).waitFor({ timeout: 20_000 });
      const files = (await (await fetch(`${url}/api/files?part=${encodeURIComponent(robot)}`, { headers: { 'x-edgecap-token': TOKEN } })).json()) as { files: { file_id: string; file_name: string }[] };
      const notes = files.files.find((f) => f.file_name.endsWith('notes.txt'))!;
      const dl = await fetch(`${url}/api/download?part=${encodeURIComponent(robot)}&file=${encodeURIComponent(notes.file_id)}`, { headers: { 'x-edgecap-token': TOKEN } });
      expect(await dl.text()).toBe('hello from the edge\n');
      expect(dl.headers.get('content-disposition')).toContain('attachment');
      // The gap report is shared by parallel page loads (one scan, the same answer).
      const gaps = await Promise.all([1, 2, 3].map(async () => (await fetch(`${url}/api/gaps`, { headers: { 'x-edgecap-token': TOKEN } })).text()));
      expect(new Set(gaps).size).toBe(1);
      expect(JSON.parse(gaps[0]!).streams.length).toBeGreaterThan(0);

      // Keys: create (a hostile part id, shown as text), then revoke.
      await page.fill('#new-part', HOSTILE);
      await page.click('#create-key');
      await page.locator('#new-secret').waitFor({ state: 'visible', timeout: 20_000 });
      const row = page.locator('#keys tbody tr').first();
      await row.waitFor({ timeout: 20_000 });
      expect(await row.locator('td').nth(1).textContent()).toBe(HOSTILE);
      await row.locator('button', { hasText: 'revoke' }).click();
      await page.waitForFunction(() => document.querySelector('#keys tbody tr .state')?.textContent?.startsWith('revoked'), undefined, { timeout: 20_000 });
      expect(await page.locator('img[src="x"]').count()).toBe(0);
      expect(dialogs).toEqual([]);
    } finally {
      await page.close();
      ingest.proc.kill('SIGTERM');
      await ingest.exited;
    }
  }, 180_000);
});
