import type { StreamKey } from '@edgecap/core';

export interface CaptureMethodSpec {
  method: string;
  frequencyHz: number;
  additionalParams?: Record<string, unknown>;
  /** Ring size in bytes (config `capture_queue_size`); the resource's ring uses the largest. */
  queueBytes?: number;
  disabled?: boolean;
}

export interface ResourceSpec {
  name: string;
  kind?: string;
  /** A built-in model: 'sim:sensor' | 'sim:movement_sensor' | 'sim:camera' | 'http' */
  model?: string;
  /** Absolute path (or file: URL) of a user resource module. */
  module?: string;
  export?: string;
  attributes?: Record<string, unknown>;
  methods: CaptureMethodSpec[];
  /**
   * 'thread' (default): a collector thread of its own. 'shared': the one shared collector thread,
   * beside every other resource that opted in (not isolated from them; see engine.ts).
   */
  collector?: 'thread' | 'shared';
  /**
   * V8 heap limit of the resource's own collector thread, MB (default COLLECTOR_HEAP_MB). A
   * collector that outgrows it ends and is restarted like any crashed one; the others go on. The
   * shared thread has the default.
   */
  heapMb?: number;
}

/** What the writer needs to know about a stream. */
export interface StreamInfo {
  index: number;
  key: StreamKey;
  mimeType?: string;
  params?: Record<string, unknown>;
  statsSab: SharedArrayBuffer;
  /** Set when this writer replaces one that died: every seq below is in a file or explained. */
  resumeFrom?: number;
}

/** A frame too large for the ring, sent by message in ring order (see README). */
export interface OversizeMessage {
  ringId: number;
  token: number;
  frame: Uint8Array;
}

export type WriterEvent =
  | { type: 'file-finished'; path: string; header: unknown; readings: number }
  | { type: 'write-error'; code: string; message: string; path: string | undefined };
