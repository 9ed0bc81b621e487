/**
 * What a caller settles before a server exists: the listen address, the limits, the version.
 * Kept free of gRPC and storage so the `edgecap` library entry can export these without
 * loading the server (an edge app that never runs an ingest pays nothing for it).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { EdgecapError, ErrorCodes } from '@edgecap/core';

export const INGEST_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024 * 1024;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]+):(\d+)$/.exec(listen);
  if (!m) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `listen address ${JSON.stringify(listen)} must be HOST:PORT (IPv6 as [::1]:PORT)`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `listen port ${m[2]} is out of range`);
  return { host: m[1]!, port };
}

export interface IngestLimits {
  /** Open connections (TLS sessions) at once. */
  maxConnections: number;
  /** A connection with no call for this long is closed. */
  idleConnectionMs: number;
  /** Uploads in progress at once, all callers together. */
  maxConcurrentUploads: number;
  /** Uploads in progress on one connection. */
  maxUploadsPerConnection: number;
  /** Uploads in progress for one key (device key, or all fleet-key callers together). */
  maxUploadsPerKey: number;
  /** Time from the call's start to its metadata message. */
  firstMessageMs: number;
  /** Progress an upload must make: at least this many bytes per second ... */
  minBytesPerSecond: number;
  /** ... measured over windows of this length. */
  progressWindowMs: number;
  /** Tags per upload, and bytes per tag. */
  maxTags: number;
  maxTagBytes: number;
  /** Bytes of part id, resource kind/name, method and source. */
  maxNameBytes: number;
  /** Gaps per ReportGaps call. */
  maxGapsPerReport: number;
  /** Distinct seq runs one capture file may hold (an honest writer makes one per file). */
  maxRangesPerFile: number;
  /** viam uploads: bounding boxes + classifications one item may carry (stored and exported with it). */
  maxAnnotationsPerItem: number;
  /** UploadBatch: files in one call (one upload slot holds them all) ... */
  maxBatchFiles: number;
  /** ... and their bytes, declared and received (held in memory until the group commit). */
  maxBatchBytes: number;
}

/** The process's soft limit on open files (Linux /proc; 1024 when unknown). */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

export function defaultLimits(fdLimit = openFileLimit()): IngestLimits {
  // Connections and uploads (one staging fd each) share the fd budget, with room left for
  // storage, logs and the database.
  const budget = Math.max(64, fdLimit - 64);
  return {
    // ~80–100 KB of RSS per open TLS/HTTP2 connection (Node 20–26): 8,000 keep a node under 1 GiB.
    maxConnections: Math.max(16, Math.min(8_000, Math.floor(budget * 0.5))),
    idleConnectionMs: 5 * 60_000,
    maxConcurrentUploads: Math.max(8, Math.min(1024, Math.floor(budget * 0.25))),
    maxUploadsPerConnection: 64,
    maxUploadsPerKey: 128,
    firstMessageMs: 10_000,
    minBytesPerSecond: 512,
    progressWindowMs: 60_000,
    maxTags: 64,
    maxTagBytes: 256,
    maxNameBytes: 256,
    maxGapsPerReport: 10_000,
    maxRangesPerFile: 10_000,
    maxAnnotationsPerItem: 10_000,
    // The edge sends ≤ 256 files / 1 MiB per call (sync/src/batch.ts), fewer after a refusal: a
    // slot's memory stays bounded (maxConcurrentUploads × 8 MiB at most).
    maxBatchFiles: 256,
    maxBatchBytes: 8 * 1024 * 1024,
  };
}

export function resolveLimits(partial: Partial<IngestLimits> | undefined): IngestLimits {
  const out = { ...defaultLimits(), ...(partial ?? {}) };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `limits.${k}: ${String(v)} is not a positive number`);
  }
  return out;
}

/** `name=value` flags (`--limit maxConcurrentUploads=512`) as limit options. */
export function parseLimitFlags(flags: readonly string[]): Partial<IngestLimits> {
  const known = defaultLimits();
  const out: Partial<IngestLimits> = {};
  for (const f of flags) {
    const m = /^([A-Za-z]+)=(\d+(?:\.\d+)?)$/.exec(f);
    if (!m || !(m[1]! in known)) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `${JSON.stringify(f)}: use name=value with name one of ${Object.keys(known).join(', ')}`);
    out[m[1] as keyof IngestLimits] = Number(m[2]);
  }
  return out;
}
