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

/** Wall-clock time in integer microseconds since the epoch (sub-ms precision via performance.now). */
export function nowMicros(): number {
  return Math.floor((origin + performance.now()) * 1000);
}
