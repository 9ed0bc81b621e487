/**
 * The last reading of each stream, for the status page, read from the files the writer is
 * writing: no hook in the capture threads, and nothing is done unless a page is open.
 *
 *   <capture_dir>/<kind>/<resource>/<method>/<newest>.prog ──read what was appended since
 *   the last poll (bounded)──► RecordStream ──► last reading kept per stream
 *
 * The writer flushes every flush_interval_ms, so the page lags capture by about that much.
 * When the writer rotates to a new file the cursor follows the newest .prog.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RecordStream, isInProgressCapture, type Reading } from '@edgecap/format';

export interface LastReading {
  seq: number;
  timeRequestedUs: number;
  mimeType?: string;
  /** Tabular values flattened to [path, text] rows (bounded). */
  values?: [string, string][];
  /** Binary readings: the bytes (served as a thumbnail when they are an image). */
  bytes?: Uint8Array;
  size?: number;
}

interface Cursor {
  file: string;
  offset: number;
  rs: RecordStream;
  mime?: string;
}

/** Bytes read per poll across all streams: a page catches up with big files over several polls. */
const MAX_READ_PER_POLL = 8 * 1024 * 1024;
const MAX_ROWS = 40;
const MAX_TEXT = 200;

/** Flatten a value into at most MAX_ROWS [path, text] rows, iteratively (depth is bounded by the row cap). */
export function flattenValues(v: unknown): [string, string][] {
  const rows: [string, string][] = [];
  const stack: [string, unknown][] = [['', v]];
  while (stack.length > 0 && rows.length < MAX_ROWS) {
    const [p, x] = stack.pop()!;
    if (x instanceof Uint8Array) rows.push([p, `<${x.length} bytes>`]);
    else if (x !== null && typeof x === 'object' && !(x instanceof Date)) {
      const entries = x instanceof Map ? [...x.entries()].map(([k, y]) => [String(k), y] as const) : Object.entries(x as Record<string, unknown>);
      if (entries.length === 0) rows.push([p, Array.isArray(x) ? '[]' : '{}']);
      // Reverse so the first key is popped first (rows keep the value's order).
      for (let i = Math.min(entries.length, MAX_ROWS) - 1; i >= 0; i--) {
        const [k, y] = entries[i]!;
        stack.push([p ? `${p}.${k}` : k, y]);
      }
    } else {
      const s = typeof x === 'string' ? x : typeof x === 'bigint' ? x.toString() : x instanceof Date ? x.toISOString() : String(x);
      rows.push([p || '(value)', s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s]);
    }
  }
  return rows;
}

export class LastReadings {
  private readonly cursors = new Map<string, Cursor>();
  private readonly last = new Map<string, LastReading>();
  /** Where the next poll starts, rotated so one busy stream cannot take the budget every time. */
  private start = 0;

  constructor(private readonly captureDir: string) {}

  get(key: string): LastReading | undefined {
    return this.last.get(key);
  }

  /** Read what was appended to each stream's newest in-progress file since the last poll. */
  poll(streams: readonly { kind: string; resource: string; method: string }[]): void {
    let budget = MAX_READ_PER_POLL;
    const n = streams.length;
    this.start = n > 0 ? (this.start + 1) % n : 0;
    for (let i = 0; i < n && budget > 0; i++) {
      const s = streams[(this.start + i) % n]!;
      const key = streamKey(s);
      try {
        budget -= this.pollOne(key, path.join(this.captureDir, s.kind, s.resource, s.method), budget);
      } catch {
        // A file renamed or removed between listing and reading: the next poll picks the new one.
      }
    }
  }

  /** Returns the bytes read (at most `budget`). */
  private pollOne(key: string, dir: string, budget: number): number {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter(isInProgressCapture);
    } catch {
      return 0;
    }
    if (names.length === 0) return 0;
    // Names start with a sortable UTC time stamp: the last is the newest.
    const file = path.join(dir, names.sort().at(-1)!);
    let c = this.cursors.get(key);
    if (!c || c.file !== file) {
      c = { file, offset: 0, rs: new RecordStream(file) };
      this.cursors.set(key, c);
    }
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const n = Math.min(size - c.offset, budget);
      if (n <= 0) return 0;
      const buf = Buffer.allocUnsafe(n);
      const got = fs.readSync(fd, buf, 0, n, c.offset);
      c.offset += got;
      const cur = c;
      let latest = undefined as { r: Reading; mime: string | undefined } | undefined;
      cur.rs.push(buf.subarray(0, got), (ev) => {
        if (ev.kind === 'header') cur.mime = ev.header.mime_type;
        // Only the newest reading of the chunk is converted (a fast stream appends thousands).
        if (ev.kind === 'reading') latest = { r: ev.reading, mime: ev.reading.mime_type ?? cur.mime };
      });
      if (!latest) return got;
      const { r, mime } = latest;
      const out: LastReading = { seq: r.seq, timeRequestedUs: r.time_requested_us };
      if (mime) out.mimeType = mime;
      if (r.data instanceof Uint8Array) {
        out.size = r.data.length;
        // Copy: events hold views into the pushed chunk.
        out.bytes = Uint8Array.from(r.data);
      } else out.values = flattenValues(r.data);
      this.last.set(key, out);
      return got;
    } finally {
      fs.closeSync(fd);
    }
  }
}

export const streamKey = (s: { kind: string; resource: string; method: string }): string => `${s.kind}/${s.resource}/${s.method}`;
