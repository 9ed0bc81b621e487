import fs from 'node:fs';

export interface DiskUsage {
  /** 1 - bavail/blocks: blocks reserved for root count as used. */
  usedFraction: number;
  usedBytes: number;
  totalBytes: number;
}

/** Usage of the filesystem holding `dir` (fs.statfsSync). */
export function diskUsage(dir: string): DiskUsage {
  return usageOf(fs.statfsSync(dir));
}

/** Usage from a statfs answer (sync or async). */
export function usageOf(s: fs.StatsFs): DiskUsage {
  const total = s.blocks * s.bsize;
  if (s.blocks <= 0) return { usedFraction: 0, usedBytes: 0, totalBytes: 0 };
  const usedBlocks = s.blocks - s.bavail;
  return { usedFraction: usedBlocks / s.blocks, usedBytes: usedBlocks * s.bsize, totalBytes: total };
}

/** The shape a statfs replacement (unit tests) must return. */
export type StatfsFn = (dir: string) => { usedFraction: number; usedBytes: number };
