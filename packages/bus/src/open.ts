import type { Logger } from 'pino';
import { createAmqpBus, type AmqpBusOptions } from './amqp.js';
import { createLocalBus } from './local.js';
import type { Bus } from './port.js';

export interface OpenBusOptions {
  /** RabbitMQ URL (`AMQP_URL`); unset = the in-process local bus (all-in-one). */
  amqpUrl?: string;
  logger: Logger;
  /** Passed to the AMQP adapter: connection name, reconnect back-off, publish timeout. */
  amqp?: Omit<AmqpBusOptions, 'url' | 'logger'>;
}

/** The bus a composition root should use: RabbitMQ when `amqpUrl` is set, else local. */
export async function openBus(options: OpenBusOptions): Promise<Bus> {
  if (options.amqpUrl) {
    return createAmqpBus({ ...options.amqp, url: options.amqpUrl, logger: options.logger });
  }
  return createLocalBus({ logger: options.logger });
}
