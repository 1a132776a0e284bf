export { messageBytes } from './types.js';
export type {
  Bus,
  BusMessage,
  BusConsumer,
  BatchHandler,
  ConsumeOptions,
  ConsumedBatch,
  ConsumedMessage,
} from './types.js';
// The capture format belongs to the protocol; re-exported for producers and consumers that only see the bus.
export {
  encodeCapture,
  decodeCapture,
  CaptureSources,
  CAPTURE_CONTENT_TYPE,
  CAPTURE_EVENT_TYPE,
} from '../protocol/capture.js';
export type { CapturedCall, CapturedBody, CaptureSource, CaptureRecord } from '../protocol/capture.js';
export { InProcessBus } from './in-process.js';
export type { InProcessBusOptions } from './in-process.js';
export { KafkaBus, kafkaErrorRetryable } from './kafka.js';
export type { KafkaBusOptions } from './kafka.js';
export { KafkaWorkerBus } from './kafka-worker.js';
export type { KafkaWorkerBusOptions } from './kafka-worker.js';
export { RecordRing } from './record-ring.js';
export type { RecordBuffers, RecordRingOptions } from './record-ring.js';
