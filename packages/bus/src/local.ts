import { parseEvent, type EventEnvelope } from '@flotilla/protocol';
import { pino, type Logger } from 'pino';
import {
  deliveryPolicy,
  errorText,
  retryDelay,
  type DeadLetter,
  type DeliveryPolicy,
} from './delivery.js';
import type { Bus, EventHandler, SubscribeOptions, Subscription } from './port.js';
import { topicMatches } from './topic.js';

export interface LocalBusOptions {
  logger?: Logger;
}

/** The in-process bus, with `deadLetters()` to inspect what landed in `flotilla.dead`. */
export interface LocalBus extends Bus {
  readonly kind: 'local';
  /** A copy of the dead-letter list (oldest first). */
  deadLetters(): DeadLetter[];
}

interface QueuedMessage {
  /** The event as JSON: every delivery parses a fresh copy, as from a broker. */
  body: string;
  /** Retries already made (0 on first delivery). */
  retries: number;
}

interface LocalConsumer {
  readonly handler: EventHandler;
  readonly policy: DeliveryPolicy;
  active: boolean;
  readonly running: Set<Promise<void>>;
}

interface LocalQueue {
  readonly name: string;
  readonly patterns: Set<string>;
  readonly ready: QueuedMessage[];
  consumers: LocalConsumer[];
  /** Round-robin cursor over consumers. */
  next: number;
  dispatchScheduled: boolean;
}

/**
 * An in-process bus with the AMQP adapter's semantics: topic bindings, durable (for the
 * life of the process) FIFO queues that keep collecting while no consumer is attached,
 * asynchronous delivery, per-consumer prefetch, competing consumers, retry with exponential
 * back-off and a dead-letter list. Nothing survives a restart; use the outbox for events
 * that must not be lost.
 */
export function createLocalBus(options: LocalBusOptions = {}): LocalBus {
  const logger = (options.logger ?? pino({ level: 'silent' })).child({
    component: 'bus',
    bus: 'local',
  });
  const queues = new Map<string, LocalQueue>();
  const retryTimers = new Set<NodeJS.Timeout>();
  const dead: DeadLetter[] = [];
  let closed = false;

  function scheduleDispatch(queue: LocalQueue): void {
    if (queue.dispatchScheduled || closed) return;
    queue.dispatchScheduled = true;
    // Never deliver inside publish() or a handler's continuation: always on a later turn.
    setImmediate(() => {
      queue.dispatchScheduled = false;
      dispatch(queue);
    });
  }

  function pickConsumer(queue: LocalQueue): LocalConsumer | undefined {
    const count = queue.consumers.length;
    for (let i = 0; i < count; i += 1) {
      const consumer = queue.consumers[(queue.next + i) % count];
      if (consumer && consumer.active && consumer.running.size < consumer.policy.prefetch) {
        queue.next = (queue.next + i + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  function dispatch(queue: LocalQueue): void {
    while (!closed && queue.ready.length > 0) {
      const consumer = pickConsumer(queue);
      if (!consumer) return;
      const message = queue.ready.shift() as QueuedMessage;
      deliver(queue, consumer, message);
    }
  }

  function deliver(queue: LocalQueue, consumer: LocalConsumer, message: QueuedMessage): void {
    const run = handle(queue, consumer, message).finally(() => {
      consumer.running.delete(run);
      scheduleDispatch(queue);
    });
    consumer.running.add(run);
  }

  async function handle(
    queue: LocalQueue,
    consumer: LocalConsumer,
    message: QueuedMessage,
  ): Promise<void> {
    let event: EventEnvelope;
    try {
      event = parseEvent(JSON.parse(message.body));
    } catch (err) {
      deadLetter(queue.name, message, undefined, err);
      return;
    }
    try {
      await consumer.handler(event);
    } catch (err) {
      if (message.retries >= consumer.policy.maxRetries) {
        deadLetter(queue.name, message, event, err);
        return;
      }
      if (closed) {
        logger.warn(
          { err, queue: queue.name, eventId: event.id },
          'handler failed after close, message dropped',
        );
        return;
      }
      const retries = message.retries + 1;
      const delayMs = retryDelay(consumer.policy, retries);
      logger.warn(
        {
          err,
          queue: queue.name,
          eventId: event.id,
          eventType: event.type,
          retry: retries,
          delayMs,
        },
        'handler failed, retrying',
      );
      const timer = setTimeout(() => {
        retryTimers.delete(timer);
        // Back to the tail of the queue, as AMQP dead-lettering from the retry queue does.
        queue.ready.push({ body: message.body, retries });
        scheduleDispatch(queue);
      }, delayMs);
      retryTimers.add(timer);
    }
  }

  function deadLetter(
    queue: string,
    message: QueuedMessage,
    event: EventEnvelope | undefined,
    err: unknown,
  ): void {
    const letter: DeadLetter = {
      queue,
      body: message.body,
      attempts: event ? message.retries + 1 : message.retries,
      error: errorText(err),
      at: new Date().toISOString(),
      ...(event ? { event } : {}),
    };
    dead.push(letter);
    logger.error(
      {
        queue,
        eventId: event?.id,
        eventType: event?.type,
        attempts: letter.attempts,
        error: letter.error,
      },
      'message dead-lettered',
    );
  }

  return {
    kind: 'local',

    async publish(event: EventEnvelope): Promise<void> {
      if (closed) throw new Error('bus is closed');
      const body = JSON.stringify(event);
      for (const queue of queues.values()) {
        for (const pattern of queue.patterns) {
          if (topicMatches(pattern, event.type)) {
            queue.ready.push({ body, retries: 0 });
            scheduleDispatch(queue);
            break;
          }
        }
      }
    },

    async subscribe(
      queueName: string,
      bindings: string[],
      handler: EventHandler,
      subscribeOptions?: SubscribeOptions,
    ): Promise<Subscription> {
      if (closed) throw new Error('bus is closed');
      const policy = deliveryPolicy(subscribeOptions);
      let queue = queues.get(queueName);
      if (!queue) {
        queue = {
          name: queueName,
          patterns: new Set(),
          ready: [],
          consumers: [],
          next: 0,
          dispatchScheduled: false,
        };
        queues.set(queueName, queue);
      }
      for (const pattern of bindings) queue.patterns.add(pattern);
      const consumer: LocalConsumer = { handler, policy, active: true, running: new Set() };
      queue.consumers.push(consumer);
      scheduleDispatch(queue);
      const owner = queue;
      return {
        async cancel(): Promise<void> {
          consumer.active = false;
          owner.consumers = owner.consumers.filter((c) => c !== consumer);
          owner.next = 0;
          await Promise.allSettled([...consumer.running]);
        },
      };
    },

    async ping(): Promise<void> {
      if (closed) throw new Error('bus is closed');
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const timer of retryTimers) clearTimeout(timer);
      retryTimers.clear();
      const running: Promise<void>[] = [];
      for (const queue of queues.values()) {
        for (const consumer of queue.consumers) {
          consumer.active = false;
          running.push(...consumer.running);
        }
      }
      await Promise.allSettled(running);
    },

    deadLetters(): DeadLetter[] {
      return [...dead];
    },
  };
}
