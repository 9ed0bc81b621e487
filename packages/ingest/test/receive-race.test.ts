/**
 * A call that fails while one of its files is between steps (receive.ts FileReceiver): the
 * handler discards in its finally at once, while stage() or the staging's finish() is still
 * awaiting. Whatever that step then produces must not stay behind in staging (the torture's
 * shared-dir scenario found one such leftover after an edge was killed mid-batch).
 */
import { describe, expect, it } from 'vitest';
import type { FileMetadata__Output } from '@edgecap/proto';
// Internal (not exported by the package): the per-file receive logic of Upload and UploadBatch.
import { FileReceiver, type UploadContext } from '../dist/receive.js';
import { resolveLimits } from '../dist/settings.js';
import type { StagedUpload } from '../dist/storage.js';
import { fileMeta } from './helpers.js';

function harness(): { ctx: UploadContext; release: () => void; staged: { discarded: number; written: number } } {
  let release!: () => void;
  const staged = { discarded: 0, written: 0 };
  const bytes = Buffer.from('hello');
  const st = {
    bytes: 0,
    write: async (b: Uint8Array) => {
      staged.written += b.length;
      st.bytes += b.length;
    },
    finish: async () => {
      await new Promise<void>((r) => (release = r));
      return { bytes: bytes.length, sha256: meta.sha256.toString('hex') };
    },
    discard: async () => {
      staged.discarded++;
    },
  };
  const storage = {
    get: async () => undefined,
    stage: () => new Promise<StagedUpload>((r) => (release = () => r(st as unknown as StagedUpload))),
  } as unknown as UploadContext['storage'];
  return { ctx: { storage, maxFileBytes: 1 << 20, fileRoot: '/nonexistent', limits: resolveLimits(undefined) }, release: () => release(), staged };
}

// as the wire delivers it: every string field present (proto3 defaults)
const meta = { resource_kind: '', resource_name: '', method: '', ...fileMeta('f-1', 'a.txt', Buffer.from('hello')) } as unknown as FileMetadata__Output;
const who = { kind: 'fleet', label: 'test' } as const;

describe('a file whose call ends while it is being staged', () => {
  it('discard() during stage(): the staging that arrives afterwards is discarded, and begin() fails', async () => {
    const h = harness();
    const f = new FileReceiver(who, h.ctx);
    const begun = f.begin(meta);
    await new Promise((r) => setImmediate(r)); // begin() is now awaiting stage()
    await f.discard();
    h.release();
    await expect(begun).rejects.toThrow(/being staged/);
    expect(h.staged.discarded).toBe(1);
  });

  it('discard() during finish(): finish() fails instead of handing over a discarded staging; later chunks are refused', async () => {
    const h = harness();
    const f = new FileReceiver(who, h.ctx);
    const begun = f.begin(meta);
    await new Promise((r) => setImmediate(r));
    h.release();
    expect(await begun).toBe(false);
    await f.chunk(Buffer.from('hello'));
    const finished = f.finish();
    await new Promise((r) => setImmediate(r)); // finish() is now awaiting the staging's finish()
    await f.discard();
    h.release();
    await expect(finished).rejects.toThrow(/being staged/);
    expect(h.staged.discarded).toBe(1);
    await expect(f.chunk(Buffer.from('x'))).rejects.toThrow(/being staged/);
    expect(h.staged.written).toBe(5);
  });
});
