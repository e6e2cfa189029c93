import { parseEvent, type EventEnvelope } from '@flotilla/protocol';
import amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from 'pino';
import { deliveryPolicy, errorText, retryDelay, type DeliveryPolicy } from './delivery.js';
import type { Bus, EventHandler, SubscribeOptions, Subscription } from './port.js';

/** Exchange and queue names; override only to isolate tests on a shared broker. */
export interface AmqpTopology {
  /** Durable topic exchange every event is published to (routing key = event type). */
  exchange: string;
  /** Durable fanout exchange for messages that exhausted their retries or were garbage. */
  deadExchange: string;
  /** Durable queue bound to `deadExchange`. */
  deadQueue: string;
}

export const DEFAULT_TOPOLOGY: AmqpTopology = {
  exchange: 'flotilla.events',
  deadExchange: 'flotilla.dead',
  deadQueue: 'flotilla.dead',
};

/** Header carrying how many retries a message has been through (0 or absent = first delivery). */
export const ATTEMPT_HEADER = 'x-flotilla-attempt';

export interface AmqpBusOptions {
  url: string;
  logger: Logger;
  /** Shown by the broker (`rabbitmqctl list_connections client_properties`). Default `flotilla`. */
  connectionName?: string;
  /** Reconnection back-off: doubles from initialDelayMs up to maxDelayMs, with jitter. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Bound on opening one connection (TCP and AMQP handshake). Default 10 s. */
  connectTimeoutMs?: number;
  /** How long publish() and subscribe() wait for a lost connection to come back. Default 30 s. */
  publishTimeoutMs?: number;
  topology?: Partial<AmqpTopology>;
}

export interface AmqpBus extends Bus {
  readonly kind: 'amqp';
  /** True while a connection with its publishing channel is up. */
  readonly connected: boolean;
}

/** The per-queue retry queue: messages wait there for their TTL, then dead-letter back. */
export function retryQueueName(queue: string): string {
  return `${queue}.retry`;
}

interface Session {
  readonly connection: ChannelModel;
  readonly publisher: ConfirmChannel;
  /** Set synchronously when the connection closes, before any awaiting code resumes. */
  lost: boolean;
  publisherClosed: boolean;
}

interface AmqpSubscription {
  readonly queue: string;
  readonly bindings: readonly string[];
  readonly handler: EventHandler;
  readonly policy: DeliveryPolicy;
  active: boolean;
  channel: Channel | null;
  consumerTag: string | null;
  readonly running: Set<Promise<void>>;
}

interface SessionWaiter {
  resolve(session: Session): void;
  reject(err: Error): void;
}

const STRIPPED_HEADERS = new Set([
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
]);
const STRIPPED_PREFIX = 'x-last-death-';

/**
 * The RabbitMQ adapter. Publishing goes through a confirm channel (publish resolves on the
 * broker's ack); each subscription gets its own channel, a durable queue bound to its
 * patterns, a durable retry queue `<queue>.retry` and manual acks. A failed handler's message
 * is copied to the retry queue with a per-message TTL (the retry delay) and the header
 * `x-flotilla-attempt` incremented; the retry queue dead-letters it back to the main queue.
 * After `maxRetries` it is copied to the `flotilla.dead` fanout exchange instead. The
 * original is acked only once its copy is confirmed, so a crash in between duplicates a
 * message but never loses one.
 *
 * The first connection must succeed (the promise rejects otherwise). After that, a lost
 * connection is re-opened with jittered exponential back-off, the topology re-declared and
 * every active subscription resumed; publish() waits for the connection meanwhile.
 */
export async function createAmqpBus(options: AmqpBusOptions): Promise<AmqpBus> {
  const logger = options.logger.child({ component: 'bus', bus: 'amqp' });
  const topology: AmqpTopology = { ...DEFAULT_TOPOLOGY, ...options.topology };
  const initialDelayMs = options.reconnect?.initialDelayMs ?? 500;
  const maxDelayMs = Math.max(initialDelayMs, options.reconnect?.maxDelayMs ?? 30_000);
  const waitTimeoutMs = options.publishTimeoutMs ?? 30_000;
  const connectionName = options.connectionName ?? 'flotilla';
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;

  let session: Session | null = null;
  let closing = false;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let reconnectAttempt = 0;
  let connecting: Promise<void> | null = null;
  const waiters = new Set<SessionWaiter>();
  const subscriptions = new Set<AmqpSubscription>();

  async function declareTopology(channel: Channel): Promise<void> {
    await channel.assertExchange(topology.exchange, 'topic', { durable: true });
    await channel.assertExchange(topology.deadExchange, 'fanout', { durable: true });
    await channel.assertQueue(topology.deadQueue, { durable: true });
    await channel.bindQueue(topology.deadQueue, topology.deadExchange, '');
  }

  async function openSession(): Promise<Session> {
    const connection = await amqp.connect(options.url, {
      clientProperties: { connection_name: connectionName },
      // Bounds the TCP + AMQP handshake, so a black-holed broker cannot stall a reconnection.
      timeout: connectTimeoutMs,
    });
    let current: Session | null = null;
    let lostEarly = false;
    connection.on('error', (err: unknown) => logger.warn({ err }, 'amqp connection error'));
    connection.on('close', () => {
      if (current) onConnectionLost(current);
      else lostEarly = true;
    });
    try {
      const publisher = await connection.createConfirmChannel();
      const s: Session = { connection, publisher, lost: lostEarly, publisherClosed: false };
      current = s;
      publisher.on('error', (err: unknown) =>
        logger.warn({ err }, 'amqp publishing channel error'),
      );
      publisher.on('close', () => {
        s.publisherClosed = true;
        // Publishers wait for the next session rather than spin on a dead channel.
        if (session === s) session = null;
        if (!s.lost && !closing) {
          logger.warn('amqp publishing channel closed, reconnecting');
          void connection.close().catch(() => undefined);
        }
      });
      await declareTopology(publisher);
      for (const sub of subscriptions) await startConsumer(sub, s);
      if (s.lost || s.publisherClosed) throw new Error('connection lost while opening');
      return s;
    } catch (err) {
      // Marked lost first so the close event does not schedule a reconnection of its own.
      if (current) current.lost = true;
      else lostEarly = true;
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  function onConnectionLost(s: Session): void {
    if (s.lost) return;
    s.lost = true;
    if (session === s) session = null;
    for (const sub of subscriptions) {
      sub.channel = null;
      sub.consumerTag = null;
    }
    if (closing) return;
    logger.warn('amqp connection lost, reconnecting');
    scheduleReconnect();
  }

  function scheduleReconnect(): void {
    if (closing || reconnectTimer || connecting) return;
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** reconnectAttempt);
    const delayMs = Math.round(base / 2 + (Math.random() * base) / 2);
    reconnectAttempt += 1;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      connecting = reconnectOnce().finally(() => {
        connecting = null;
        if (!session) scheduleReconnect();
      });
    }, delayMs);
  }

  async function reconnectOnce(): Promise<void> {
    let s: Session;
    try {
      s = await openSession();
    } catch (err) {
      logger.warn({ err, attempt: reconnectAttempt }, 'failed to reconnect to amqp broker');
      return;
    }
    if (closing) {
      await s.connection.close().catch(() => undefined);
      return;
    }
    session = s;
    reconnectAttempt = 0;
    logger.info({ subscriptions: subscriptions.size }, 'amqp connection re-established');
    for (const waiter of waiters) waiter.resolve(s);
    waiters.clear();
  }

  function waitForSession(timeoutMs: number): Promise<Session> {
    if (closing) return Promise.reject(new Error('bus is closed'));
    if (session && !session.lost && !session.publisherClosed) return Promise.resolve(session);
    return new Promise<Session>((resolve, reject) => {
      const waiter: SessionWaiter = {
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`amqp broker unreachable for ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  function publishOn(
    channel: ConfirmChannel,
    exchange: string,
    routingKey: string,
    content: Buffer,
    publishOptions: Options.Publish,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        channel.publish(exchange, routingKey, content, publishOptions, (err: unknown) =>
          err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
        );
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  async function startConsumer(sub: AmqpSubscription, s: Session): Promise<void> {
    if (!sub.active) return;
    const channel = await s.connection.createChannel();
    channel.on('error', (err: unknown) =>
      logger.warn({ err, queue: sub.queue }, 'amqp consumer channel error'),
    );
    channel.on('close', () => {
      if (sub.channel !== channel) return;
      sub.channel = null;
      sub.consumerTag = null;
      if (sub.active && !s.lost && !closing) {
        logger.warn({ queue: sub.queue }, 'amqp consumer channel closed, reconnecting');
        void s.connection.close().catch(() => undefined);
      }
    });
    await channel.assertQueue(sub.queue, { durable: true });
    for (const pattern of sub.bindings)
      await channel.bindQueue(sub.queue, topology.exchange, pattern);
    await channel.assertQueue(retryQueueName(sub.queue), {
      durable: true,
      arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': sub.queue },
    });
    await channel.prefetch(sub.policy.prefetch);
    sub.channel = channel;
    const { consumerTag } = await channel.consume(
      sub.queue,
      (message) => {
        if (!message) {
          // The broker cancelled us (the queue was deleted): declare it again and resume.
          logger.warn({ queue: sub.queue }, 'amqp consumer cancelled by the broker, resubscribing');
          if (sub.channel === channel) sub.channel = null;
          void channel.close().catch(() => undefined);
          if (sub.active && !closing && !s.lost) {
            startConsumer(sub, s).catch((err: unknown) => {
              logger.error({ err, queue: sub.queue }, 'failed to resubscribe, reconnecting');
              void s.connection.close().catch(() => undefined);
            });
          }
          return;
        }
        const run = handleMessage(sub, s, channel, message)
          .catch((err: unknown) =>
            logger.warn(
              { err, queue: sub.queue },
              'failed to settle message, broker redelivers it',
            ),
          )
          .finally(() => sub.running.delete(run));
        sub.running.add(run);
      },
      { noAck: false },
    );
    sub.consumerTag = consumerTag;
    if (s.lost) throw new Error('connection lost while subscribing');
    if (!sub.active) {
      // Cancelled while this consumer was being set up (during a reconnection).
      sub.channel = null;
      sub.consumerTag = null;
      await channel.cancel(consumerTag).catch(() => undefined);
      await Promise.allSettled([...sub.running]);
      await channel.close().catch(() => undefined);
    }
  }

  function ackQuietly(channel: Channel, message: ConsumeMessage): void {
    try {
      channel.ack(message);
    } catch (err) {
      // The channel is gone: the broker redelivers the message (at-least-once).
      logger.debug({ err }, 'ack on a closed channel');
    }
  }

  function copiedHeaders(message: ConsumeMessage): Record<string, unknown> {
    const headers: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(message.properties.headers ?? {})) {
      if (!STRIPPED_HEADERS.has(key) && !key.startsWith(STRIPPED_PREFIX)) headers[key] = value;
    }
    return headers;
  }

  function copyOptions(message: ConsumeMessage, headers: Record<string, unknown>): Options.Publish {
    const props = message.properties;
    const publishOptions: Options.Publish = {
      persistent: true,
      contentType: typeof props.contentType === 'string' ? props.contentType : 'application/json',
      headers,
    };
    if (typeof props.messageId === 'string') publishOptions.messageId = props.messageId;
    if (typeof props.type === 'string') publishOptions.type = props.type;
    if (typeof props.timestamp === 'number') publishOptions.timestamp = props.timestamp;
    return publishOptions;
  }

  async function handleMessage(
    sub: AmqpSubscription,
    s: Session,
    channel: Channel,
    message: ConsumeMessage,
  ): Promise<void> {
    const retries = Number(message.properties.headers?.[ATTEMPT_HEADER] ?? 0) || 0;
    let event: EventEnvelope;
    try {
      event = parseEvent(JSON.parse(message.content.toString('utf8')));
    } catch (err) {
      logger.error({ queue: sub.queue, err }, 'unparseable message dead-lettered');
      await deadLetter(sub, s, message, retries, err);
      ackQuietly(channel, message);
      return;
    }
    let failure: unknown;
    try {
      await sub.handler(event);
      ackQuietly(channel, message);
      return;
    } catch (err) {
      failure = err;
    }
    if (retries >= sub.policy.maxRetries) {
      logger.error(
        {
          queue: sub.queue,
          eventId: event.id,
          eventType: event.type,
          attempts: retries + 1,
          err: failure,
        },
        'message dead-lettered',
      );
      await deadLetter(sub, s, message, retries + 1, failure);
    } else {
      const retry = retries + 1;
      const delayMs = retryDelay(sub.policy, retry);
      logger.warn(
        {
          queue: sub.queue,
          eventId: event.id,
          eventType: event.type,
          retry,
          delayMs,
          err: failure,
        },
        'handler failed, retrying',
      );
      const headers = { ...copiedHeaders(message), [ATTEMPT_HEADER]: retry };
      await publishOn(s.publisher, '', retryQueueName(sub.queue), message.content, {
        ...copyOptions(message, headers),
        expiration: String(delayMs),
      });
    }
    ackQuietly(channel, message);
  }

  async function deadLetter(
    sub: AmqpSubscription,
    s: Session,
    message: ConsumeMessage,
    attempts: number,
    err: unknown,
  ): Promise<void> {
    const headers = {
      ...copiedHeaders(message),
      [ATTEMPT_HEADER]: attempts,
      'x-flotilla-queue': sub.queue,
      'x-flotilla-error': errorText(err),
      'x-flotilla-dead-at': new Date().toISOString(),
    };
    // Published on the session the message came from: if that connection is gone, the
    // original is redelivered anyway, and a copy would only duplicate it.
    await publishOn(
      s.publisher,
      topology.deadExchange,
      message.fields.routingKey,
      message.content,
      copyOptions(message, headers),
    );
  }

  async function stopConsumer(sub: AmqpSubscription): Promise<void> {
    sub.active = false;
    subscriptions.delete(sub);
    const channel = sub.channel;
    const tag = sub.consumerTag;
    if (channel && tag) await channel.cancel(tag).catch(() => undefined);
    await Promise.allSettled([...sub.running]);
    sub.channel = null;
    sub.consumerTag = null;
    if (channel) await channel.close().catch(() => undefined);
  }

  session = await openSession();
  logger.info({ connectionName }, 'amqp connection established');

  return {
    kind: 'amqp',

    get connected(): boolean {
      return session !== null;
    },

    async publish(event: EventEnvelope): Promise<void> {
      const deadline = Date.now() + waitTimeoutMs;
      const content = Buffer.from(JSON.stringify(event));
      const publishOptions: Options.Publish = {
        persistent: true,
        contentType: 'application/json',
        messageId: event.id,
        type: event.type,
        timestamp: Math.floor(Date.parse(event.time) / 1000) || Math.floor(Date.now() / 1000),
        headers: {},
      };
      for (;;) {
        const s = await waitForSession(Math.max(0, deadline - Date.now()));
        try {
          await publishOn(s.publisher, topology.exchange, event.type, content, publishOptions);
          return;
        } catch (err) {
          // A nack is final; a channel lost before the confirm is retried once reconnected
          // (the broker may have kept the first copy: at-least-once).
          if (!s.publisherClosed || closing || Date.now() >= deadline) throw err;
          logger.debug({ eventId: event.id }, 'publish interrupted by connection loss, retrying');
        }
      }
    },

    async subscribe(
      queue: string,
      bindings: string[],
      handler: EventHandler,
      subscribeOptions?: SubscribeOptions,
    ): Promise<Subscription> {
      if (queue === topology.deadQueue) {
        // Consuming the dead queue would feed dead letters back into themselves.
        throw new Error(`queue name ${queue} is reserved`);
      }
      const sub: AmqpSubscription = {
        queue,
        bindings: [...bindings],
        handler,
        policy: deliveryPolicy(subscribeOptions),
        active: true,
        channel: null,
        consumerTag: null,
        running: new Set(),
      };
      const s = await waitForSession(waitTimeoutMs);
      subscriptions.add(sub);
      try {
        await startConsumer(sub, s);
      } catch (err) {
        // A connection lost meanwhile is not the caller's problem: the reconnection resumes
        // this subscription. Anything else (a bad queue declaration) is.
        if (!s.lost) {
          subscriptions.delete(sub);
          sub.active = false;
          if (sub.channel) await sub.channel.close().catch(() => undefined);
          throw err;
        }
      }
      return { cancel: () => stopConsumer(sub) };
    },

    async ping(): Promise<void> {
      const s = session;
      if (!s || closing) throw new Error('amqp broker not connected');
      await s.publisher.checkExchange(topology.exchange);
    },

    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = undefined;
      for (const waiter of waiters) waiter.reject(new Error('bus is closed'));
      waiters.clear();
      if (connecting) await connecting;
      await Promise.all([...subscriptions].map((sub) => stopConsumer(sub)));
      const s = session;
      session = null;
      if (s) {
        s.lost = true;
        await s.publisher.close().catch(() => undefined);
        await s.connection.close().catch(() => undefined);
      }
      logger.info('amqp bus closed');
    },
  };
}
