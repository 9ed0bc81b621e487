/**
 * Embedded storage: files on disk plus an LMDB index keyed by file id.
 *
 *   <dataDir>/staging/<random>.part            upload in progress (never visible to readers)
 *   <dataDir>/blobs/<part>/<id[0:2]>/<id>.capture   committed capture files
 *   <dataDir>/packs/<part>/<r[0:2]>/<r>.pack   small capture files (≤ MEMORY_STAGE_BYTES)
 *                                              of one group commit, back to back; each record
 *                                              names its pack and `offset`
 *   <dataDir>/files/<part>/<source>/<name>     committed arbitrary files, byte for byte
 *   <dataDir>/conflicts/<part>/<id>/<name>     an arbitrary file whose name a stored file or
 *                                              folder already holds (kept, never overwritten)
 *   <dataDir>/index.lmdb                       files: part \0 file_id -> FileRecord
 *                                              gaps:  stream+range+reason -> ReportedGap
 *                                              keys:  key id -> DeviceKey (hash only)
 *                                              meta:  schema version, token secret
 *
 * Commit (one at a time, under a mutex):
 *   stage: write chunks to staging/, verify size + sha256 (+ capture header), fsync
 *   ──► re-check index (the same part committed this id before: ALREADY_HAVE when size and
 *       sha256 equal, else ALREADY_EXISTS — nothing is overwritten)
 *   ──► link into place (never replaces an existing file), unlink staging, fsync the folder
 *   ──► index put, await commit + flush         ◄── the commit point
 * Small capture files held in memory skip staging: a group writes them into one pack per part
 * (one create and one fsync for many files: creating a file is the ingest's largest per-file
 * cost), fsynced with the rest of the group before the index put.
 * A crash before the index put leaves at most a staged file or a renamed file or pack without an
 * index entry; `recover()` (run by the server at start) deletes both, so nothing
 * half-written is ever visible and a re-upload commits exactly once.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { EdgecapError, ErrorCodes, ensureRoomForNewLmdb, fsyncDirSync, logger, parentsChangedByMkdir } from '@edgecap/core';
import type { Gap as FrameGap } from '@edgecap/format';
import { RequestRejected, invalid } from './errors.js';
import { newDeviceKey, type DeviceKey, type KeyRegistry, type NewDeviceKey } from './keys.js';
import { segmentOf } from './paths.js';

const log = logger('ingest.storage');

export type StoredDataType = 'tabular' | 'binary' | 'file';

/** What a decoded capture file holds, computed once at commit. */
export interface CaptureInfo {
  readings: number;
  first_seq: number | undefined;
  last_seq: number | undefined;
  /** Received seqs as sorted, merged inclusive runs. */
  ranges: [number, number][];
  /** GAP frames inside the file (explained losses recorded by the edge). */
  gaps: FrameGap[];
  /** Corrupt or truncated regions the reader skipped. */
  problems: number;
  header_type: 'tabular' | 'binary';
  mime_type?: string;
}

export interface FileRecord {
  file_id: string;
  part_id: string;
  data_type: StoredDataType;
  /** Capture files: from the file header (authoritative). Empty for arbitrary files. */
  resource_kind: string;
  resource_name: string;
  method: string;
  tags: string[];
  size: number;
  /** Hex SHA-256 of the stored bytes. */
  sha256: string;
  mtime_ms: number;
  source: string;
  /** Arbitrary files: name as sent by the edge. */
  file_name?: string;
  /** Where the bytes are, relative to the data dir ('/'-separated). */
  path: string;
  /** Set when `path` is a pack holding several files: this file is `size` bytes from here. */
  offset?: number;
  received_at_ms: number;
  capture?: CaptureInfo;
}

export type NewFileRecord = Omit<FileRecord, 'path' | 'received_at_ms'>;

export interface ReportedGap {
  part_id: string;
  resource_kind: string;
  resource_name: string;
  method: string;
  from_seq: number;
  to_seq: number;
  reason: string;
  time_us: number;
}

export interface CommitResult {
  status: 'committed' | 'already_have';
  record: FileRecord;
}

/** An upload being received: bytes go to a private temp file until commit. */
export interface StagedUpload {
  readonly bytes: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Flush and fsync; returns the length and hex sha256 of what was written. */
  finish(): Promise<{ bytes: number; sha256: string }>;
  /** The staged bytes (after finish), for content checks. */
  read(): Promise<Uint8Array>;
  /** What has been written so far, read back in bounded chunks (the viam service converts streamed uploads this way). */
  chunks(): AsyncIterable<Uint8Array>;
  discard(): Promise<void>;
}

/**
 * Storage behind the ingest server. The embedded default is `FileStorage`; a PostgreSQL
 * backend implements the same interface (`kind: 'postgres'`).
 */
export interface IngestStorage extends KeyRegistry {
  readonly kind: string;
  /** The file `partId` committed under `fileId` (dedup is per part: ids of two parts never meet). */
  get(partId: string, fileId: string): Promise<FileRecord | undefined>;
  /** `size`: the declared size, when known (a small upload may then be held in memory). */
  stage(size?: number): Promise<StagedUpload>;
  /**
   * Atomically store a finished, verified upload; exactly one commit per (part, file id).
   * The same id with other content throws `contentConflict` (ALREADY_EXISTS).
   */
  commit(staged: StagedUpload, rec: NewFileRecord): Promise<CommitResult>;
  /** Record explained gaps; idempotent. Returns how many were accepted. */
  putGaps(gaps: ReportedGap[]): Promise<number>;
  /** Remove reported gaps (admin/test use). Returns how many were removed. */
  deleteGaps(gaps: ReportedGap[]): Promise<number>;
  files(): AsyncIterable<FileRecord>;
  gaps(): AsyncIterable<ReportedGap>;
  /** The stored bytes of a committed file. */
  readBytes(rec: FileRecord): Promise<Uint8Array>;
  close(): Promise<void>;
}

const STAGING = 'staging';
const BLOBS = 'blobs';
const FILES = 'files';
const CONFLICTS = 'conflicts';
const PACKS = 'packs';
const INDEX = 'index.lmdb';
/**
 * Index layout version: 2 keys files by part + id (1 keyed them by id alone); 3 adds packs
 * (records with an `offset`). An index newer than this is refused: an older reader would serve
 * a pack whole (servers of layout 2 did not check; the README says not to downgrade past packs).
 */
const SCHEMA = 3;

/**
 * Every async LMDB write goes through this. lmdb-js answers a failed commit (full disk, EIO)
 * with "Commit failed" and hangs the real error on a second promise (`commitError`) that
 * nobody awaits: unhandled, it kills the process. Here that second promise is consumed and
 * its errno becomes the thrown error's `code` (ENOSPC → the server answers UNAVAILABLE, a
 * status the edge retries). The environment recovers once space is back (tested).
 */
async function lmdbWrite<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    const pending = (e as { commitError?: unknown } | undefined)?.commitError;
    if (!(pending instanceof Promise)) throw e;
    // Rejected in the same native callback that rejected `e`, so it has settled by now; the
    // timeout only guards against a future lmdb-js that settles it later or never.
    const cause = await Promise.race([
      pending.then(() => undefined, (c: unknown) => c),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000).unref()),
    ]);
    throw new StorageWriteError(cause);
  }
}

/**
 * An index write that did not commit. Its `cause` carries the errno name as `code` (ENOSPC,
 * EIO, ...), which is what the server maps to a retryable status.
 */
export class StorageWriteError extends EdgecapError {
  constructor(lmdbError: unknown) {
    const errno = (lmdbError as { code?: unknown } | undefined)?.code;
    // LMDB's own "map full" (MDB_MAP_FULL) is a full store, like a full disk.
    const name = typeof errno === 'number' ? (errnoName(errno) ?? (errno === -30792 ? 'ENOSPC' : 'EIO')) : typeof errno === 'string' ? errno : 'EIO';
    const message = (lmdbError as Error | undefined)?.message ?? 'commit failed';
    super(ErrorCodes.WRITE_FAILED, `ingest index write failed (${name}): ${message}`, { cause: Object.assign(new Error(message), { code: name }) });
    this.name = 'StorageWriteError';
  }
}

function errnoName(n: number): string | undefined {
  for (const [k, v] of Object.entries(os.constants.errno)) if (v === n) return k;
  return undefined;
}

/** The index key of a file: dedup is per part. */
export const fileKey = (partId: string, fileId: string): string => `${partId}\0${fileId}`;

/**
 * The answer to an upload whose (part, id) was committed before: true (ALREADY_HAVE) only when
 * the content is the same; other content under a committed id is refused as ALREADY_EXISTS,
 * naming both digests, and nothing is overwritten.
 */
export function sameContent(have: Pick<FileRecord, 'size' | 'sha256' | 'file_id'>, size: number, sha256: string): true {
  if (have.size === size && have.sha256 === sha256) return true;
  throw new RequestRejected(
    grpc.status.ALREADY_EXISTS,
    `file_id ${JSON.stringify(have.file_id)} was committed before with other content (stored ${have.size} bytes sha256 ${have.sha256}, this upload ${size} bytes sha256 ${sha256}): nothing was overwritten`,
    { stored_sha256: have.sha256, upload_sha256: sha256 },
  );
}

function gapKey(g: ReportedGap): string {
  return [g.part_id, g.resource_kind, g.resource_name, g.method, String(g.from_seq).padStart(16, '0'), String(g.to_seq).padStart(16, '0'), g.reason].join('\0');
}

function fsyncDirSyncBestEffort(dir: string): void {
  try {
    fsyncDirSync(dir);
  } catch (e) {
    log.debug({ dir, err: (e as Error).message }, 'could not fsync the folder holding a new data dir');
  }
}

/**
 * How many files or folders a group commit opens at once beyond those its uploads hold already.
 * Concurrent fsyncs still share the journal commit; unbounded, a group of many parts (each a pack
 * folder and a part folder to fsync) opened more fds than a small limit allows, failed EMFILE as a
 * whole, gave its folders back to the next, larger group — and no group ever committed again.
 */
const GROUP_FS_CONCURRENCY = 8;

/** `fn` over `items`, at most `limit` running at once; rejects with the first error once all have run. */
async function forEachBounded<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let first: { e: unknown } | undefined;
  const lane = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) {
      try {
        await fn(n.value);
      } catch (e) {
        first ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  if (first) throw first.e;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * An upload being received: bytes go to a staging file and the hash as they arrive. `durable`
 * staging (the embedded store, where this file becomes the stored copy) is fsynced on finish;
 * PostgreSQL staging is scratch space (the database COMMIT is what makes it durable).
 */
export class StagedFile implements StagedUpload {
  private readonly hash = createHash('sha256');
  private n = 0;
  private closed = false;
  constructor(
    readonly file: string,
    private readonly fh: fsp.FileHandle,
    private readonly durable = true,
  ) {}

  get bytes(): number {
    return this.n;
  }

  async write(chunk: Uint8Array): Promise<void> {
    // Hash first: it runs on this thread while the write below waits on the disk.
    this.hash.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
    this.n += chunk.length;
  }

  async finish(): Promise<{ bytes: number; sha256: string }> {
    // Durable staging is fsynced by the group commit (settle), all of a group's files at once:
    // one fsync per upload on its own was most of the ingest's cost for a small file.
    if (!this.durable) {
      await this.fh.close();
      this.closed = true;
    }
    return { bytes: this.n, sha256: this.hash.digest('hex') };
  }

  /** Make the written bytes durable and release the handle (FileStorage's group commit). */
  async settle(): Promise<void> {
    if (this.closed) return;
    if (this.durable) await this.fh.sync();
    this.closed = true;
    await this.fh.close();
  }

  async read(): Promise<Uint8Array> {
    return fsp.readFile(this.file);
  }

  chunks(): AsyncIterable<Uint8Array> {
    return fs.createReadStream(this.file, { highWaterMark: 1024 * 1024 });
  }

  async discard(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
    await fsp.rm(this.file, { force: true });
  }
}

/** Uploads declared this small are held in memory and written in place by their group commit. */
export const MEMORY_STAGE_BYTES = 64 * 1024;

const fsyncFd = (fd: number): Promise<void> => new Promise((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())));

/**
 * The folders made under a store's data dir, and the folders whose entries those mkdirs changed.
 * A new folder's name is durable only once its parent is fsynced (POSIX; ext4's journal happens
 * to cover it, XFS and btrfs need not): a group commit fsyncs the parents dirtied before it, with
 * its files, before the index names anything under them. Else a power cut could take a whole
 * fan-out folder of acknowledged files, which the edge has deleted.
 */
class Folders {
  /** Made already: a recursive mkdir per upload was a walk of lstat calls. */
  private readonly made = new Set<string>();
  private dirty = new Set<string>();

  constructor(private readonly root: string) {}

  /** mkdir -p `dir`, unless made already; `again`: it was removed since (by hand). */
  ensure(dir: string, again = false): void {
    if (!again && this.made.has(dir)) return;
    const first = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.made.add(dir);
    for (const p of parentsChangedByMkdir(dir, first, this.root)) this.dirty.add(p);
  }

  /** The parents dirtied so far, for a group commit to fsync (given back if that fails). */
  take(): string[] {
    const t = [...this.dirty];
    this.dirty = new Set();
    return t;
  }

  giveBack(dirs: readonly string[]): void {
    for (const d of dirs) this.dirty.add(d);
  }
}

/** Create `abs` for writing, never over a file (O_EXCL); a folder removed since it was made (by hand) is made again, once. */
function openExclusive(abs: string, folders: Folders): number {
  try {
    return fs.openSync(abs, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    folders.ensure(path.dirname(abs), true);
    return fs.openSync(abs, 'wx', 0o600);
  }
}

/** A file a group commit wrote in place: fsynced and closed by settle() (or closed by close()), once. */
class HeldFile {
  constructor(public fd: number | undefined) {}

  async settle(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      await fsyncFd(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * A small upload held in memory until its group commit (FileStorage): no staging file, no link
 * and unlink; the commit writes it at its final name (O_EXCL, never replacing a file) and fsyncs
 * it with the rest of the group. Hashed as its chunks arrive, like StagedFile.
 */
export class MemoryStaged implements StagedUpload {
  private readonly hash = createHash('sha256');
  private readonly parts: Uint8Array[] = [];
  private n = 0;
  private whole: Buffer | undefined;
  /** The file written in place, open until settle() fsyncs and closes it. */
  held: HeldFile | undefined;

  get bytes(): number {
    return this.n;
  }

  async write(chunk: Uint8Array): Promise<void> {
    // The caller refuses bytes past the declared size; this only bounds memory if it did not.
    if (this.n + chunk.length > MEMORY_STAGE_BYTES) throw new EdgecapError(ErrorCodes.STATE, `in-memory staging holds at most ${MEMORY_STAGE_BYTES} bytes`);
    this.hash.update(chunk);
    this.parts.push(chunk);
    this.n += chunk.length;
  }

  async finish(): Promise<{ bytes: number; sha256: string }> {
    this.whole = Buffer.concat(this.parts, this.n);
    this.parts.length = 0;
    return { bytes: this.n, sha256: this.hash.digest('hex') };
  }

  get buffer(): Buffer {
    return this.whole ?? Buffer.concat(this.parts, this.n);
  }

  async read(): Promise<Uint8Array> {
    return this.buffer;
  }

  async *chunks(): AsyncIterable<Uint8Array> {
    yield this.buffer;
  }

  async settle(): Promise<void> {
    await this.held?.settle();
  }

  async discard(): Promise<void> {
    this.held?.close();
  }
}

/**
 * A pack a group commit is writing: the small capture files of one part, back to back, at
 * positions of their own (a failed write never shifts the next file). fsynced and closed by
 * settle(), with the rest of the group, before the index put.
 */
class PackWriter extends HeldFile {
  private at = 0;
  constructor(
    readonly rel: string,
    abs: string,
    folders: Folders,
  ) {
    super(openExclusive(abs, folders));
  }

  /** Appends one file; returns its offset. */
  append(b: Uint8Array): number {
    const off = this.at;
    for (let w = 0; w < b.length; ) w += fs.writeSync(this.fd!, b, w, b.length - w, off + w);
    this.at += b.length;
    return off;
  }
}

interface PendingCommit {
  staged: StagedFile | MemoryStaged;
  rec: NewFileRecord;
  resolve(r: CommitResult): void;
  reject(e: unknown): void;
}

/** A tiny FIFO mutex: commits run one at a time. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export class FileStorage implements IngestStorage {
  readonly kind = 'files';
  private readonly root: RootDatabase;
  private readonly fileDb: Database<FileRecord, string>;
  private readonly gapDb: Database<ReportedGap, string>;
  private readonly keyDb: Database<DeviceKey, string>;
  private readonly metaDb: Database<unknown, string>;
  private readonly mutex = new Mutex();
  private queue: PendingCommit[] = [];
  private closed = false;
  private readonly folders: Folders;

  constructor(readonly dataDir: string) {
    const first = fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // A new data dir's own name, once, as far as its parent lets us open it (no commit depends on
    // a folder outside the store being readable).
    if (first !== undefined) fsyncDirSyncBestEffort(path.dirname(first));
    this.folders = new Folders(dataDir);
    for (const d of [STAGING, BLOBS, FILES]) this.folders.ensure(path.join(dataDir, d));
    // No event-turn batching: its implicit batch promise is one more that a failed commit
    // rejects with nobody listening (an unhandled rejection, the process dies).
    ensureRoomForNewLmdb(path.join(dataDir, INDEX));
    this.root = open({ path: path.join(dataDir, INDEX), maxDbs: 6, compression: false, eventTurnBatching: false });
    this.fileDb = this.root.openDB<FileRecord, string>({ name: 'files' });
    this.gapDb = this.root.openDB<ReportedGap, string>({ name: 'gaps' });
    this.keyDb = this.root.openDB<DeviceKey, string>({ name: 'keys' });
    this.metaDb = this.root.openDB<unknown, string>({ name: 'meta' });
    this.upgrade();
  }

  /** Index layout 1 → 2: re-key files by part + id (stored bytes stay where they are); 2 → 3: no change to old records. */
  private upgrade(): void {
    const v = (this.metaDb.get('schema') as number | undefined) ?? 1;
    if (v === SCHEMA) return;
    if (v > SCHEMA) {
      void this.root.close();
      throw new EdgecapError(ErrorCodes.STATE, `${path.join(this.dataDir, INDEX)} has index layout ${v}; this ingest reads up to ${SCHEMA}: run a newer edgecap`);
    }
    this.root.transactionSync(() => {
      if (v < 2) {
        for (const { key, value } of this.fileDb.getRange()) {
          if (key.includes('\0')) continue;
          this.fileDb.removeSync(key);
          this.fileDb.putSync(fileKey(value.part_id, value.file_id), value);
        }
      }
      this.metaDb.putSync('schema', SCHEMA);
    });
    log.info({ from: v, to: SCHEMA }, 'ingest index upgraded');
  }

  /**
   * Start-up recovery (server only, before accepting uploads): delete staged uploads and any
   * stored file that has no index entry (a crash between placing it and the index put).
   */
  recover(): { staged: number; orphans: number } {
    let staged = 0;
    let orphans = 0;
    const stagingDir = path.join(this.dataDir, STAGING);
    for (const e of fs.readdirSync(stagingDir)) {
      fs.rmSync(path.join(stagingDir, e), { recursive: true, force: true });
      staged++;
    }
    const known = new Set<string>();
    for (const { value } of this.fileDb.getRange()) known.add(value.path);
    // Iterative: the depth of a stored tree is the client's choice.
    const stack = [BLOBS, PACKS, FILES, CONFLICTS];
    for (let rel = stack.pop(); rel !== undefined; rel = stack.pop()) {
      const abs = path.join(this.dataDir, rel);
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      for (const e of entries) {
        const r = `${rel}/${e.name}`;
        if (e.isDirectory()) stack.push(r);
        else if (!known.has(r)) {
          fs.rmSync(path.join(this.dataDir, r), { force: true });
          orphans++;
        }
      }
    }
    if (staged || orphans) log.info({ staged, orphans }, 'removed uncommitted files left by an earlier run');
    return { staged, orphans };
  }

  async get(partId: string, fileId: string): Promise<FileRecord | undefined> {
    return this.fileDb.get(fileKey(partId, fileId));
  }

  getSync(partId: string, fileId: string): FileRecord | undefined {
    return this.fileDb.get(fileKey(partId, fileId));
  }

  async stage(size?: number): Promise<StagedUpload> {
    this.assertOpen();
    if (size !== undefined && size <= MEMORY_STAGE_BYTES) return new MemoryStaged();
    const file = path.join(this.dataDir, STAGING, `${randomBytes(12).toString('hex')}.part`);
    const fh = await fsp.open(file, 'wx', 0o600);
    return new StagedFile(file, fh);
  }

  /** Where a file goes: capture files by part and id; arbitrary files by part, root and name. */
  private finalPath(rec: NewFileRecord): string {
    const part = segmentOf(rec.part_id);
    if (rec.data_type !== 'file') return `${BLOBS}/${part}/${rec.file_id.slice(0, 2)}/${rec.file_id}.capture`;
    return `${FILES}/${part}/${segmentOf(rec.source)}/${rec.file_name ?? rec.file_id}`;
  }

  /**
   * A new pack for a group's small capture files of one part, fanned out by its random name as
   * blobs are by id: at most 256 folders per part (Folders' set and recover()'s walk stay bounded).
   */
  private newPack(rec: NewFileRecord): PackWriter {
    const name = randomBytes(12).toString('hex');
    const dirRel = `${PACKS}/${segmentOf(rec.part_id)}/${name.slice(0, 2)}`;
    const dir = path.join(this.dataDir, dirRel);
    const rel = `${dirRel}/${name}.pack`;
    this.folders.ensure(dir);
    return new PackWriter(rel, path.join(this.dataDir, rel), this.folders);
  }

  /** Only the folder of an upload's own id under conflicts/: no stored name can hold it. */
  private conflictPath(rec: NewFileRecord): string {
    const base = (rec.file_name ?? rec.file_id).split('/').at(-1)!;
    return `${CONFLICTS}/${segmentOf(rec.part_id)}/${rec.file_id}/${base}`;
  }

  /**
   * Put the staged bytes at `rel` without ever replacing a file: link (fails on EEXIST), then
   * drop the staging name. A taken name gets `~<id>` appended; a name blocked by a stored file
   * or folder (`reports` vs `reports/2024.csv`), or too long, goes under conflicts/.
   */
  private async place(staged: StagedFile | MemoryStaged, rec: NewFileRecord): Promise<string> {
    const tries = [this.finalPath(rec)];
    if (rec.data_type === 'file') tries.push(`${tries[0]}~${rec.file_id}`, this.conflictPath(rec));
    let last: unknown;
    for (const rel of tries) {
      const abs = path.join(this.dataDir, rel);
      try {
        const dir = path.dirname(abs);
        this.folders.ensure(dir);
        if (staged instanceof MemoryStaged) {
          // Small: written in place now (O_EXCL: never over a file), fsynced by the group.
          const fd = openExclusive(abs, this.folders);
          try {
            const b = staged.buffer;
            for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off, b.length - off);
          } catch (e) {
            fs.closeSync(fd);
            fs.rmSync(abs, { force: true });
            throw e;
          }
          staged.held = new HeldFile(fd);
          return rel;
        }
        try {
          await fsp.link(staged.file, abs);
        } catch (e) {
          // A folder made earlier and removed since (by hand): make it again, once.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(staged.file)) throw e;
          this.folders.ensure(dir, true);
          await fsp.link(staged.file, abs);
        }
        // unlink, not rm: rm's lstat first is a syscall per upload for nothing (it is a file).
        await fsp.unlink(staged.file);
        return rel;
      } catch (e) {
        last = e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'EISDIR' && code !== 'ENAMETOOLONG') throw e;
      }
    }
    throw invalid(`file_name ${JSON.stringify(rec.file_name)} cannot be stored: ${(last as Error).message}`, { field: 'file_name' });
  }

  async commit(staged: StagedUpload, rec: NewFileRecord): Promise<CommitResult> {
    this.assertOpen();
    if (!(staged instanceof StagedFile) && !(staged instanceof MemoryStaged)) throw new EdgecapError(ErrorCodes.STATE, 'foreign staged upload');
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ staged, rec, resolve, reject });
      if (this.queue.length === 1) void this.mutex.run(() => this.commitQueued());
    });
  }

  /**
   * Group commit: every upload that finished staging while the previous group was committing
   * goes in the next group: placed in order, one fsync per folder, one LMDB transaction, one
   * flush. Each caller is answered only after that flush: the ack still follows a durable
   * commit, and a (part, id) is still committed once (the index is re-checked inside the group).
   */
  private async commitQueued(): Promise<void> {
    const group = this.queue;
    this.queue = [];
    if (group.length === 0) return;
    const placed: { item: PendingCommit; record: FileRecord; dir: string }[] = [];
    // Decided in order (the index and the group so far), placed all at once: the first upload of
    // a (part, id) in the group is placed; later ones in the group wait for its record.
    const first = new Map<string, PendingCommit>();
    const later: { item: PendingCommit; key: string }[] = [];
    for (const item of group) {
      const { staged, rec } = item;
      const key = fileKey(rec.part_id, rec.file_id);
      const existing = this.fileDb.get(key);
      if (existing) {
        try {
          await staged.discard();
          sameContent(existing, rec.size, rec.sha256);
          item.resolve({ status: 'already_have', record: existing });
        } catch (e) {
          item.reject(e);
        }
        continue;
      }
      if (first.has(key)) later.push({ item, key });
      else first.set(key, item);
    }
    const records = new Map<string, FileRecord>();
    const packs = new Map<string, PackWriter>();
    /** Answered after the cleanup below: a caller that retries at once finds no leftover pack. */
    const refused: { item: PendingCommit; e: unknown }[] = [];
    /** A placed file that could not be made durable: the whole group fails, as a failed fsync below does. */
    let fault: { e: unknown } | undefined;
    const placeOne = async (item: PendingCommit, key: string): Promise<void> => {
      let rel: string;
      let offset: number | undefined;
      try {
        if (item.staged instanceof MemoryStaged && item.rec.data_type !== 'file') {
          // A small capture file: into the group's pack for its part.
          let pack = packs.get(item.rec.part_id);
          if (!pack) packs.set(item.rec.part_id, (pack = this.newPack(item.rec)));
          offset = pack.append(item.staged.buffer);
          rel = pack.rel;
        } else rel = await this.place(item.staged, item.rec);
      } catch (e) {
        await item.staged.discard();
        refused.push({ item, e });
        return;
      }
      const record: FileRecord = { ...item.rec, path: rel, ...(offset !== undefined && { offset }), received_at_ms: Date.now() };
      records.set(key, record);
      placed.push({ item, record, dir: path.dirname(path.join(this.dataDir, rel)) });
      // A small file written in place holds an fd until settled: settled now, in its lane, or a
      // group of many such files would hold one each at once. A failure fails the group (below).
      if (item.staged instanceof MemoryStaged && item.staged.held) await item.staged.settle().catch((e: unknown) => (fault ??= { e }));
    };
    await forEachBounded(first, GROUP_FS_CONCURRENCY, ([key, item]) => placeOne(item, key));
    for (const { item, key } of later) {
      const record = records.get(key);
      if (!record) {
        await placeOne(item, key); // the first could not be placed: this one tries
        continue;
      }
      try {
        await item.staged.discard();
        sameContent(record, item.rec.size, item.rec.sha256);
        placed.push({ item, record, dir: '' });
      } catch (e) {
        item.reject(e);
      }
    }
    // A pack none of whose files could be written (a full disk): closed and removed now, or each
    // such group would keep an fd and leave a pack nobody names until the next start.
    const named = new Set(placed.map((p) => p.record.path));
    for (const [part, pack] of packs) {
      if (named.has(pack.rel)) continue;
      pack.close();
      packs.delete(part);
      await fsp.rm(path.join(this.dataDir, pack.rel), { force: true }).catch(() => undefined);
    }
    for (const { item, e } of refused) item.reject(e);
    if (placed.length === 0) return;
    const parents = this.folders.take();
    try {
      // The group's bytes and folders (those holding its files, and those holding folders made
      // since the last group) made durable together (concurrent fsyncs share the journal
      // commit), all before the index entry that is the commit point.
      if (fault) throw fault.e;
      await Promise.all([
        ...placed.filter((p) => p.dir !== '').map((p) => p.item.staged.settle()),
        ...[...packs.values()].map((p) => p.settle()),
        forEachBounded(new Set([...placed.map((p) => p.dir).filter((d) => d !== ''), ...parents]), GROUP_FS_CONCURRENCY, fsyncDir),
      ]);
      await lmdbWrite(async () => {
        await this.root.transaction(() => {
          for (const p of placed) if (p.dir !== '') this.fileDb.put(fileKey(p.record.part_id, p.record.file_id), p.record);
        });
        await this.root.flushed;
      });
    } catch (e) {
      this.folders.giveBack(parents); // the next group fsyncs them
      // The placed files have no index entry: unlink them now (recover() would at the next
      // start), or a full disk stays full with bytes nobody can see. Handles not yet settled close.
      await Promise.all(placed.map((p) => p.item.staged.discard().catch(() => undefined)));
      for (const p of packs.values()) p.close();
      const paths = new Set(placed.filter((p) => p.dir !== '').map((p) => p.record.path));
      await Promise.all([...paths].map((rel) => fsp.rm(path.join(this.dataDir, rel), { force: true }).catch(() => undefined)));
      for (const p of placed) p.item.reject(e);
      return;
    }
    for (const p of placed) {
      if (p.dir === '') p.item.resolve({ status: 'already_have', record: p.record });
      else {
        log.debug({ file_id: p.record.file_id, path: p.record.path, size: p.record.size }, 'committed');
        p.item.resolve({ status: 'committed', record: p.record });
      }
    }
  }

  // ── keys: the registry lives in the same LMDB environment, so `edgecap keys` in another
  //    process and a running server see each other's writes at once (reads are not cached).

  lookupKey(keyId: string): DeviceKey | undefined {
    return this.keyDb.get(keyId);
  }

  anyKeys(): boolean {
    return this.keyDb.getKeysCount({ limit: 1 }) > 0;
  }

  async createKey(partId: string): Promise<NewDeviceKey> {
    this.assertOpen();
    const { record, secret } = newDeviceKey(partId);
    await lmdbWrite(async () => {
      await this.keyDb.put(record.key_id, record);
      await this.root.flushed;
    });
    return { key_id: record.key_id, part_id: partId, secret };
  }

  async listKeys(): Promise<DeviceKey[]> {
    return [...this.keyDb.getRange()].map((e) => e.value);
  }

  async revokeKey(keyId: string): Promise<boolean> {
    this.assertOpen();
    return lmdbWrite(async () => {
      const done = await this.root.transaction(() => {
        const k = this.keyDb.get(keyId);
        if (!k || k.revoked_at_ms !== undefined) return false;
        this.keyDb.put(keyId, { ...k, revoked_at_ms: Date.now() });
        return true;
      });
      await this.root.flushed;
      return done;
    });
  }

  async tokenSecret(): Promise<string> {
    const have = this.metaDb.get('token_secret');
    if (typeof have === 'string') return have;
    const fresh = randomBytes(32).toString('base64url');
    await lmdbWrite(async () => {
      await this.metaDb.ifNoExists('token_secret', () => this.metaDb.put('token_secret', fresh));
      await this.root.flushed;
    });
    return this.metaDb.get('token_secret') as string;
  }

  async putGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    await lmdbWrite(async () => {
      await this.root.transaction(() => {
        for (const g of gaps) this.gapDb.put(gapKey(g), g);
      });
      await this.root.flushed;
    });
    return gaps.length;
  }

  async deleteGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    let n = 0;
    await lmdbWrite(async () => {
      await this.root.transaction(() => {
        for (const g of gaps) if (this.gapDb.removeSync(gapKey(g))) n++;
      });
      await this.root.flushed;
    });
    return n;
  }

  async *files(): AsyncIterable<FileRecord> {
    for (const { value } of this.fileDb.getRange({ snapshot: false })) yield value;
  }

  async *gaps(): AsyncIterable<ReportedGap> {
    for (const { value } of this.gapDb.getRange({ snapshot: false })) yield value;
  }

  async readBytes(rec: FileRecord): Promise<Uint8Array> {
    const file = path.join(this.dataDir, rec.path);
    if (rec.offset === undefined) return fsp.readFile(file);
    const fh = await fsp.open(file, 'r');
    try {
      const b = Buffer.allocUnsafe(rec.size);
      let n = 0;
      for (let r = 1; n < rec.size && r > 0; n += r) r = (await fh.read(b, n, rec.size - n, rec.offset + n)).bytesRead;
      if (n !== rec.size) throw new EdgecapError(ErrorCodes.STATE, `${file} ends before file ${rec.file_id} (${rec.size} bytes at offset ${rec.offset}): ${n} bytes there`);
      return b;
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.mutex.run(async () => undefined);
    await this.root.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new EdgecapError(ErrorCodes.CLOSED, 'ingest storage is closed');
  }
}

/**
 * One FileStorage per data dir per process, reference-counted: the export functions and a
 * running server in the same process share the LMDB environment.
 */
const open_ = new Map<string, { storage: FileStorage; refs: number }>();

export function acquireFileStorage(dataDir: string): FileStorage {
  const key = path.resolve(dataDir);
  let e = open_.get(key);
  if (!e) {
    e = { storage: new FileStorage(key), refs: 0 };
    open_.set(key, e);
  }
  e.refs++;
  return e.storage;
}

export async function releaseFileStorage(storage: FileStorage): Promise<void> {
  const key = path.resolve(storage.dataDir);
  const e = open_.get(key);
  if (!e || e.storage !== storage) return storage.close();
  if (--e.refs > 0) return undefined;
  open_.delete(key);
  return storage.close();
}

/** Open an existing data dir for reading (export); refuses a dir with no ingest index. */
export function acquireExisting(dataDir: string): FileStorage {
  if (!fs.existsSync(path.join(dataDir, INDEX))) {
    throw new EdgecapError(ErrorCodes.STATE, `no ingest data in ${dataDir} (missing ${INDEX})`);
  }
  return acquireFileStorage(dataDir);
}
