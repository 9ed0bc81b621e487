/** The http model's error, apart from http.ts so importing it does not load undici. */
import { EdgecapError, ErrorCodes } from '@edgecap/core';

export class HttpResourceError extends EdgecapError {
  constructor(message: string, details: Record<string, unknown>, cause?: unknown) {
    super(ErrorCodes.RESOURCE_CALL, message, { details, cause });
  }
}
