import type { EventEnvelope } from '@flotilla/protocol';

/**
 * The event-bus port. Adapters: `amqp` (RabbitMQ topic exchange `flotilla.events`) and
 * `local` (in-process). Both pass the contract suite in `./contract.ts`.
 *
 * Delivery is at-least-once. A handler that resolves acknowledges the message; one that
 * throws is retried with back-off, and after `maxRetries` failed attempts the message is
 * dead-lettered to `flotilla.dead`.
 */

export type EventHandler = (event: EventEnvelope) => Promise<void>;

export interface SubscribeOptions {
  /** Messages in flight for this consumer (AMQP prefetch). Default 16. */
  prefetch?: number;
  /** Attempts after the first before dead-lettering. Default 5. */
  maxRetries?: number;
  /** First retry delay; doubles each attempt. Default 500 ms. */
  retryDelayMs?: number;
  /** Upper bound of the retry delay. Default 60 s. */
  maxRetryDelayMs?: number;
}

export interface Subscription {
  /** Stops consuming (the durable queue stays and keeps collecting events). */
  cancel(): Promise<void>;
}

export interface Bus {
  readonly kind: 'local' | 'amqp';
  /** Resolves once the broker has confirmed the event (AMQP publisher confirms). */
  publish(event: EventEnvelope): Promise<void>;
  /**
   * Consumes from durable queue `queue` (by convention `flotilla.<service>.<purpose>`),
   * bound to `bindings`: event type patterns with AMQP topic wildcards (`content.*`, `#`).
   */
  subscribe(
    queue: string,
    bindings: string[],
    handler: EventHandler,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  /** Resolves when the broker answers; throws otherwise (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
