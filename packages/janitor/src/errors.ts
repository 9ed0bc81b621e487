import { EdgecapError, ErrorCodes, type ErrorCode } from '@edgecap/core';

/** Errors raised by the janitor; codes are the shared `EDGECAP_ERR_*` codes from core. */
export class JanitorError extends EdgecapError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
    this.name = 'JanitorError';
  }
}

export const janitorClosed = (): JanitorError => new JanitorError(ErrorCodes.CLOSED, 'janitor is stopped/closed');
