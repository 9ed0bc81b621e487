export { PgStorage, PG_CHUNK_BYTES, type PgStorageOptions, type PgReadingRow } from './storage.js';
export { PgStorageError, isTransient } from './errors.js';
export { MIGRATIONS, migrate, schemaVersion, type Migration } from './migrations.js';
