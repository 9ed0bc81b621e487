export { Janitor, type JanitorOptions, type JanitorStats, type JanitorRound } from './janitor.js';
export { JanitorCore, gapsOf, type JanitorCoreOptions } from './core.js';
export { diskUsage, type DiskUsage, type StatfsFn } from './usage.js';
export { scanCaptureDir, everyNth, type Candidate, type ScanResult } from './scan.js';
export { JanitorError } from './errors.js';
