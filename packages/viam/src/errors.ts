import { EdgecapError, ErrorCodes, type ErrorCode } from '@edgecap/core';

/**
 * Something about viam data edgecap cannot use: a malformed `.capture` file
 * (EDGECAP_ERR_FILE_INVALID), or an upload that breaks the viam.app.datasync.v1 contract
 * (EDGECAP_ERR_UPLOAD_REJECTED, answered INVALID_ARGUMENT by the ingest server).
 */
export class ViamDataError extends EdgecapError {
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, { details });
    this.name = 'ViamDataError';
  }
}

export const invalidUpload = (message: string, details?: Record<string, unknown>): ViamDataError =>
  new ViamDataError(ErrorCodes.UPLOAD_REJECTED, message, details);

export const invalidFile = (message: string, details?: Record<string, unknown>): ViamDataError =>
  new ViamDataError(ErrorCodes.FILE_INVALID, message, details);
