import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanCaptureDir } from '@edgecap/janitor';

describe('janitor scan', () => {
  it('excluded paths hold even when the capture dir is reached through a symlinked parent', () => {
    const top = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-jscan-'));
    fs.mkdirSync(path.join(top, 'real', 'capture', 'extra'), { recursive: true });
    fs.mkdirSync(path.join(top, 'real', 'capture', 'sensor'), { recursive: true });
    fs.symlinkSync(path.join(top, 'real'), path.join(top, 'link'));
    fs.writeFileSync(path.join(top, 'real', 'capture', 'extra', 'keep.capture'), 'x');
    fs.writeFileSync(path.join(top, 'real', 'capture', 'sensor', 'old.capture'), 'y');
    const captureDir = path.join(top, 'link', 'capture');
    const r = scanCaptureDir(captureDir, [path.join(captureDir, 'extra')]);
    expect(r.candidates.map((c) => path.basename(c.path))).toEqual(['old.capture']);
  });
});
