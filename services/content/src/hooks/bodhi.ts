import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { isDigest, isValidRepositoryName, isValidTag } from '@flotilla/protocol';
import { DuplicateKeyError } from '@flotilla/store';
import type { ContentCollections } from '../collections.js';
import { contentProblem } from '../domain/errors.js';

export const SIGNATURE_HEADER = 'x-flotilla-signature';
export const TIMESTAMP_HEADER = 'x-flotilla-timestamp';

export const bodhiBuildSchema = z
  .object({
    repository: z.string().refine(isValidRepositoryName, 'invalid repository name'),
    tag: z.string().refine(isValidTag, 'invalid tag').optional(),
    digest: z.string().refine(isDigest, 'invalid digest').optional(),
  })
  .strict()
  .refine(
    (b) => (b.tag === undefined) !== (b.digest === undefined),
    'a build names a tag or a digest',
  );

export const bodhiPayloadSchema = z
  .object({
    update: z.string().min(1).max(200),
    status: z.enum(['testing', 'stable']),
    builds: z.array(bodhiBuildSchema).min(1).max(500),
  })
  .strict();
export type BodhiPayload = z.infer<typeof bodhiPayloadSchema>;

/** `sha256=<hex>` of HMAC-SHA256(secret, raw body). */
export function signBody(secret: string, body: Uint8Array | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Unix seconds, unix milliseconds or ISO-8601 → ms since the epoch. */
export function parseTimestamp(value: string): number | undefined {
  const s = value.trim();
  if (/^\d{1,16}$/.test(s)) {
    const n = Number(s);
    return n > 1e12 ? n : n * 1000;
  }
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Verifies a signed delivery: HMAC over the exact body (constant-time compare), timestamp
 * within the skew window. Returns the replay key (the signature).
 */
export function verifySignedDelivery(input: {
  secret: string;
  rawBody: Buffer;
  signature: string | undefined;
  timestamp: string | undefined;
  maxSkewSeconds: number;
  now?: number;
}): string {
  const { signature, timestamp } = input;
  if (!signature || !/^sha256=[0-9a-fA-F]{64}$/.test(signature)) {
    throw contentProblem(
      'webhook-unauthenticated',
      'missing or malformed X-Flotilla-Signature (sha256=<hex>)',
    );
  }
  const expected = Buffer.from(signBody(input.secret, input.rawBody).slice(7), 'hex');
  const given = Buffer.from(signature.slice(7), 'hex');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw contentProblem('webhook-unauthenticated', 'signature does not match the body');
  }
  const at = timestamp === undefined ? undefined : parseTimestamp(timestamp);
  if (at === undefined)
    throw contentProblem('webhook-unauthenticated', 'missing or malformed X-Flotilla-Timestamp');
  const skew = Math.abs((input.now ?? Date.now()) - at);
  if (skew > input.maxSkewSeconds * 1000) {
    throw contentProblem(
      'webhook-unauthenticated',
      `timestamp is ${Math.round(skew / 1000)} s away from now (max ${input.maxSkewSeconds} s)`,
    );
  }
  return signature.slice(7).toLowerCase();
}

/**
 * Remembers every accepted delivery: a second delivery with the same signature is a replay.
 * The signature covers the body only (the contract), so the timestamp can be rewritten by
 * whoever captured a delivery; forgetting signatures after the skew window would let an old
 * update be replayed days later with a fresh timestamp. One small record per delivery is kept
 * for good.
 */
export async function rememberDelivery(
  c: ContentCollections,
  key: string,
  now = new Date(),
): Promise<void> {
  try {
    await c.webhookDeliveries.insertOne({ _id: `bodhi|${key}`, receivedAt: now });
  } catch (err) {
    if (err instanceof DuplicateKeyError)
      throw contentProblem('webhook-replayed', 'this delivery was already received');
    throw err;
  }
}
