/**
 * Embedded storage: files on disk plus an LMDB index keyed by file id.
 *
 *   <dataDir>/staging/<random>.part            upload in progress (never visible to readers)
 *   <dataDir>/blobs/<id[0:2]>/<id>.capture     committed capture files
 *   <dataDir>/files/<part>/<source>/<name>     committed arbitrary files, byte for byte
 *   <dataDir>/index.lmdb                       files: file_id -> FileRecord
 *                                              gaps:  stream+range+reason -> ReportedGap
 *
 * Commit (one at a time, under a mutex):
 *   stage: write chunks to staging/, verify size + sha256 (+ capture header), fsync
 *   ──► re-check index (another upload of the same id may have committed: ALREADY_HAVE)
 *   ──► rename into place, fsync the folder
 *   ──► index put, await commit + flush         ◄── the commit point
 * A crash before the index put leaves at most a staged file or a renamed file without an
 * index entry; `recover()` (run by the server at start) deletes both, so nothing
 * half-written is ever visible and a re-upload commits exactly once.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import type { Gap as FrameGap } from '@edgecap/format';
import { invalid } from './errors.js';
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
  discard(): Promise<void>;
}

/**
 * Storage behind the ingest server. The embedded default is `FileStorage`; a PostgreSQL
 * backend implements the same interface (`kind: 'postgres'`).
 */
export interface IngestStorage {
  readonly kind: string;
  get(fileId: string): Promise<FileRecord | undefined>;
  stage(): Promise<StagedUpload>;
  /** Atomically store a finished, verified upload; exactly one commit per file id. */
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
const INDEX = 'index.lmdb';

function gapKey(g: ReportedGap): string {
  return [g.part_id, g.resource_kind, g.resource_name, g.method, String(g.from_seq).padStart(16, '0'), String(g.to_seq).padStart(16, '0'), g.reason].join('\0');
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Staged uploads up to this size are also kept in memory, so the capture check reads no file back. */
const KEEP_IN_MEMORY_BYTES = 32 * 1024 * 1024;

/**
 * An upload being received: bytes go to a staging file and the hash as they arrive. `durable`
 * staging (the embedded store, where this file becomes the stored copy) is fsynced on finish;
 * PostgreSQL staging is scratch space (the database COMMIT is what makes it durable).
 */
export class StagedFile implements StagedUpload {
  private readonly hash = createHash('sha256');
  private n = 0;
  private closed = false;
  /** The chunks as received (grpc-js hands each message its own buffer; nothing reuses them). */
  private kept: Uint8Array[] | undefined = [];
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
    if (this.kept) {
      if (this.n <= KEEP_IN_MEMORY_BYTES) this.kept.push(chunk);
      else this.kept = undefined;
    }
  }

  async finish(): Promise<{ bytes: number; sha256: string }> {
    if (this.durable) await this.fh.sync();
    await this.fh.close();
    this.closed = true;
    return { bytes: this.n, sha256: this.hash.digest('hex') };
  }

  async read(): Promise<Uint8Array> {
    if (this.kept) {
      if (this.kept.length > 1) this.kept = [Buffer.concat(this.kept, this.n)];
      return this.kept[0] ?? new Uint8Array(0);
    }
    return fsp.readFile(this.file);
  }

  /** Drop the in-memory copy (the commit owns the file now). */
  release(): void {
    this.kept = undefined;
  }

  async discard(): Promise<void> {
    this.kept = undefined;
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
    await fsp.rm(this.file, { force: true });
  }
}

interface PendingCommit {
  staged: StagedFile;
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
  private readonly mutex = new Mutex();
  private queue: PendingCommit[] = [];
  private closed = false;

  constructor(readonly dataDir: string) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    for (const d of [STAGING, BLOBS, FILES]) fs.mkdirSync(path.join(dataDir, d), { recursive: true, mode: 0o700 });
    this.root = open({ path: path.join(dataDir, INDEX), maxDbs: 4, compression: false });
    this.fileDb = this.root.openDB<FileRecord, string>({ name: 'files' });
    this.gapDb = this.root.openDB<ReportedGap, string>({ name: 'gaps' });
  }

  /**
   * Start-up recovery (server only, before accepting uploads): delete staged uploads and any
   * stored file that has no index entry (a crash between rename and index put).
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
    const walk = (rel: string): void => {
      const abs = path.join(this.dataDir, rel);
      for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
        const r = `${rel}/${e.name}`;
        if (e.isDirectory()) walk(r);
        else if (!known.has(r)) {
          fs.rmSync(path.join(this.dataDir, r), { force: true });
          orphans++;
        }
      }
    };
    walk(BLOBS);
    walk(FILES);
    if (staged || orphans) log.info({ staged, orphans }, 'removed uncommitted files left by an earlier run');
    return { staged, orphans };
  }

  async get(fileId: string): Promise<FileRecord | undefined> {
    return this.fileDb.get(fileId);
  }

  getSync(fileId: string): FileRecord | undefined {
    return this.fileDb.get(fileId);
  }

  async stage(): Promise<StagedUpload> {
    this.assertOpen();
    const file = path.join(this.dataDir, STAGING, `${randomBytes(12).toString('hex')}.part`);
    const fh = await fsp.open(file, 'wx', 0o600);
    return new StagedFile(file, fh);
  }

  private finalPath(rec: NewFileRecord): string {
    if (rec.data_type !== 'file') return `${BLOBS}/${rec.file_id.slice(0, 2)}/${rec.file_id}.capture`;
    const name = (rec.file_name ?? rec.file_id).split('/');
    const base = `${FILES}/${segmentOf(rec.part_id)}/${segmentOf(rec.source)}/${name.join('/')}`;
    // A different file id already holds this name (a newer version of a synced file): keep
    // both, the later one beside it with its id appended.
    if (fs.existsSync(path.join(this.dataDir, base))) return `${base}~${rec.file_id}`;
    return base;
  }

  async commit(staged: StagedUpload, rec: NewFileRecord): Promise<CommitResult> {
    this.assertOpen();
    if (!(staged instanceof StagedFile)) throw new EdgecapError(ErrorCodes.STATE, 'foreign staged upload');
    staged.release();
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ staged, rec, resolve, reject });
      if (this.queue.length === 1) void this.mutex.run(() => this.commitQueued());
    });
  }

  /**
   * Group commit: every upload that finished staging while the previous group was committing
   * goes in the next group: renames in order, one fsync per folder, one LMDB transaction, one
   * flush. Each caller is answered only after that flush: the ack still follows a durable
   * commit, and a file id is still committed once (the index is re-checked inside the group).
   */
  private async commitQueued(): Promise<void> {
    const group = this.queue;
    this.queue = [];
    if (group.length === 0) return;
    const placed: { item: PendingCommit; record: FileRecord; dir: string }[] = [];
    const inGroup = new Map<string, FileRecord>();
    for (const item of group) {
      const { staged, rec } = item;
      try {
        const existing = this.fileDb.get(rec.file_id) ?? inGroup.get(rec.file_id);
        if (existing) {
          await staged.discard();
          if (inGroup.has(rec.file_id)) placed.push({ item, record: existing, dir: '' });
          else item.resolve({ status: 'already_have', record: existing });
          continue;
        }
        const rel = this.finalPath(rec);
        const abs = path.join(this.dataDir, rel);
        try {
          await fsp.mkdir(path.dirname(abs), { recursive: true, mode: 0o700 });
          await fsp.rename(staged.file, abs);
        } catch (e) {
          await staged.discard();
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST' || code === 'ENAMETOOLONG') {
            throw invalid(`file_name ${JSON.stringify(rec.file_name)} conflicts with a stored file or folder (${code})`, { field: 'file_name' });
          }
          throw e;
        }
        const record: FileRecord = { ...rec, path: rel, received_at_ms: Date.now() };
        inGroup.set(rec.file_id, record);
        placed.push({ item, record, dir: path.dirname(abs) });
      } catch (e) {
        item.reject(e);
      }
    }
    if (placed.length === 0) return;
    try {
      await Promise.all([...new Set(placed.map((p) => p.dir).filter((d) => d !== ''))].map((d) => fsyncDir(d)));
      await this.root.transaction(() => {
        for (const p of placed) if (p.dir !== '') this.fileDb.put(p.record.file_id, p.record);
      });
      await this.root.flushed;
    } catch (e) {
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

  async putGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    await this.root.transaction(() => {
      for (const g of gaps) this.gapDb.put(gapKey(g), g);
    });
    await this.root.flushed;
    return gaps.length;
  }

  async deleteGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    let n = 0;
    await this.root.transaction(() => {
      for (const g of gaps) if (this.gapDb.removeSync(gapKey(g))) n++;
    });
    await this.root.flushed;
    return n;
  }

  async *files(): AsyncIterable<FileRecord> {
    for (const { value } of this.fileDb.getRange({ snapshot: false })) yield value;
  }

  async *gaps(): AsyncIterable<ReportedGap> {
    for (const { value } of this.gapDb.getRange({ snapshot: false })) yield value;
  }

  async readBytes(rec: FileRecord): Promise<Uint8Array> {
    return fsp.readFile(path.join(this.dataDir, rec.path));
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
