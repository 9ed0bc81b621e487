/**
 * viam-server's on-disk `.capture` files:
 *
 *   [uvarint len][DataCaptureMetadata] ([uvarint len][SensorData])*
 *
 * (protobuf messages, each prefixed with its length as an unsigned varint: Go's
 * protoutil/pbutil "delimited" framing). Reading never throws for bad input: a message that
 * does not decode is reported and skipped (its length is known); a length that runs past the
 * end is reported as truncated and ends the read.
 */
import fs from 'node:fs';
import { FILE_MAGIC } from '@edgecap/format';
import { invalidFile } from './errors.js';
import { sensorDataToReading, type ViamReading } from './convert.js';
import { decodeMessage, encodeMessage, type DataCaptureMetadata, type DataCaptureMetadata__Output, type SensorData, type SensorData__Output } from './proto.js';

export interface ViamCaptureProblem {
  kind: 'truncated' | 'corrupt' | 'bad_metadata';
  /** Byte offset of the length prefix of the message concerned. */
  offset: number;
  reason: string;
}

export interface ViamCaptureContents {
  metadata: DataCaptureMetadata__Output | undefined;
  /** Decoded SensorData messages, in file order (what an upload sends). */
  sensorData: SensorData__Output[];
  /** The same items in edgecap's model. */
  readings: ViamReading[];
  problems: ViamCaptureProblem[];
}

/** Largest single message accepted in a `.capture` file. */
export const MAX_VIAM_MESSAGE_BYTES = 256 * 1024 * 1024;

export function encodeUvarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** [value, bytes used] or undefined when the varint runs past `end` or is longer than 8 bytes. */
export function decodeUvarint(b: Uint8Array, o: number, end = b.length): [number, number] | undefined {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (o + i >= end) return undefined;
    const byte = b[o + i]!;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, i + 1];
    mul *= 0x80;
  }
  return undefined;
}

/** Encode a whole viam `.capture` file. */
export function encodeViamCapture(metadata: DataCaptureMetadata, items: readonly SensorData[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const put = (m: Uint8Array): void => {
    parts.push(encodeUvarint(m.length), m);
  };
  put(encodeMessage('DataCaptureMetadata', metadata));
  for (const sd of items) put(encodeMessage('SensorData', sd));
  return Buffer.concat(parts);
}

export function writeViamCaptureFile(file: string, metadata: DataCaptureMetadata, items: readonly SensorData[]): void {
  fs.writeFileSync(file, encodeViamCapture(metadata, items), { mode: 0o600 });
}

function isEdgecapFile(b: Uint8Array): boolean {
  return b.length >= FILE_MAGIC.length && FILE_MAGIC.every((x, i) => b[i] === x);
}

/** Plausible DataCaptureMetadata: a known data type and a method name (viam-server always sets both). */
function plausible(md: DataCaptureMetadata__Output): boolean {
  const known = ['DATA_TYPE_BINARY_SENSOR', 'DATA_TYPE_TABULAR_SENSOR', 'DATA_TYPE_FILE', 'DATA_TYPE_UNSPECIFIED'];
  return typeof md.type === 'string' && known.includes(md.type) && md.method_name.length > 0;
}

export function readViamCaptureBytes(bytes: Uint8Array): ViamCaptureContents {
  const out: ViamCaptureContents = { metadata: undefined, sensorData: [], readings: [], problems: [] };
  if (isEdgecapFile(bytes)) {
    out.problems.push({ kind: 'bad_metadata', offset: 0, reason: 'this is an edgecap capture file, not a viam-server one' });
    return out;
  }
  let o = 0;
  let first = true;
  while (o < bytes.length) {
    const lv = decodeUvarint(bytes, o);
    if (!lv) {
      out.problems.push({ kind: 'truncated', offset: o, reason: `length prefix cut off or invalid at byte ${o}` });
      break;
    }
    const [len, used] = lv;
    if (len > MAX_VIAM_MESSAGE_BYTES) {
      out.problems.push({ kind: 'corrupt', offset: o, reason: `message length ${len} at byte ${o} is implausible` });
      break;
    }
    const start = o + used;
    if (start + len > bytes.length) {
      out.problems.push({ kind: 'truncated', offset: o, reason: `message at byte ${o} needs ${len} bytes, only ${bytes.length - start} left` });
      break;
    }
    const msg = bytes.subarray(start, start + len);
    if (first) {
      first = false;
      try {
        const md = decodeMessage<DataCaptureMetadata__Output>('DataCaptureMetadata', msg);
        if (!plausible(md)) throw new Error('no method name or unknown data type');
        out.metadata = md;
      } catch (e) {
        out.problems.push({ kind: 'bad_metadata', offset: o, reason: `first message is not a DataCaptureMetadata: ${(e as Error).message}` });
        return out; // without metadata nothing after it can be trusted
      }
    } else {
      try {
        const sd = decodeMessage<SensorData__Output>('SensorData', msg);
        out.sensorData.push(sd);
        out.readings.push(sensorDataToReading(sd));
      } catch (e) {
        out.problems.push({ kind: 'corrupt', offset: o, reason: `SensorData at byte ${o} does not decode: ${(e as Error).message}` });
      }
    }
    o = start + len;
  }
  if (first) out.problems.push({ kind: 'bad_metadata', offset: 0, reason: 'empty file' });
  return out;
}

/**
 * Read a viam-server `.capture` file (what `edgecap inspect` shows): metadata, readings
 * (`data` a plain object for tabular, Uint8Array for binary) and problems. Throws only
 * when the file cannot be read at all.
 */
export function readViamCaptureFile(file: string): ViamCaptureContents {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw invalidFile(`cannot read ${file}: ${(e as Error).message}`, { file });
  }
  return readViamCaptureBytes(bytes);
}

/**
 * Cheap check (first message only) whether a file is a viam-server `.capture` file: returns
 * its metadata, or undefined (edgecap capture files, other files, unreadable files).
 */
export function probeViamCaptureFile(file: string): DataCaptureMetadata__Output | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(10);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (isEdgecapFile(head.subarray(0, n))) return undefined;
    const lv = decodeUvarint(head, 0, n);
    if (!lv || lv[0] === 0 || lv[0] > 1024 * 1024) return undefined;
    const msg = Buffer.alloc(lv[0]);
    if (fs.readSync(fd, msg, 0, msg.length, lv[1]) < msg.length) return undefined;
    const md = decodeMessage<DataCaptureMetadata__Output>('DataCaptureMetadata', msg);
    return plausible(md) ? md : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}
