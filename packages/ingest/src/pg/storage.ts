/**
 * PostgreSQL storage for stateless ingest nodes sharing one database.
 *
 *   upload chunks ──► <dataDir>/pg-staging/<pid>-<rand>/<rand>.part   node-local scratch, sha256 running
 *   end ──► server verifies size/sha256/capture header ──► PgStorage.commit:
 *
 *     BEGIN
 *       INSERT INTO files ... ON CONFLICT (part_id, file_id) DO NOTHING   ◄── the dedup key, FIRST
 *         └─ no row? another node committed (or is committing: we block on its row lock until it
 *            commits or rolls back) ─► ROLLBACK ─► ALREADY_HAVE (same size + sha256) or
 *            ALREADY_EXISTS (other content: nothing overwritten)
 *       INSERT file_chunks (1 MiB bytea rows)       the bytes as uploaded
 *       INSERT readings   (decoded, JSONB data)     capture files only, batched jsonb_to_recordset
 *       INSERT binary_items                         bytes of binary readings
 *     COMMIT                                        ◄── the commit point; answer COMMITTED
 *
 * A node killed anywhere before COMMIT leaves nothing: PostgreSQL rolls back the transaction
 * when the connection drops, and the node's scratch dir is removed at the next start.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import { RecordStream, type RecordEvent } from '@edgecap/format';
import { stringify, toExportable } from '../json.js';
import { segmentOf } from '../paths.js';
import type { ExportedReading } from '../report.js';
import { newDeviceKey, type DeviceKey, type NewDeviceKey } from '../keys.js';
import { StagedFile, sameContent, type CaptureInfo, type CommitResult, type FileRecord, type IngestStorage, type NewFileRecord, type ReportedGap, type StagedUpload, type StoredDataType } from '../storage.js';
import { PgStorageError, wrapPg } from './errors.js';
import { MIGRATIONS, migrate, schemaVersion } from './migrations.js';

const log = logger('ingest.pg');

/** Bytes per file_chunks row. */
export const PG_CHUNK_BYTES = 1024 * 1024;
/** Readings per INSERT statement. */
const READING_BATCH = 4000;

export interface PgStorageOptions {
  /** postgres://user:pass@host:port/db (libpq-style URL, as the `pg` driver takes it). */
  url: string;
  /** Pool size (default 10). */
  poolSize?: number;
  /** Node-local scratch for uploads in progress (default: the OS temp dir). */
  stagingDir?: string;
  /** Apply missing migrations at open (default true). False: require an existing schema (export). */
  migrate?: boolean;
  /** Recorded in files.ingest_node (default hostname:pid). */
  nodeName?: string;
}

/** An exported reading as stored: exactly the export's shape. */
export type PgReadingRow = ExportedReading;

interface FileRow {
  file_id: string;
  part_id: string;
  data_type: StoredDataType;
  resource_kind: string;
  resource_name: string;
  method: string;
  tags: string[];
  size: string;
  sha256: string;
  mtime_ms: string;
  source: string;
  file_name: string | null;
  path: string;
  received_at_ms: string;
  capture: CaptureInfo | null;
}

function toRecord(r: FileRow): FileRecord {
  const rec: FileRecord = {
    file_id: r.file_id,
    part_id: r.part_id,
    data_type: r.data_type,
    resource_kind: r.resource_kind,
    resource_name: r.resource_name,
    method: r.method,
    tags: r.tags,
    size: Number(r.size),
    sha256: r.sha256,
    mtime_ms: Number(r.mtime_ms),
    source: r.source,
    path: r.path,
    received_at_ms: Number(r.received_at_ms),
  };
  if (r.file_name !== null) rec.file_name = r.file_name;
  if (r.capture) rec.capture = r.capture;
  return rec;
}

interface BinaryItem {
  item: number;
  bytes: Uint8Array;
  sha256: string;
  mime?: string;
}

/**
 * A reading's value as JSON (the export's shape, iteratively: depth is the client's choice): each
 * byte array becomes {binary:{size,sha256,mime_type}} and is collected for binary_items; strings
 * and keys lose NUL (JSONB cannot hold \u0000; the original bytes stay in file_chunks).
 */
function toJson(v: unknown, items: BinaryItem[], mime?: string, annotations?: unknown): unknown {
  const text = (s: string): string => (s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s);
  const out = toExportable(v, mime, {
    binary(bytes, m) {
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const b: { size: number; sha256: string; mime_type?: string } = { size: bytes.length, sha256 };
      const it: BinaryItem = { item: items.length, bytes, sha256 };
      if (m) {
        b.mime_type = m;
        it.mime = m;
      }
      items.push(it);
      return { binary: b };
    },
    text,
  });
  // A viam image's annotations join its summary, as in the embedded storage's export.
  if (annotations !== undefined && v instanceof Uint8Array) (out as { binary: Record<string, unknown> }).binary.annotations = toExportable(annotations, undefined, { text });
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PgStorage implements IngestStorage {
  readonly kind = 'postgres';
  readonly pool: pg.Pool;
  private readonly stagingDir: string;
  private readonly node: string;
  private closed = false;

  private constructor(pool: pg.Pool, stagingDir: string, node: string) {
    this.pool = pool;
    this.stagingDir = stagingDir;
    this.node = node;
  }

  /** Connect, migrate (under the advisory lock) or check the schema, prepare node-local scratch. */
  static async open(opts: PgStorageOptions): Promise<PgStorage> {
    const { Pool } = await loadPg();
    const pool = new Pool({ connectionString: opts.url, max: opts.poolSize ?? 10, connectionTimeoutMillis: 10_000, application_name: 'edgecap-ingest' });
    // An idle pooled client whose server connection dies must not crash the process.
    pool.on('error', (err) => log.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
    try {
      const client = await pool.connect();
      try {
        if (opts.migrate ?? true) {
          const applied = await migrate(client);
          if (applied.length) log.info({ applied }, 'applied schema migrations');
        }
        const v = await schemaVersion(client);
        const latest = MIGRATIONS.at(-1)!.version;
        if (v === 0) throw new PgStorageError(ErrorCodes.STATE, 'no edgecap ingest schema in this database (schema_migrations missing): start an ingest node with --storage postgres first');
        if (v > latest) throw new PgStorageError(ErrorCodes.STATE, `database schema version ${v} is newer than this build supports (${latest})`);
      } finally {
        client.release();
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw wrapPg(e, 'cannot open PostgreSQL ingest storage');
    }
    const base = opts.stagingDir ?? path.join(os.tmpdir(), 'edgecap-pg-staging');
    fs.mkdirSync(base, { recursive: true, mode: 0o700 });
    // Scratch of earlier runs whose process is gone (a SIGKILLed node): delete.
    for (const e of fs.readdirSync(base)) {
      const pid = Number(/^(\d+)-/.exec(e)?.[1]);
      if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(base, e), { recursive: true, force: true });
    }
    // Created on the first upload (export never needs it).
    const mine = path.join(base, `${process.pid}-${randomBytes(6).toString('hex')}`);
    return new PgStorage(pool, mine, opts.nodeName ?? `${os.hostname()}:${process.pid}`);
  }

  async get(partId: string, fileId: string): Promise<FileRecord | undefined> {
    this.assertOpen();
    try {
      const { rows } = await this.pool.query<FileRow>('SELECT * FROM files WHERE part_id = $1 AND file_id = $2', [partId, fileId]);
      return rows[0] ? toRecord(rows[0]) : undefined;
    } catch (e) {
      throw wrapPg(e, 'file lookup failed');
    }
  }

  async stage(): Promise<StagedUpload> {
    this.assertOpen();
    await fsp.mkdir(this.stagingDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.stagingDir, `${randomBytes(12).toString('hex')}.part`);
    return new StagedFile(file, await fsp.open(file, 'wx', 0o600), false);
  }

  private logicalPath(rec: NewFileRecord): string {
    if (rec.data_type !== 'file') return `file_chunks/${segmentOf(rec.part_id)}/${rec.file_id}`;
    return `files/${segmentOf(rec.part_id)}/${segmentOf(rec.source)}/${rec.file_name ?? rec.file_id}`;
  }

  async commit(staged: StagedUpload, rec: NewFileRecord): Promise<CommitResult> {
    this.assertOpen();
    if (!(staged instanceof StagedFile)) throw new EdgecapError(ErrorCodes.STATE, 'foreign staged upload');
    let client: pg.PoolClient | undefined;
    let broken: Error | undefined;
    try {
      client = await this.pool.connect().catch((e: unknown) => {
        throw wrapPg(e, 'cannot reach PostgreSQL');
      });
      const record: FileRecord = { ...rec, path: this.logicalPath(rec), received_at_ms: Date.now() };
      await client.query('BEGIN');
      const ins = await client.query(
        `INSERT INTO files (file_id, part_id, data_type, resource_kind, resource_name, method, tags, size, sha256, mtime_ms, source, file_name, path, received_at_ms, capture, ingest_node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (part_id, file_id) DO NOTHING`,
        [
          rec.file_id,
          rec.part_id,
          rec.data_type,
          rec.resource_kind,
          rec.resource_name,
          rec.method,
          rec.tags,
          rec.size,
          rec.sha256,
          rec.mtime_ms,
          rec.source,
          rec.file_name ?? null,
          record.path,
          record.received_at_ms,
          rec.capture ? JSON.stringify(rec.capture) : null,
          this.node,
        ],
      );
      if (ins.rowCount === 0) {
        await client.query('ROLLBACK');
        const { rows } = await client.query<FileRow>('SELECT * FROM files WHERE part_id = $1 AND file_id = $2', [rec.part_id, rec.file_id]);
        if (!rows[0]) throw new PgStorageError(ErrorCodes.UNAVAILABLE, `file ${rec.file_id} conflicted but is not visible; retry`);
        const have = toRecord(rows[0]);
        sameContent(have, rec.size, rec.sha256);
        return { status: 'already_have', record: have };
      }
      await this.insertChunks(client, staged, rec.part_id, rec.file_id);
      if (rec.data_type !== 'file') await this.insertReadings(client, staged, rec);
      await client.query('COMMIT');
      log.debug({ file_id: rec.file_id, size: rec.size }, 'committed');
      return { status: 'committed', record };
    } catch (e) {
      if (client) {
        try {
          await client.query('ROLLBACK');
        } catch (re) {
          broken = re as Error;
        }
      }
      throw wrapPg(e, `commit of ${rec.file_id} failed`);
    } finally {
      client?.release(broken);
      await staged.discard();
    }
  }

  private async insertChunks(client: pg.PoolClient, staged: StagedFile, partId: string, fileId: string): Promise<void> {
    const fh = await fsp.open(staged.file, 'r');
    try {
      const buf = Buffer.allocUnsafe(PG_CHUNK_BYTES);
      for (let no = 0; ; no++) {
        let n = 0;
        while (n < buf.length) {
          const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
        if (n === 0 && no > 0) break;
        await client.query({ name: 'edgecap_chunk', text: 'INSERT INTO file_chunks (part_id, file_id, chunk_no, data) VALUES ($1, $2, $3, $4)', values: [partId, fileId, no, buf.subarray(0, n)] });
        if (n < buf.length) break;
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Decode the staged capture file chunk by chunk (RecordStream) and insert its readings in
   * batches, each batch's binary items right after it: memory is bounded by a batch, not the file.
   */
  private async insertReadings(client: pg.PoolClient, staged: StagedFile, rec: NewFileRecord): Promise<void> {
    const stream = new RecordStream(staged.file);
    let mimeDefault: string | undefined;
    let ord = 0;
    let items: { ord: number; it: BinaryItem }[] = [];
    let itemBytes = 0;
    // Column arrays for INSERT ... SELECT FROM unnest(...): one statement per batch.
    // Timestamps via to_timestamp(µs / 1e6): exact to the µs for this range (< 2^53 µs); the
    // integer *_us columns stay the authoritative values.
    let cols = { o: [] as number[], s: [] as number[], q: [] as number[], r: [] as number[], m: [] as (string | null)[], d: [] as string[] };
    const flush = async (): Promise<void> => {
      if (cols.o.length > 0) {
        await client.query({
          name: 'edgecap_readings',
          text: `INSERT INTO readings (file_id, ord, part_id, resource_kind, resource, method, seq, time_requested, time_received, time_requested_us, time_received_us, tags, mime_type, data)
           SELECT $1, x.o, $2, $3, $4, $5, x.s, to_timestamp(x.q / 1e6::float8), to_timestamp(x.r / 1e6::float8), x.q, x.r, $6, x.m, x.d
           FROM unnest($7::integer[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::jsonb[]) AS x(o, s, q, r, m, d)`,
          values: [rec.file_id, rec.part_id, rec.resource_kind, rec.resource_name, rec.method, rec.tags, cols.o, cols.s, cols.q, cols.r, cols.m, cols.d],
        });
        cols = { o: [], s: [], q: [], r: [], m: [], d: [] };
      }
      for (const { ord: o, it } of items) {
        await client.query({
          name: 'edgecap_binary_item',
          text: 'INSERT INTO binary_items (part_id, file_id, ord, item, sha256, size, mime_type, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
          values: [rec.part_id, rec.file_id, o, it.item, it.sha256, it.bytes.length, it.mime ?? null, Buffer.from(it.bytes.buffer, it.bytes.byteOffset, it.bytes.byteLength)],
        });
      }
      items = [];
      itemBytes = 0;
    };
    const take = (ev: RecordEvent): void => {
      if (ev.kind === 'header') mimeDefault = ev.header.mime_type;
      if (ev.kind !== 'reading') return;
      const r = ev.reading;
      const mime = r.mime_type ?? mimeDefault;
      const its: BinaryItem[] = [];
      const d = toJson(r.data, its, mime, r.annotations);
      for (const it of its) {
        items.push({ ord, it });
        itemBytes += it.bytes.length;
      }
      cols.o.push(ord++);
      cols.s.push(r.seq);
      cols.q.push(r.time_requested_us);
      cols.r.push(r.time_received_us);
      cols.m.push(mime ?? null);
      cols.d.push(stringify(d === undefined ? null : d) ?? 'null');
    };
    for await (const chunk of staged.chunks()) {
      stream.push(chunk as Uint8Array, take);
      if (cols.o.length >= READING_BATCH || itemBytes >= 16 * 1024 * 1024) await flush();
    }
    stream.finish(take);
    await flush();
  }

  async putGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    if (gaps.length === 0) return 0;
    try {
      await this.pool.query(
        `INSERT INTO reported_gaps (part_id, resource_kind, resource_name, method, from_seq, to_seq, reason, time_us)
         SELECT part_id, resource_kind, resource_name, method, from_seq, to_seq, reason, time_us
         FROM jsonb_to_recordset($1::jsonb) AS x(part_id text, resource_kind text, resource_name text, method text, from_seq bigint, to_seq bigint, reason text, time_us bigint)
         ON CONFLICT DO NOTHING`,
        [JSON.stringify(gaps)],
      );
    } catch (e) {
      throw wrapPg(e, 'storing reported gaps failed');
    }
    return gaps.length;
  }

  async deleteGaps(gaps: ReportedGap[]): Promise<number> {
    this.assertOpen();
    if (gaps.length === 0) return 0;
    try {
      const r = await this.pool.query(
        `DELETE FROM reported_gaps g USING jsonb_to_recordset($1::jsonb) AS x(part_id text, resource_kind text, resource_name text, method text, from_seq bigint, to_seq bigint, reason text)
         WHERE g.part_id = x.part_id AND g.resource_kind = x.resource_kind AND g.resource_name = x.resource_name AND g.method = x.method
           AND g.from_seq = x.from_seq AND g.to_seq = x.to_seq AND g.reason = x.reason`,
        [JSON.stringify(gaps)],
      );
      return r.rowCount ?? 0;
    } catch (e) {
      throw wrapPg(e, 'deleting reported gaps failed');
    }
  }

  /** All committed files, paged by (part_id, file_id) (keyset). */
  async *files(): AsyncIterable<FileRecord> {
    this.assertOpen();
    let after: [string, string] | undefined;
    for (;;) {
      let rows: FileRow[];
      try {
        rows = after
          ? (await this.pool.query<FileRow>('SELECT * FROM files WHERE (part_id, file_id) > ($1, $2) ORDER BY part_id, file_id LIMIT 1000', after)).rows
          : (await this.pool.query<FileRow>('SELECT * FROM files ORDER BY part_id, file_id LIMIT 1000')).rows;
      } catch (e) {
        throw wrapPg(e, 'listing files failed');
      }
      for (const r of rows) yield toRecord(r);
      if (rows.length < 1000) return;
      after = [rows.at(-1)!.part_id, rows.at(-1)!.file_id];
    }
  }

  /** Reported gaps in stream, then from_seq order, paged by the primary key (never the whole table at once). */
  async *gaps(): AsyncIterable<ReportedGap> {
    this.assertOpen();
    const cols = 'part_id, resource_kind, resource_name, method, from_seq, to_seq, reason';
    let after: unknown[] | undefined;
    for (;;) {
      let rows: Record<string, string>[];
      try {
        rows = after
          ? (await this.pool.query(`SELECT * FROM reported_gaps WHERE (${cols}) > ($1, $2, $3, $4, $5, $6, $7) ORDER BY ${cols} LIMIT 5000`, after)).rows
          : (await this.pool.query(`SELECT * FROM reported_gaps ORDER BY ${cols} LIMIT 5000`)).rows;
      } catch (e) {
        throw wrapPg(e, 'listing reported gaps failed');
      }
      for (const r of rows) {
        yield {
          part_id: r.part_id!,
          resource_kind: r.resource_kind!,
          resource_name: r.resource_name!,
          method: r.method!,
          from_seq: Number(r.from_seq),
          to_seq: Number(r.to_seq),
          reason: r.reason!,
          time_us: Number(r.time_us),
        };
      }
      if (rows.length < 5000) return;
      const l = rows.at(-1)!;
      after = [l.part_id, l.resource_kind, l.resource_name, l.method, l.from_seq, l.to_seq, l.reason];
    }
  }

  async readBytes(rec: FileRecord): Promise<Uint8Array> {
    this.assertOpen();
    try {
      const { rows } = await this.pool.query<{ data: Buffer }>('SELECT data FROM file_chunks WHERE part_id = $1 AND file_id = $2 ORDER BY chunk_no', [rec.part_id, rec.file_id]);
      return Buffer.concat(rows.map((r) => r.data));
    } catch (e) {
      throw wrapPg(e, `reading ${rec.file_id} failed`);
    }
  }

  /** The decoded readings of one stored capture file, in file order (from the `readings` table). */
  async *readingsOf(partId: string, fileId: string): AsyncIterable<PgReadingRow> {
    this.assertOpen();
    let after = -1;
    for (;;) {
      let rows: Record<string, unknown>[];
      try {
        rows = (
          await this.pool.query(
            `SELECT ord, part_id, resource_kind, resource, method, seq, time_requested_us, time_received_us, data, file_id, mime_type
             FROM readings WHERE part_id = $1 AND file_id = $2 AND ord > $3 ORDER BY ord LIMIT 5000`,
            [partId, fileId, after],
          )
        ).rows;
      } catch (e) {
        throw wrapPg(e, `reading readings of ${fileId} failed`);
      }
      for (const r of rows) {
        const out: PgReadingRow = {
          part_id: r.part_id as string,
          resource_kind: r.resource_kind as string,
          resource: r.resource as string,
          method: r.method as string,
          seq: Number(r.seq),
          time_requested_us: Number(r.time_requested_us),
          time_received_us: Number(r.time_received_us),
          data: r.data,
          file_id: r.file_id as string,
        };
        if (r.mime_type !== null) out.mime_type = r.mime_type as string;
        yield out;
      }
      if (rows.length < 5000) return;
      after = rows.at(-1)!.ord as number;
    }
  }

  // ── keys: the registry is a table every node reads (the server mirrors it, see KeyMirror).

  /** Every key, for the server's mirror (KeyMirror refreshes it every few seconds). */
  async listKeys(): Promise<DeviceKey[]> {
    this.assertOpen();
    try {
      const { rows } = await this.pool.query<{ key_id: string; part_id: string; secret_sha256: string; created_at_ms: string; revoked_at_ms: string | null }>('SELECT * FROM device_keys ORDER BY key_id');
      return rows.map((r) => {
        const k: DeviceKey = { key_id: r.key_id, part_id: r.part_id, secret_sha256: r.secret_sha256, created_at_ms: Number(r.created_at_ms) };
        if (r.revoked_at_ms !== null) k.revoked_at_ms = Number(r.revoked_at_ms);
        return k;
      });
    } catch (e) {
      throw wrapPg(e, 'listing device keys failed');
    }
  }

  /** Keys as last mirrored; the server installs a mirror (`useKeyMirror`), the CLI reads the table. */
  lookupKey(keyId: string): DeviceKey | undefined {
    return this.mirror?.get(keyId);
  }

  private mirror: Map<string, DeviceKey> | undefined;

  anyKeys(): boolean {
    return (this.mirror?.size ?? 0) > 0;
  }

  /** Reload the in-memory key mirror from the table. */
  async refreshKeys(): Promise<void> {
    const keys = await this.listKeys();
    this.mirror = new Map(keys.map((k) => [k.key_id, k]));
  }

  async createKey(partId: string): Promise<NewDeviceKey> {
    this.assertOpen();
    const { record, secret } = newDeviceKey(partId);
    try {
      await this.pool.query('INSERT INTO device_keys (key_id, part_id, secret_sha256, created_at_ms) VALUES ($1, $2, $3, $4)', [record.key_id, record.part_id, record.secret_sha256, record.created_at_ms]);
    } catch (e) {
      throw wrapPg(e, 'creating a device key failed');
    }
    return { key_id: record.key_id, part_id: partId, secret };
  }

  async revokeKey(keyId: string): Promise<boolean> {
    this.assertOpen();
    try {
      const r = await this.pool.query('UPDATE device_keys SET revoked_at_ms = $2 WHERE key_id = $1 AND revoked_at_ms IS NULL', [keyId, Date.now()]);
      return (r.rowCount ?? 0) > 0;
    } catch (e) {
      throw wrapPg(e, 'revoking a device key failed');
    }
  }

  async tokenSecret(): Promise<string> {
    this.assertOpen();
    try {
      await this.pool.query("INSERT INTO ingest_meta (name, value) VALUES ('token_secret', $1) ON CONFLICT DO NOTHING", [randomBytes(32).toString('base64url')]);
      const { rows } = await this.pool.query<{ value: string }>("SELECT value FROM ingest_meta WHERE name = 'token_secret'");
      return rows[0]!.value;
    } catch (e) {
      throw wrapPg(e, 'reading the token secret failed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
    fs.rmSync(this.stagingDir, { recursive: true, force: true });
  }

  private assertOpen(): void {
    if (this.closed) throw new EdgecapError(ErrorCodes.CLOSED, 'ingest storage is closed');
  }
}

/**
 * `pg` is an optional peer dependency: loaded on first use, so an edge or an embedded
 * ingest on files never needs it installed.
 */
async function loadPg(): Promise<typeof pg> {
  try {
    return ((await import('pg')) as { default: typeof pg }).default;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new PgStorageError(ErrorCodes.STATE, "the PostgreSQL storage needs the 'pg' package: npm i pg", { cause: e });
    }
    throw e;
  }
}
