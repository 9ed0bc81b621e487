/**
 * Error classes with stable string codes. Across threads, send `toWire(err)` and
 * rebuild with `fromWire()` so the receiving side still sees the right class and code.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'EDGECAP_ERR_CONFIG_INVALID',
  RESOURCE_LOAD: 'EDGECAP_ERR_RESOURCE_LOAD',
  RESOURCE_CALL: 'EDGECAP_ERR_RESOURCE_CALL',
  FRAME_CORRUPT: 'EDGECAP_ERR_FRAME_CORRUPT',
  FILE_TRUNCATED: 'EDGECAP_ERR_FILE_TRUNCATED',
  FILE_INVALID: 'EDGECAP_ERR_FILE_INVALID',
  RING_FULL: 'EDGECAP_ERR_RING_FULL',
  RECORD_TOO_LARGE: 'EDGECAP_ERR_RECORD_TOO_LARGE',
  WRITE_FAILED: 'EDGECAP_ERR_WRITE_FAILED',
  WORKER_EXITED: 'EDGECAP_ERR_WORKER_EXITED',
  PROTOCOL: 'EDGECAP_ERR_PROTOCOL',
  UPLOAD_REJECTED: 'EDGECAP_ERR_UPLOAD_REJECTED',
  UNAVAILABLE: 'EDGECAP_ERR_UNAVAILABLE',
  UNAUTHENTICATED: 'EDGECAP_ERR_UNAUTHENTICATED',
  STATE: 'EDGECAP_ERR_STATE',
  ILLEGAL_TRANSITION: 'EDGECAP_ERR_ILLEGAL_TRANSITION',
  CLOSED: 'EDGECAP_ERR_CLOSED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class EdgecapError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (file, offset, field path...). */
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EdgecapError';
    this.code = code;
    this.details = options?.details;
  }
}

export class ConfigError extends EdgecapError {
  /** Every problem at once, each naming the path of the bad field. */
  readonly issues: readonly { path: string; message: string }[];
  constructor(issues: readonly { path: string; message: string }[], source?: string) {
    const lines = issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n');
    super(ErrorCodes.CONFIG_INVALID, `invalid config${source ? ` ${source}` : ''}:\n${lines}`, { details: { issues } });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export class CorruptFrameError extends EdgecapError {
  constructor(message: string, details: { file?: string; offset: number }) {
    super(ErrorCodes.FRAME_CORRUPT, message, { details });
    this.name = 'CorruptFrameError';
  }
}

export interface WireError {
  code: string;
  message: string;
  name?: string;
  details?: Record<string, unknown> | undefined;
}

export function toWire(err: unknown): WireError {
  if (err instanceof EdgecapError) return { code: err.code, message: err.message, name: err.name, details: err.details };
  if (err instanceof Error) {
    const code = typeof (err as NodeJS.ErrnoException).code === 'string' ? (err as NodeJS.ErrnoException).code! : 'ERR_UNKNOWN';
    return { code, message: err.message, name: err.name };
  }
  return { code: 'ERR_UNKNOWN', message: String(err) };
}

const known = new Set<string>(Object.values(ErrorCodes));

export function fromWire(w: WireError): Error {
  if (known.has(w.code)) {
    const e = new EdgecapError(w.code as ErrorCode, w.message, { details: w.details });
    if (w.name) e.name = w.name;
    return e;
  }
  const e = new Error(w.message) as NodeJS.ErrnoException;
  e.code = w.code;
  return e;
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
