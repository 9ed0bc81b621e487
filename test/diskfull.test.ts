import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataManager } from '@edgecap/datamanager';
import { listFiles, readCaptureFile } from '@edgecap/format';
import { tmpdir, waitFor } from './helpers.js';

// Capture into a real, completely full filesystem (a 6 MiB tmpfs). Needs root for mount; CI is root.
const mnt = tmpdir('diskfull');
let mountError: string | undefined;

beforeAll(() => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0700', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    mountError = `cannot mount tmpfs (${(e as Error).message.split('\n')[0]}); run as root to include this test`;
  }
});
afterAll(() => {
  if (!mountError) execFileSync('umount', ['-l', mnt]);
});

describe('capture on a full disk', () => {
  it('keeps running: ENOSPC counted, capture resumes when space returns, files read back clean', async (ctx) => {
    if (mountError) ctx.skip(mountError);
    const captureDir = path.join(mnt, 'capture');
    const dm = new DataManager({
      capture_dir: captureDir,
      sync_disabled: true,
      janitor_interval_ms: 3_600_000, // the janitor must not free space in this test
      maximum_capture_file_size_bytes: 262_144,
      resources: [
        { name: 'cam', model: 'sim:camera', attributes: { image_bytes: 32768 }, capture_methods: [{ method: 'ReadImage', capture_frequency_hz: 100 }] },
        { name: 'temp', model: 'sim:sensor', capture_methods: [{ method: 'Readings', capture_frequency_hz: 50 }] },
      ],
    });
    const writeErrors: string[] = [];
    dm.on('write-error', (e) => writeErrors.push(e.code));
    await dm.start();
    // Fill what the camera leaves with ballast until the filesystem is completely full.
    const ballast = path.join(mnt, 'ballast');
    const fd = fs.openSync(ballast, 'w');
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(65536));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    fs.closeSync(fd);
    const stream = (name: string) => dm.stats().capture.streams.find((s) => s.resource === name)!;
    await waitFor('ENOSPC to be counted', () => stream('cam').droppedOnWriteError > 5, 20_000);
    expect(stream('cam').writeErrors).toBeGreaterThan(0);
    expect(writeErrors).toContain('ENOSPC');
    // Space comes back: capture resumes by itself.
    fs.rmSync(ballast);
    const droppedAtRelease = stream('cam').droppedOnWriteError;
    const capturedAtRelease = stream('cam').captured;
    await waitFor('capture to resume', () => stream('cam').captured > capturedAtRelease + 20, 20_000);
    await dm.stopCapture();
    const final = dm.stats().capture.streams;
    await dm.stop();

    const files = listFiles(captureDir, '.capture');
    expect(listFiles(captureDir, '.prog')).toEqual([]);
    const seqs = new Map<string, number[]>();
    const gapSeqs = new Map<string, number>();
    for (const f of files) {
      const s = readCaptureFile(f);
      expect(s.problems, f).toEqual([]);
      const k = s.header!.name;
      seqs.set(k, [...(seqs.get(k) ?? []), ...s.readings.map((r) => r.seq)]);
      for (const g of s.gaps) gapSeqs.set(k, (gapSeqs.get(k) ?? 0) + g.to_seq - g.from_seq + 1);
    }
    for (const st of final) {
      const onDisk = seqs.get(st.resource) ?? [];
      // Every accepted reading is on disk or counted as lost to a write error; nothing twice.
      expect(new Set(onDisk).size).toBe(onDisk.length);
      expect(onDisk.length + st.droppedOnWriteError).toBe(st.captured);
    }
    const cam = final.find((s) => s.resource === 'cam')!;
    expect(cam.droppedOnWriteError).toBeGreaterThanOrEqual(droppedAtRelease);
    // Readings captured after space returned reached the disk.
    expect(Math.max(...(seqs.get('cam') ?? [0]))).toBeGreaterThan(capturedAtRelease);
    // The drops are explained in-band by write_error GAP frames (all but possibly the very last run).
    expect(gapSeqs.get('cam') ?? 0).toBeGreaterThan(0);
  }, 60_000);
});
