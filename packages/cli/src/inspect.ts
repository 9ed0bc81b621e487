import fs from 'node:fs';
import { FINISHED_EXT, IN_PROGRESS_EXT } from '@edgecap/core';
import { FILE_MAGIC, listFiles, readCaptureFile, type CaptureFileSummary, type Problem } from '@edgecap/format';
import { readViamCaptureFile } from '@edgecap/viam';
import { Exit, table } from './util.js';

/** JSON-safe view of a reading: binary items as size + sha256, never bytes. */
export function jsonData(data: unknown, sha: (b: Uint8Array) => string): unknown {
  if (data instanceof Uint8Array) return { binary: { size: data.length, sha256: sha(data) } };
  return data;
}

/** Our capture file, or one in viam-server's layout (uvarint-delimited protobuf), as one shape. */
function readAnyCapture(file: string): CaptureFileSummary & { format: 'edgecap' | 'viam' } {
  const head = Buffer.alloc(FILE_MAGIC.length);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head.equals(Buffer.from(FILE_MAGIC)) || head.length === 0) return { ...readCaptureFile(file), format: 'edgecap' };
  const v = readViamCaptureFile(file);
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

/**
 * `edgecap inspect PATH [--json]`: decode a capture file (or every capture file under a dir).
 * Summary table by default, one JSON object per reading with --json. Corrupt frames are
 * reported with their offsets and make the exit code non-zero.
 */
export async function inspect(target: string, opts: { json?: boolean }, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { createHash } = await import('node:crypto');
  const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  let files: string[];
  try {
    files = fs.statSync(target).isDirectory() ? [...listFiles(target, FINISHED_EXT), ...listFiles(target, IN_PROGRESS_EXT)] : [target];
  } catch (e) {
    err.write(`edgecap: cannot read ${target}: ${(e as Error).message}\n`);
    return Exit.FAILURE;
  }
  const rows: (string | number)[][] = [];
  let corrupt = 0;
  for (const f of files) {
    const s = readAnyCapture(f);
    const bad = s.problems.filter((p: Problem) => p.kind !== 'truncated' || f.endsWith(FINISHED_EXT));
    for (const p of s.problems) {
      err.write(`${f}: ${p.kind} at offset ${p.offset} (${p.length} bytes): ${p.reason}\n`);
    }
    corrupt += bad.length;
    const h = s.header;
    if (opts.json) {
      for (const r of s.readings) {
        out.write(
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
            data: jsonData(r.data, sha),
          }) + '\n',
        );
      }
      for (const g of s.gaps) out.write(JSON.stringify({ file: f, gap: g }) + '\n');
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
  if (!opts.json) out.write(table(['file', 'stream', 'type', 'readings', 'seq', 'gap seqs', 'problems'], rows) + '\n');
  if (corrupt) {
    err.write(`edgecap: ${corrupt} corrupt frame(s) found\n`);
    return Exit.CORRUPT;
  }
  return Exit.OK;
}
