import { EdgecapError, ErrorCodes, type ErrorCode } from '@edgecap/core';

/** gRPC status codes we act on (numbers from @grpc/grpc-js `status`, kept here so pure code needs no grpc import). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(GrpcStatus).map(([k, v]) => [v, k]));

/** `INTERNAL`, `ALREADY_EXISTS`, ... for messages; `status 42` for a number we do not know. */
export function statusName(code: number | undefined): string {
  return code === undefined ? 'no status' : (STATUS_NAMES[code] ?? `status ${code}`);
}

/**
 * What a failed call means for the sync loop. Only `rejected` ever moves a file to failed/:
 * - `link`: the server is unreachable — one connectivity backoff gates every file, and while it
 *   waits a Health probe at a short fixed cadence watches for the link to come back.
 * - `auth`: the server refused our key (UNAUTHENTICATED, or PERMISSION_DENIED: a key of the
 *   wrong part) — a config problem, not the file's: gates everything, with a clear error.
 * - `server`: the server answered but could not take the file now (INTERNAL, RESOURCE_EXHAUSTED,
 *   UNKNOWN, ABORTED, ... — its disk, its fds, its load): the file waits (its own unbounded
 *   backoff) and so does the round (the connectivity backoff); it is retried however long.
 * - `rejected`: a verdict about the bytes (INVALID_ARGUMENT, FAILED_PRECONDITION, or
 *   ALREADY_EXISTS: this id was committed with other content) — failed/, with the reason.
 * - `file`: our side of one attempt went wrong (a worker threw, an answer we do not
 *   understand) — the file retries on its own backoff.
 */
export type FailureKind = 'link' | 'auth' | 'server' | 'rejected' | 'file';

export function classifyStatus(code: number | undefined): FailureKind {
  switch (code) {
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
    case GrpcStatus.CANCELLED:
      return 'link';
    case GrpcStatus.UNAUTHENTICATED:
    case GrpcStatus.PERMISSION_DENIED:
      return 'auth';
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.ALREADY_EXISTS:
      return 'rejected';
    default:
      // INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN, ABORTED, OUT_OF_RANGE, NOT_FOUND, UNIMPLEMENTED,
      // DATA_LOSS, no status at all: nothing proves the bytes wrong, so the file waits.
      return 'server';
  }
}

export function errorCodeFor(kind: FailureKind): ErrorCode {
  switch (kind) {
    case 'link':
    case 'server':
      return ErrorCodes.UNAVAILABLE;
    case 'auth':
      return ErrorCodes.UNAUTHENTICATED;
    case 'rejected':
      return ErrorCodes.UPLOAD_REJECTED;
    case 'file':
      return ErrorCodes.PROTOCOL;
  }
}

/** A sync failure with a stable code; `grpcCode` is the gRPC status when the server answered. */
export class SyncError extends EdgecapError {
  readonly kind: FailureKind;
  readonly grpcCode: number | undefined;
  constructor(kind: FailureKind, message: string, options?: { grpcCode?: number; cause?: unknown; details?: Record<string, unknown> }) {
    super(errorCodeFor(kind), message, { cause: options?.cause, details: options?.details });
    this.name = 'SyncError';
    this.kind = kind;
    this.grpcCode = options?.grpcCode;
  }
}

/** Bad sync configuration (e.g. plain-text to a non-loopback address). */
export class SyncConfigError extends EdgecapError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCodes.CONFIG_INVALID, message, { details });
    this.name = 'SyncConfigError';
  }
}
