import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CaptureEngine, recoverAtStartup } from '@edgecap/capture';
import { newStore, readBack, sleep, tmpDir } from './helpers.js';

const child = fileURLToPath(new URL('./fixtures/kill-child.mjs', import.meta.url));
const FLUSH_MS = 200;

describe('SIGKILL durability', () => {
  it('everything produced more than flush_interval_ms before a SIGKILL is on disk; seq continues without reuse', async () => {
    const dir = tmpDir('kill');
    const side = path.join(dir, 'progress.txt');
    const p = spawn(process.execPath, [child, dir, side, String(FLUSH_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      p.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      p.on('exit', (c) => reject(new Error(`child exited early: ${c}`)));
    });
    await sleep(1500);
    const killAt = Date.now();
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));

    const store = newStore(dir);
    try {
      const rec = recoverAtStartup(dir, store);
      expect(rec.length).toBeGreaterThan(0); // the kill left in-progress files behind
      const disk = readBack(dir);
      const lines = fs.readFileSync(side, 'utf8').trim().split('\n').map((l) => {
        const i = l.indexOf(' ');
        return { t: Number(l.slice(0, i)), seqs: JSON.parse(l.slice(i + 1)) as Record<string, number> };
      });
      const due = lines.filter((l) => l.t <= killAt - FLUSH_MS).at(-1)!;
      expect(due).toBeDefined();
      for (const [k, next] of Object.entries(due.seqs)) {
        const seqs = new Set(disk.get(k)?.readings.map((r) => r.seq) ?? []);
        expect(next).toBeGreaterThan(0);
        for (let s = 0; s < next; s++) if (!seqs.has(s)) throw new Error(`${k}: seq ${s} (produced before ${due.t}, kill at ${killAt}) missing`);
      }
      const maxOnDisk = new Map<string, number>();
      for (const [k, d] of disk) {
        const max = Math.max(...d.readings.map((r) => r.seq));
        maxOnDisk.set(k, max);
        const [kind, name, method] = k.split('/') as [string, string, string];
        expect(store.nextSeq({ kind, name, method })).toBeGreaterThan(max);
      }
      // restart: new readings continue after everything on disk, nothing duplicated
      const eng = new CaptureEngine({ captureDir: dir, store, partId: 'p', tags: [] });
      await eng.start([{ name: 's', model: 'sim:sensor', methods: [{ method: 'Readings', frequencyHz: 100 }] }]);
      await sleep(300);
      await eng.stop();
      const after = readBack(dir).get('sensor/s/Readings')!;
      const all = after.readings.map((r) => r.seq);
      expect(new Set(all).size).toBe(all.length);
      const newOnes = all.filter((s) => s > maxOnDisk.get('sensor/s/Readings')!);
      expect(newOnes.length).toBe(eng.stats()[0]!.captured);
    } finally {
      await store.close();
    }
  });
});
