import { status } from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes } from '@edgecap/core';

/**
 * A request the server refuses. `status` is the gRPC status sent to the client; the
 * message is the status details, written for a human (never a stack trace).
 *
 *   UNAUTHENTICATED   missing or wrong API key
 *   INVALID_ARGUMENT  anything wrong with the request itself (permanent: retrying the same
 *                     bytes fails the same way) — unknown fields, missing metadata, checksum
 *                     or size mismatch, oversize, hostile file name, bad capture file
 */
export class RequestRejected extends EdgecapError {
  readonly status: status;
  constructor(grpcStatus: status, message: string, details?: Record<string, unknown>) {
    super(grpcStatus === status.UNAUTHENTICATED ? ErrorCodes.UNAUTHENTICATED : ErrorCodes.UPLOAD_REJECTED, message, { details });
    this.name = 'RequestRejected';
    this.status = grpcStatus;
  }
}

export function invalid(message: string, details?: Record<string, unknown>): RequestRejected {
  return new RequestRejected(status.INVALID_ARGUMENT, message, details);
}
