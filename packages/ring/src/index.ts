export { createRingBuffer, maxRecordBytes, RingProducer, RingConsumer, Doorbell, MIN_RING_BYTES, type Fill, type RecordHandler } from './ring.js';
export { Ctrl, Counter, Bell, Sleep, RingState, DATA_OFFSET, RECORD_HEADER_BYTES, PAD_MARKER, align4 } from './layout.js';
