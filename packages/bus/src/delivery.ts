import type { EventEnvelope } from '@flotilla/protocol';
import type { SubscribeOptions } from './port.js';

/** Subscription options with every default applied. */
export interface DeliveryPolicy {
  prefetch: number;
  maxRetries: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

export const DEFAULT_PREFETCH = 16;
export const DEFAULT_MAX_RETRIES = 5;
export const DEFAULT_RETRY_DELAY_MS = 500;
export const DEFAULT_MAX_RETRY_DELAY_MS = 60_000;

export function deliveryPolicy(options: SubscribeOptions = {}): DeliveryPolicy {
  const policy: DeliveryPolicy = {
    prefetch: options.prefetch ?? DEFAULT_PREFETCH,
    maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
    retryDelayMs: options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
    maxRetryDelayMs: options.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS,
  };
  if (!Number.isInteger(policy.prefetch) || policy.prefetch < 1) {
    throw new RangeError(`prefetch must be a positive integer, got ${options.prefetch}`);
  }
  if (!Number.isInteger(policy.maxRetries) || policy.maxRetries < 0) {
    throw new RangeError(`maxRetries must be a non-negative integer, got ${options.maxRetries}`);
  }
  if (!(policy.retryDelayMs >= 0) || !(policy.maxRetryDelayMs >= 0)) {
    throw new RangeError('retry delays must be non-negative');
  }
  return policy;
}

/**
 * Delay before retry number `retry` (1-based): retryDelayMs doubled per earlier retry,
 * capped at maxRetryDelayMs.
 */
export function retryDelay(policy: DeliveryPolicy, retry: number): number {
  const delay = policy.retryDelayMs * 2 ** Math.max(0, retry - 1);
  return Math.min(delay, policy.maxRetryDelayMs);
}

/** A message that exhausted its retries or could not be parsed as an event. */
export interface DeadLetter {
  /** The consumer queue it was taken from. */
  queue: string;
  /** The parsed event; absent when the message was not a valid event. */
  event?: EventEnvelope;
  /** The message body as received. */
  body: string;
  /** Failed handler attempts (0 when the message was rejected before any handler ran). */
  attempts: number;
  /** Why it was dead-lettered: the last handler error or the parse error. */
  error: string;
  /** ISO-8601 time it was dead-lettered. */
  at: string;
}

export function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
}
