import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFiles, walkFiles } from '@edgecap/format';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecap-walk-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function touch(rel: string): string {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, rel);
  return p;
}

describe('walkFiles', () => {
  const a1 = touch('t/a/2.capture');
  const a0 = touch('t/a/1.capture');
  const b0 = touch('t/b/0.capture');
  touch('t/a/x.prog');
  touch('t/.edgecap/state.capture');
  const top = touch('t/z.capture');
  fs.symlinkSync(path.join(root, 't', 'a'), path.join(root, 't', 'link'));
  fs.symlinkSync(a0, path.join(root, 't', 'a', '0-link.capture'));

  it('depth first, each folder in name order; dot entries and symlinks passed over', () => {
    expect([...walkFiles(path.join(root, 't'), { ending: '.capture', skipDotEntries: true })]).toEqual([a0, a1, b0, top]);
    expect(listFiles(path.join(root, 't'), '.capture')).toEqual([a0, a1, b0, top]);
  });

  it('without options: every regular file, dot entries included; `skip` is neither entered nor returned', () => {
    const all = [...walkFiles(path.join(root, 't'), { skip: new Set([path.join(root, 't', 'b')]) })];
    expect(all).toEqual([path.join(root, 't/.edgecap/state.capture'), a0, a1, path.join(root, 't/a/x.prog'), top]);
  });

  it('is lazy: a folder is listed only when the walk reaches it', () => {
    const walk = walkFiles(path.join(root, 't'), { ending: '.capture', skipDotEntries: true });
    expect(walk.next().value).toBe(a0);
    const late = touch('t/b/1.capture'); // b is not listed yet
    expect([...walk]).toEqual([a1, b0, late, top]);
  });

  it('a missing root is an empty walk', () => {
    expect([...walkFiles(path.join(root, 'nope'))]).toEqual([]);
  });
});
