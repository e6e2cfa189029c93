export * from './port.js';
export { createLocalBus, type LocalBus, type LocalBusOptions } from './local.js';
export {
  ATTEMPT_HEADER,
  DEFAULT_TOPOLOGY,
  createAmqpBus,
  retryQueueName,
  type AmqpBus,
  type AmqpBusOptions,
  type AmqpTopology,
} from './amqp.js';
export { openBus, type OpenBusOptions } from './open.js';
export {
  createOutbox,
  type Outbox,
  type OutboxOptions,
  type OutboxRecord,
  type OutboxState,
} from './outbox.js';
export {
  DEFAULT_MAX_RETRIES,
  DEFAULT_MAX_RETRY_DELAY_MS,
  DEFAULT_PREFETCH,
  DEFAULT_RETRY_DELAY_MS,
  type DeadLetter,
} from './delivery.js';
export { topicMatches } from './topic.js';
