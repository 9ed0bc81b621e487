/**
 * Receiving one file of an upload: the per-file path that Upload (one file per call) and
 * UploadBatch (several small files per call, batch.ts) share, so both check a file the same way.
 *
 *   metadata ─► bounds (names, tags, size, sha256, file name) ─► actAs(part) from the credential
 *            ─► (part, id) committed? same content: ALREADY_HAVE (no chunks needed), other: ALREADY_EXISTS
 *            ─► storage.stage(size)
 *   chunk    ─► ≤ declared size ─► CaptureCheck (frames as they arrive) + StagedUpload (size/sha256 running)
 *   finish   ─► sizes and digest equal, capture header's part is the upload's ─► ready to commit
 *
 * Every refusal about the file is a RequestRejected (INVALID_ARGUMENT, PERMISSION_DENIED,
 * ALREADY_EXISTS); anything else (storage, fds) is a server fault. The caller commits.
 */
import * as grpc from '@grpc/grpc-js';
import type { FileMetadata__Output } from '@edgecap/proto';
import { CaptureCheck } from './capture-check.js';
import { RequestRejected, invalid } from './errors.js';
import { actAs } from './identity.js';
import type { Principal } from './keys.js';
import type { IngestLimits } from './settings.js';
import { checkFileId, checkFileName } from './paths.js';
import { sameContent, type IngestStorage, type NewFileRecord, type StagedUpload } from './storage.js';

export interface UploadContext {
  storage: IngestStorage;
  maxFileBytes: number;
  fileRoot: string;
  limits: IngestLimits;
}

const DATA_TYPES: Record<string, NewFileRecord['data_type']> = {
  DATA_TYPE_TABULAR: 'tabular',
  DATA_TYPE_BINARY: 'binary',
  DATA_TYPE_FILE: 'file',
};

/** Strings a client names things with: bounded, so an index record stays small. */
export function checkNames(o: Record<string, string>, tags: readonly string[], l: IngestLimits, where: string): void {
  for (const [k, v] of Object.entries(o)) {
    if (Buffer.byteLength(v) > l.maxNameBytes) throw invalid(`${where}.${k} is longer than ${l.maxNameBytes} bytes`, { field: k, limit: l.maxNameBytes });
  }
  if (tags.length > l.maxTags) throw invalid(`${where}.tags has ${tags.length} tags (limit ${l.maxTags})`, { field: 'tags', limit: l.maxTags });
  tags.forEach((t, i) => {
    if (Buffer.byteLength(t) > l.maxTagBytes) throw invalid(`${where}.tags[${i}] is longer than ${l.maxTagBytes} bytes`, { field: 'tags', limit: l.maxTagBytes });
  });
}

/** Validated upload metadata, as the storage will record it. */
export function checkMetadata(md: FileMetadata__Output, maxFileBytes: number, fileRoot: string, l: IngestLimits): NewFileRecord & { sha256raw: Buffer } {
  const fileId = checkFileId(md.file_id);
  checkNames({ part_id: md.part_id, resource_kind: md.resource_kind, resource_name: md.resource_name, method: md.method, source: md.source }, md.tags ?? [], l, 'metadata');
  const dataType = DATA_TYPES[md.data_type as unknown as string];
  if (!dataType) throw invalid(`metadata.data_type ${String(md.data_type)} is not one of DATA_TYPE_TABULAR, DATA_TYPE_BINARY, DATA_TYPE_FILE`);
  const size = Number(md.size);
  if (!Number.isSafeInteger(size) || size < 0) throw invalid(`metadata.size ${String(md.size)} is not a valid byte count`);
  if (size > maxFileBytes) throw invalid(`file size ${size} exceeds the server limit of ${maxFileBytes} bytes`, { size, limit: maxFileBytes });
  const sha = Buffer.from(md.sha256 ?? []);
  if (sha.length !== 32) throw invalid(`metadata.sha256 must be 32 bytes, got ${sha.length}`);
  let fileName: string | undefined;
  if (dataType === 'file') {
    checkFileName(md.file_name, `${fileRoot}/files/x/y`);
    fileName = md.file_name;
  }
  const rec: NewFileRecord & { sha256raw: Buffer } = {
    file_id: fileId,
    part_id: md.part_id,
    data_type: dataType,
    resource_kind: md.resource_kind,
    resource_name: md.resource_name,
    method: md.method,
    tags: [...(md.tags ?? [])],
    size,
    sha256: sha.toString('hex'),
    mtime_ms: Number(md.mtime_ms ?? 0),
    source: md.source,
    sha256raw: sha,
  };
  if (fileName !== undefined) rec.file_name = fileName;
  return rec;
}

/**
 * Fill in what a checked capture file says about itself. Its header's part must be the
 * upload's (a device cannot smuggle another part's file in under its own name, nor the
 * reverse); kind, resource and method come from the header (authoritative).
 */
export function describeCapture(rec: NewFileRecord, c: ReturnType<CaptureCheck['finish']>, who: Principal): void {
  if (c.part_id && c.part_id !== rec.part_id) {
    if (who.kind === 'device') {
      throw new RequestRejected(grpc.status.PERMISSION_DENIED, `capture file header part_id ${JSON.stringify(c.part_id)} is not this key's part ${JSON.stringify(rec.part_id)}`);
    }
    if (rec.part_id !== '') throw invalid(`capture file header part_id ${JSON.stringify(c.part_id)} does not match metadata.part_id ${JSON.stringify(rec.part_id)}`, { field: 'part_id' });
    rec.part_id = c.part_id;
  }
  rec.capture = c.info;
  rec.resource_kind = c.kind;
  rec.resource_name = c.name;
  rec.method = c.method;
}

/**
 * Feed the call's messages one at a time to `onMessage` (paused while it runs: disk writes
 * apply backpressure to the sender). `onMessage` returns true to stop reading early. Resolves
 * only on a clean half-close of a call that is not cancelled (nor past its deadline); `abort`
 * fails it from outside (the progress watch).
 */
export function consume<T>(call: grpc.ServerReadableStream<T, unknown>, onMessage: (m: T) => Promise<boolean>, abort?: (fail: (e: unknown) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let chain: Promise<unknown> = Promise.resolve();
    let done = false;
    const fail = (e: unknown): void => {
      if (done) return;
      done = true;
      call.pause();
      reject(e);
    };
    abort?.(fail);
    call.on('data', (m: T) => {
      call.pause();
      chain = chain
        .then(() => (done ? true : onMessage(m)))
        .then((stop) => {
          if (done) return;
          if (stop) {
            done = true;
            resolve();
          } else call.resume();
        }, fail);
    });
    call.on('end', () => {
      chain = chain.then(() => {
        if (done) return;
        if (call.cancelled) return fail(new RequestRejected(grpc.status.CANCELLED, 'upload cancelled by the client'));
        const deadline = call.getDeadline();
        if (deadline instanceof Date ? deadline.getTime() <= Date.now() : Number.isFinite(deadline) && deadline <= Date.now()) {
          return fail(new RequestRejected(grpc.status.DEADLINE_EXCEEDED, 'upload passed its deadline'));
        }
        done = true;
        resolve();
      });
    });
    call.on('error', fail);
    call.on('cancelled', () => fail(new RequestRejected(grpc.status.CANCELLED, 'upload cancelled by the client')));
  });
}

const cancelledMidway = (): RequestRejected => new RequestRejected(grpc.status.CANCELLED, 'upload ended while this file was being staged');

/** Work done on an upload between two yields to the event loop. */
const SLICE_BYTES = 1024 * 1024;

/** What a received file comes to: held already, or verified and staged for the caller to commit. */
export type Received = { kind: 'already_have'; file_id: string; stored_bytes: number } | { kind: 'ready'; staged: StagedUpload; rec: NewFileRecord };

/** One file of an upload, from its metadata to a verified staging (see the header). */
export class FileReceiver {
  private meta: ReturnType<typeof checkMetadata> | undefined;
  private staged: StagedUpload | undefined;
  private check: CaptureCheck | undefined;
  private early: Received | undefined;
  /**
   * discard() ran. The call's handler discards in its finally as soon as the call fails, while
   * the step in progress (a stage(), a write, a finish()) may still be awaiting: that step must
   * not leave a staging behind it.
   */
  private closed = false;
  /** Bytes declared by the metadata (after it passed its bounds). */
  declared = 0;

  constructor(
    private readonly who: Principal,
    private readonly ctx: UploadContext,
  ) {}

  get started(): boolean {
    return this.meta !== undefined;
  }

  /** Metadata: bounds, identity, dedup, staging. True when the file is held already (send no chunks). */
  async begin(md: FileMetadata__Output): Promise<boolean> {
    const { storage, limits } = this.ctx;
    const meta = checkMetadata(md, this.ctx.maxFileBytes, this.ctx.fileRoot, limits);
    meta.part_id = actAs(this.who, meta.part_id, 'upload');
    this.meta = meta;
    this.declared = meta.size;
    const have = await storage.get(meta.part_id, meta.file_id);
    if (have && sameContent(have, meta.size, meta.sha256)) {
      // Committed before with the same content: store nothing, read no further.
      this.early = { kind: 'already_have', file_id: meta.file_id, stored_bytes: have.size };
      return true;
    }
    if (meta.data_type !== 'file') this.check = new CaptureCheck(meta.file_id, { maxRanges: limits.maxRangesPerFile });
    const staged = await storage.stage(meta.size);
    if (this.closed) {
      await staged.discard().catch(() => undefined);
      throw cancelledMidway();
    }
    this.staged = staged;
    return false;
  }

  /** The next piece of the file: checked, hashed and written as it arrives. */
  async chunk(chunk: Uint8Array): Promise<void> {
    if (this.closed) throw cancelledMidway();
    const meta = this.meta!;
    const staged = this.staged!;
    if (staged.bytes + chunk.length > meta.size) {
      throw invalid(`size mismatch: received more than the declared ${meta.size} bytes`, { declared: meta.size });
    }
    // A slice at a time: each slice's disk write yields to the event loop, so one big chunk
    // never holds other callers up for long.
    for (let off = 0; off < chunk.length; off += SLICE_BYTES) {
      const slice = chunk.subarray(off, Math.min(chunk.length, off + SLICE_BYTES));
      this.check?.push(slice);
      await staged.write(slice);
    }
  }

  /** All chunks in: verify. A 'ready' result hands its staging to the caller (who commits or discards it). */
  async finish(): Promise<Received> {
    if (this.early) return this.early;
    const meta = this.meta;
    const staged = this.staged;
    if (!meta || !staged) throw invalid('upload ended without metadata');
    const { bytes, sha256 } = await staged.finish();
    if (this.closed) throw cancelledMidway(); // discard() took the staging meanwhile
    if (bytes !== meta.size) throw invalid(`size mismatch: metadata.size is ${meta.size} bytes, received ${bytes}`, { declared: meta.size, received: bytes });
    if (sha256 !== meta.sha256) throw invalid(`checksum mismatch: sha256 of the received bytes is ${sha256}, metadata.sha256 is ${meta.sha256}`);
    const { sha256raw: _, ...rec } = meta;
    if (this.check) describeCapture(rec, this.check.finish(), this.who);
    this.staged = undefined; // the caller owns it now
    return { kind: 'ready', staged, rec };
  }

  /** Drop what is staged and not handed over (cancel, refusal, error). */
  async discard(): Promise<void> {
    this.closed = true;
    const st = this.staged;
    this.staged = undefined;
    if (st) await st.discard().catch(() => undefined);
  }
}
