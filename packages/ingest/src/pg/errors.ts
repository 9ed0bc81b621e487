import { EdgecapError, ErrorCodes } from '@edgecap/core';

/**
 * A PostgreSQL failure of the ingest backend. `code`:
 *   EDGECAP_ERR_UNAVAILABLE  the database is unreachable, restarting, out of connections, or
 *                            the transaction hit a serialization failure/deadlock: transient,
 *                            the server answers gRPC UNAVAILABLE and the edge retries/fails over
 *   EDGECAP_ERR_STATE        anything else (schema missing or newer than this build, bad SQL)
 * `sqlState` is PostgreSQL's SQLSTATE when the server sent one.
 */
export class PgStorageError extends EdgecapError {
  readonly sqlState: string | undefined;
  constructor(code: typeof ErrorCodes.UNAVAILABLE | typeof ErrorCodes.STATE, message: string, options?: { cause?: unknown; sqlState?: string }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PgStorageError';
    this.sqlState = options?.sqlState;
  }
}

const TRANSIENT_NODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/** SQLSTATE classes 08 (connection), 53 (resources), 57P (shutdown), 40001/40P01 (retry). */
export function isTransient(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string') {
    if (TRANSIENT_NODE.has(code)) return true;
    if (/^(08|53)/.test(code) || code.startsWith('57P') || code === '40001' || code === '40P01') return true;
  }
  const msg = (e as Error)?.message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(msg);
}

/** Wrap a driver error (leaves our own errors alone). */
export function wrapPg(e: unknown, what: string): Error {
  if (e instanceof EdgecapError) return e;
  const sqlState = typeof (e as { code?: unknown })?.code === 'string' && /^[0-9A-Z]{5}$/.test((e as { code: string }).code) ? (e as { code: string }).code : undefined;
  const msg = `${what}: ${(e as Error)?.message ?? String(e)}`;
  return new PgStorageError(isTransient(e) ? ErrorCodes.UNAVAILABLE : ErrorCodes.STATE, msg, { cause: e, ...(sqlState ? { sqlState } : {}) });
}
