import type { CaptureFileHeader, Reading } from '@edgecap/format';

/** One tabular reading as stored in MongoDB. */
export interface ReadingDocument {
  part_id: string;
  resource_kind: string;
  resource: string;
  method: string;
  seq: number;
  time_requested: Date;
  time_received: Date;
  time_requested_us: number;
  time_received_us: number;
  tags: string[];
  data: unknown;
}

/** Shape a reading into its document (pure). Tags: the sink's, then the file's, deduplicated. */
export function toDocument(header: CaptureFileHeader, reading: Reading, meta: { partId: string; tags: readonly string[] }): ReadingDocument {
  return {
    part_id: meta.partId || header.part_id || '',
    resource_kind: header.kind,
    resource: header.name,
    method: header.method,
    seq: reading.seq,
    time_requested: new Date(Math.floor(reading.time_requested_us / 1000)),
    time_received: new Date(Math.floor(reading.time_received_us / 1000)),
    time_requested_us: reading.time_requested_us,
    time_received_us: reading.time_received_us,
    tags: [...new Set([...meta.tags, ...(header.tags ?? [])])],
    data: reading.data,
  };
}
