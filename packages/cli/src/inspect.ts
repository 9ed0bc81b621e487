import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { FINISHED_EXT, IN_PROGRESS_EXT } from '@edgecap/core';
import { FILE_MAGIC, finishedPathOf, listFiles, readCaptureBytes, type CaptureFileSummary, type Problem } from '@edgecap/format';
import { readViamCaptureBytes } from '@edgecap/viam';
import { Exit, table, UsageError, writeOut, type Out } from './util.js';

/** How a capture read from stdin is named in the output. */
const STDIN_NAME = '<stdin>';
const STDIN_PATHS = new Set(['/dev/stdin', '/dev/fd/0', '/proc/self/fd/0']);

/** JSON-safe view of a reading: binary items as size + sha256 (+ viam annotations), never bytes. */
export function jsonData(data: unknown, sha: (b: Uint8Array) => string, annotations?: unknown): unknown {
  if (data instanceof Uint8Array) return { binary: { size: data.length, sha256: sha(data), ...(annotations !== undefined ? { annotations } : {}) } };
  return data;
}

type AnyCapture = CaptureFileSummary & { format: 'edgecap' | 'viam' };

function unreadable(kind: Problem['kind'], length: number, reason: string): AnyCapture {
  return { format: 'edgecap', header: undefined, readings: [], gaps: [], problems: [{ kind, offset: 0, length, reason }], goodEnd: 0 };
}

/**
 * Our capture file, or one in viam-server's layout (uvarint-delimited protobuf), as one shape.
 * Bytes that are neither (garbage, a file cut inside the magic) are one problem saying so.
 */
function readAnyCapture(bytes: Uint8Array, file: string): AnyCapture {
  if (bytes.length === 0) return unreadable('truncated', 0, 'empty file (0 bytes)');
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, FILE_MAGIC.length));
  if (head.equals(Buffer.from(FILE_MAGIC).subarray(0, head.length))) {
    if (bytes.length < FILE_MAGIC.length) return unreadable('truncated', bytes.length, `cut short: ${bytes.length} bytes, inside the ${FILE_MAGIC.length}-byte edgecap file magic`);
    return { ...readCaptureBytes(bytes, file), format: 'edgecap' };
  }
  const v = readViamCaptureBytes(bytes);
  if (!v.metadata) {
    const why = v.problems[0]?.reason;
    return unreadable('corrupt', bytes.length, `not a capture file: ${bytes.length} bytes that are neither edgecap's format nor viam-server's${why ? ` (${why})` : ''}`);
  }
  const m = v.metadata;
  return {
    format: 'viam',
    header: m
      ? {
          v: 0,
          id: '',
          kind: m.component_type,
          name: m.component_name,
          method: m.method_name,
          type: String(m.type).includes('BINARY') ? 'binary' : 'tabular',
          tags: m.tags ?? [],
          start_us: 0,
        }
      : undefined,
    readings: v.readings.map((r, i) => ({ ...r, seq: i, offset: 0, ...(r.mime_type ? { mime_type: r.mime_type } : {}) })),
    gaps: [],
    problems: v.problems.map((p) => ({ kind: p.kind === 'truncated' ? 'truncated' : 'corrupt', offset: p.offset, length: 0, reason: p.reason })),
    goodEnd: 0,
  };
}

async function readAll(src: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of src) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A file's bytes, or undefined when it is gone (a live capture renames and deletes files). */
function readIfThere(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * What to decode: `-` is stdin; a pipe, socket or device (`/dev/stdin`) is read as a stream
 * (it cannot be read at an offset); a folder is every capture file under it, in progress or
 * finished, by name (names start with the time, so each stream's files come in order).
 */
async function* sources(target: string): AsyncGenerator<{ name: string; bytes: Buffer }> {
  const stdin = async (): Promise<Buffer> => {
    if (process.stdin.isTTY) throw new UsageError('PATH', `${target} reads a capture file from stdin, which is a terminal: pipe or redirect one in`);
    return readAll(process.stdin);
  };
  if (target === '-') {
    yield { name: STDIN_NAME, bytes: await stdin() };
    return;
  }
  const st = fs.statSync(target);
  if (!st.isDirectory()) {
    // stdin by name is read from fd 0: a socket there (node's own pipes) cannot be opened by path
    const bytes = st.isFile() ? fs.readFileSync(target) : STDIN_PATHS.has(target) ? await stdin() : await readAll(fs.createReadStream(target));
    yield { name: target, bytes };
    return;
  }
  // In-progress files are listed first: one renamed to its final name between the two listings
  // is then in both, and read once, under the final name.
  const prog = listFiles(target, IN_PROGRESS_EXT);
  const listed = new Set([...prog, ...listFiles(target, FINISHED_EXT)]);
  for (const f of [...listed].sort()) {
    let name = f;
    let bytes = readIfThere(f);
    if (!bytes && f.endsWith(IN_PROGRESS_EXT)) {
      // finished (renamed) since the listing: read it under its new name, unless listed already
      name = finishedPathOf(f);
      bytes = listed.has(name) ? undefined : readIfThere(name);
    }
    if (bytes) yield { name, bytes };
    // else gone: synced and deleted, or read under its final name: not a problem of the folder
  }
}

/**
 * `edgecap inspect PATH [--json]`: decode a capture file (or every capture file under a dir, or
 * one from stdin with `-`). Summary table by default, one JSON object per reading with --json.
 * Corrupt frames (and truncated ones, except in files still in progress) are reported with
 * their offsets and make the exit code non-zero.
 */
export async function inspect(target: string, opts: { json?: boolean }, out: Out, err: NodeJS.WritableStream): Promise<number> {
  const { createHash } = await import('node:crypto');
  const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  const rows: (string | number)[][] = [];
  let corrupt = 0;
  const it = sources(target);
  for (;;) {
    let next: IteratorResult<{ name: string; bytes: Buffer }>;
    try {
      next = await it.next();
    } catch (e) {
      if (e instanceof UsageError) throw e;
      err.write(`edgecap: cannot read ${target}: ${(e as Error).message}\n`);
      return Exit.FAILURE;
    }
    if (next.done) break;
    const { name: f, bytes } = next.value;
    const s = readAnyCapture(bytes, f);
    // a torn tail is the normal state of a file still being written, and only of that
    const bad = s.problems.filter((p: Problem) => p.kind !== 'truncated' || !f.endsWith(IN_PROGRESS_EXT));
    for (const p of s.problems) {
      err.write(`${f}: ${p.kind} at offset ${p.offset} (${p.length} bytes): ${p.reason}\n`);
    }
    corrupt += bad.length;
    const h = s.header;
    if (opts.json) {
      for (const r of s.readings) {
        await writeOut(
          out,
          JSON.stringify({
            file: f,
            format: s.format,
            file_id: h?.id || undefined,
            resource_kind: h?.kind,
            resource: h?.name,
            method: h?.method,
            seq: r.seq,
            time_requested_us: r.time_requested_us,
            time_received_us: r.time_received_us,
            ...(r.mime_type ?? h?.mime_type ? { mime_type: r.mime_type ?? h?.mime_type } : {}),
            data: jsonData(r.data, sha, r.annotations),
          }) + '\n',
        );
      }
      for (const g of s.gaps) await writeOut(out, JSON.stringify({ file: f, gap: g }) + '\n');
    } else {
      const seqs = s.readings.map((r) => r.seq);
      rows.push([
        f,
        h ? `${h.kind}/${h.name}/${h.method}` : '?',
        h?.type ?? '?',
        s.readings.length,
        seqs.length ? `${seqs[0]}..${seqs[seqs.length - 1]}` : '-',
        s.gaps.reduce((a, g) => a + g.to_seq - g.from_seq + 1, 0),
        s.problems.length,
      ]);
    }
  }
  if (!opts.json) await writeOut(out, table(['file', 'stream', 'type', 'readings', 'seq', 'gap seqs', 'problems'], rows) + '\n');
  if (corrupt) {
    err.write(`edgecap: ${corrupt} problem(s) found (corrupt or truncated data)\n`);
    return Exit.CORRUPT;
  }
  return Exit.OK;
}
