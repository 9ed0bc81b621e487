/**
 * Versioned schema for the PostgreSQL ingest backend. Append new migrations; never edit an
 * applied one. `migrate()` applies what is missing in ONE transaction that first takes a
 * transaction-scoped advisory lock, so nodes starting together apply each version once
 * (the others wait on the lock, then find the versions recorded and do nothing).
 *
 *   files         one row per committed upload; PRIMARY KEY file_id is the dedup index
 *   file_chunks   the uploaded bytes, byte for byte, 1 MiB bytea rows (capture + arbitrary files)
 *   readings      capture files decoded: one row per reading, data as JSONB (no FK: speed)
 *   binary_items  bytes of binary readings (readings.data holds {binary:{size,sha256,mime_type}})
 *   reported_gaps explained gaps the edge reported (ReportGaps), idempotent
 *   device_keys   per-device API keys (hash of the secret only), v2
 *   ingest_meta   node-shared secrets (the access-token signing secret), v2
 * v2 keys every file by (part_id, file_id): dedup is per part, two parts' ids never meet.
 */
import type pg from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** pg_advisory_xact_lock key: "edgecap" as ASCII in a bigint. */
export const MIGRATION_LOCK_KEY = 0x6564676563617000n;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE files (
  file_id        text PRIMARY KEY,
  part_id        text NOT NULL,
  data_type      text NOT NULL CHECK (data_type IN ('tabular', 'binary', 'file')),
  resource_kind  text NOT NULL,
  resource_name  text NOT NULL,
  method         text NOT NULL,
  tags           text[] NOT NULL DEFAULT '{}',
  size           bigint NOT NULL,
  sha256         text NOT NULL,
  mtime_ms       bigint NOT NULL,
  source         text NOT NULL,
  file_name      text,
  path           text NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now(),
  received_at_ms bigint NOT NULL,
  capture        jsonb,
  ingest_node    text
);
CREATE INDEX files_stream ON files (part_id, resource_kind, resource_name, method);

CREATE TABLE file_chunks (
  file_id  text NOT NULL REFERENCES files (file_id) ON DELETE CASCADE,
  chunk_no integer NOT NULL,
  data     bytea NOT NULL,
  PRIMARY KEY (file_id, chunk_no)
);
-- Capture files and images are already dense: skip TOAST compression.
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- No FOREIGN KEY to files: its per-row trigger cost about a third of the insert time. The commit
-- transaction inserts the files row first, so every reading has its file; deleting a file must
-- delete its readings explicitly.
CREATE TABLE readings (
  file_id           text NOT NULL,
  ord               integer NOT NULL,
  part_id           text NOT NULL,
  resource_kind     text NOT NULL,
  resource          text NOT NULL,
  method            text NOT NULL,
  seq               bigint NOT NULL,
  time_requested    timestamptz NOT NULL,
  time_received     timestamptz NOT NULL,
  time_requested_us bigint NOT NULL,
  time_received_us  bigint NOT NULL,
  tags              text[] NOT NULL DEFAULT '{}',
  mime_type         text,
  data              jsonb,
  PRIMARY KEY (file_id, ord)
);
CREATE INDEX readings_stream_seq ON readings (part_id, resource_kind, resource, method, seq);
CREATE INDEX readings_time_received ON readings USING brin (time_received);

CREATE TABLE binary_items (
  file_id   text NOT NULL,
  ord       integer NOT NULL,
  item      integer NOT NULL,
  sha256    text NOT NULL,
  size      integer NOT NULL,
  mime_type text,
  data      bytea NOT NULL,
  PRIMARY KEY (file_id, ord, item),
  FOREIGN KEY (file_id, ord) REFERENCES readings (file_id, ord) ON DELETE CASCADE
);
ALTER TABLE binary_items ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE reported_gaps (
  part_id       text NOT NULL,
  resource_kind text NOT NULL,
  resource_name text NOT NULL,
  method        text NOT NULL,
  from_seq      bigint NOT NULL,
  to_seq        bigint NOT NULL,
  reason        text NOT NULL,
  time_us       bigint NOT NULL,
  PRIMARY KEY (part_id, resource_kind, resource_name, method, from_seq, to_seq, reason)
);
`,
  },
  {
    version: 2,
    name: 'files keyed by part; device keys',
    sql: `
ALTER TABLE binary_items DROP CONSTRAINT binary_items_file_id_ord_fkey;
ALTER TABLE file_chunks DROP CONSTRAINT file_chunks_file_id_fkey;
ALTER TABLE files DROP CONSTRAINT files_pkey;
ALTER TABLE files ADD PRIMARY KEY (part_id, file_id);

ALTER TABLE file_chunks ADD COLUMN part_id text;
UPDATE file_chunks c SET part_id = f.part_id FROM files f WHERE f.file_id = c.file_id;
ALTER TABLE file_chunks ALTER COLUMN part_id SET NOT NULL;
ALTER TABLE file_chunks DROP CONSTRAINT file_chunks_pkey;
ALTER TABLE file_chunks ADD PRIMARY KEY (part_id, file_id, chunk_no);
ALTER TABLE file_chunks ADD FOREIGN KEY (part_id, file_id) REFERENCES files (part_id, file_id) ON DELETE CASCADE;

ALTER TABLE readings DROP CONSTRAINT readings_pkey;
ALTER TABLE readings ADD PRIMARY KEY (part_id, file_id, ord);

ALTER TABLE binary_items ADD COLUMN part_id text;
UPDATE binary_items b SET part_id = r.part_id FROM readings r WHERE r.file_id = b.file_id AND r.ord = b.ord;
ALTER TABLE binary_items ALTER COLUMN part_id SET NOT NULL;
ALTER TABLE binary_items DROP CONSTRAINT binary_items_pkey;
ALTER TABLE binary_items ADD PRIMARY KEY (part_id, file_id, ord, item);
ALTER TABLE binary_items ADD FOREIGN KEY (part_id, file_id, ord) REFERENCES readings (part_id, file_id, ord) ON DELETE CASCADE;

CREATE TABLE device_keys (
  key_id        text PRIMARY KEY,
  part_id       text NOT NULL,
  secret_sha256 text NOT NULL,
  created_at_ms bigint NOT NULL,
  revoked_at_ms bigint
);

CREATE TABLE ingest_meta (
  name  text PRIMARY KEY,
  value text NOT NULL
);
`,
  },
];

/** Apply missing migrations under the advisory lock. Returns the versions applied by this call. */
export async function migrate(client: pg.ClientBase, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const applied: number[] = [];
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const have = new Set(rows.map((r) => r.version));
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (have.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  return applied;
}

/** Highest applied version, or 0 when the database has no edgecap schema. */
export async function schemaVersion(client: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (!rows[0]?.t) return 0;
  const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return r.rows[0]?.v ?? 0;
}
