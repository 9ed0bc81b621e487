/**
 * The server's capture-file check, in one pass over the bytes: the format's own reader in
 * `seqOnly` mode — every frame's CRC, the header and GAP frames decoded, of each READING only
 * its seq peeked. Same fatal errors and messages, seqs, gaps and problem count as a full read.
 */
import { readRecords, type CaptureFileHeader, type Gap } from '@edgecap/format';

export interface CaptureScan {
  header: CaptureFileHeader | undefined;
  /** Reading seqs in file order. */
  seqs: number[];
  gaps: Gap[];
  problems: number;
  /** First fatal problem (bad magic, bad or missing header), as readRecords words it. */
  fatal?: string;
}

export function scanCapture(bytes: Uint8Array): CaptureScan {
  const out: CaptureScan = { header: undefined, seqs: [], gaps: [], problems: 0 };
  for (const ev of readRecords(bytes, undefined, { seqOnly: true })) {
    switch (ev.kind) {
      case 'header':
        out.header = ev.header;
        break;
      case 'seq':
        out.seqs.push(ev.seq);
        break;
      case 'reading':
        out.seqs.push(ev.reading.seq);
        break;
      case 'gap':
        out.gaps.push(ev.gap);
        break;
      case 'problem':
        out.problems++;
        if (ev.problem.kind === 'bad_magic' || ev.problem.kind === 'bad_header') out.fatal ??= ev.problem.reason;
        break;
    }
  }
  return out;
}
