/** Identifies one capture stream: a (resource, method) pair. */
export interface StreamKey {
  /** Resource kind (API subtype): `sensor`, `movement_sensor`, `camera`, ... */
  kind: string;
  name: string;
  method: string;
}

export type DataType = 'tabular' | 'binary';

export function streamKeyString(k: StreamKey): string {
  return `${k.kind}/${k.name}/${k.method}`;
}

const origin = performance.timeOrigin;

/**
 * A range of a stream's seqs that no file holds, and why (the reason list is format's GapReason):
 * the one shape the edge records, keeps and reports, in the ledger and in memory mode alike.
 */
export interface StreamGap {
  kind: string;
  name: string;
  method: string;
  from_seq: number;
  to_seq: number;
  reason: string;
  time_us: number;
}

/** Wall-clock time in integer microseconds since the epoch (sub-ms precision via performance.now). */
export function nowMicros(): number {
  return Math.floor((origin + performance.now()) * 1000);
}
