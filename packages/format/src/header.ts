import { Encoder } from '@msgpack/msgpack';
import { EdgecapError, ErrorCodes, type DataType } from '@edgecap/core';
import { encodeFrame } from './frame.js';
import { FILE_MAGIC, FORMAT_VERSION, FrameType } from './layout.js';

/** Self-describing file metadata, the first frame of every capture file. */
export interface CaptureFileHeader {
  v: number;
  /** Unique, stable file id (also the sync dedup key). */
  id: string;
  kind: string;
  name: string;
  method: string;
  type: DataType;
  tags: string[];
  /** Capture start, µs since the epoch. */
  start_us: number;
  part_id?: string;
  mime_type?: string;
  params?: Record<string, unknown>;
}

export type HeaderInit = Omit<CaptureFileHeader, 'v' | 'id'> & { id?: string };

/**
 * The global WebCrypto, not an import of node:crypto: this module is in every collector thread's
 * bundle, which never names a file, and node:crypto costs each such thread ~4 ms of its boot.
 */
export function newFileId(): string {
  return globalThis.crypto.randomUUID();
}

const enc = new Encoder({ ignoreUndefined: true });

/** FILE_MAGIC followed by the HEADER frame: the first bytes of a new capture file. */
export function encodeFileStart(init: HeaderInit): { bytes: Uint8Array; header: CaptureFileHeader } {
  const header: CaptureFileHeader = { v: FORMAT_VERSION, id: init.id ?? newFileId(), ...init } as CaptureFileHeader;
  header.v = FORMAT_VERSION;
  const frame = encodeFrame(FrameType.HEADER, enc.encode(header));
  const bytes = new Uint8Array(FILE_MAGIC.length + frame.length);
  bytes.set(FILE_MAGIC, 0);
  bytes.set(frame, FILE_MAGIC.length);
  return { bytes, header };
}

/** Validate a decoded header object; throws FILE_INVALID naming the bad field. */
export function checkHeader(h: unknown, file?: string): CaptureFileHeader {
  const where = file ? ` in ${file}` : '';
  if (typeof h !== 'object' || h === null) throw new EdgecapError(ErrorCodes.FILE_INVALID, `header is not a map${where}`);
  const o = h as Record<string, unknown>;
  for (const f of ['id', 'kind', 'name', 'method'] as const) {
    if (typeof o[f] !== 'string' || (o[f] as string).length === 0) {
      throw new EdgecapError(ErrorCodes.FILE_INVALID, `header field "${f}" missing or not a string${where}`, { details: { field: f, file } });
    }
  }
  if (o.type !== 'tabular' && o.type !== 'binary') {
    throw new EdgecapError(ErrorCodes.FILE_INVALID, `header field "type" must be tabular|binary${where}`, { details: { field: 'type', file } });
  }
  if (typeof o.start_us !== 'number') {
    throw new EdgecapError(ErrorCodes.FILE_INVALID, `header field "start_us" missing${where}`, { details: { field: 'start_us', file } });
  }
  if (!Array.isArray(o.tags)) o.tags = [];
  return o as unknown as CaptureFileHeader;
}
