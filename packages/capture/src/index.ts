export { CaptureEngine, recoverAtStartup, type CaptureOptions, type StreamStats, type PushOptions } from './engine.js';
export type { CaptureMethodSpec, ResourceSpec, WriterEvent, StreamInfo } from './types.js';
export { Writer, realFs, type WriterFs, type SeqSink, type WriterOptions, type WriterDeps } from './writer.js';
export { Collector, type CollectorInit, type CollectorStreamStart } from './collector.js';
export { StreamEmitter, type EmitterShared } from './emitter.js';
export { loadResource, enabledMethods } from './resource.js';
export { SIM_MODELS, type ResourceCtx, type LoadedResource } from './sims.js';
export { ManagedWorker, type WorkerState } from './managed-worker.js';
export { Stat, RecType, RecFlag, RecOff, REC_PREFIX_BYTES, newStatsSab, newResSab } from './layout.js';
