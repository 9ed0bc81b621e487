import { EdgecapError, ErrorCodes, type ErrorCode } from '@edgecap/core';

/** gRPC status codes we act on (numbers from @grpc/grpc-js `status`, kept here so pure code needs no grpc import). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  PERMISSION_DENIED: 7,
  UNAUTHENTICATED: 16,
} as const;

/**
 * What a failed call means for the sync loop:
 * - `link`: the server is unreachable — one connectivity probe gates every file (backoff).
 * - `auth`: the server refused our credentials — also gates everything, with a clear error.
 * - `rejected`: the server says this file is invalid — move it to failed/, never retry.
 * - `file`: something went wrong with this one upload — per-file bounded retry.
 */
export type FailureKind = 'link' | 'auth' | 'rejected' | 'file';

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
    case GrpcStatus.OUT_OF_RANGE:
      return 'rejected';
    default:
      return 'file';
  }
}

export function errorCodeFor(kind: FailureKind): ErrorCode {
  switch (kind) {
    case 'link':
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
