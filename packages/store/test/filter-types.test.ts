import { describe, expect, it } from 'vitest';
import type { Collection, Document, Filter } from '../src/index.js';

/**
 * Compile-time checks of the typed filters (tsc -p tsconfig.test.json runs them in `npm run
 * lint`): each `@ts-expect-error` fails the type check if the line below it compiles.
 */

interface Task extends Document {
  kind: 'sync' | 'publish';
  key: string;
  state: string;
  lease?: { owner: string; expiresAt: string };
  channels?: Record<string, { version: number }>;
  tags?: string[];
}

const accepted: Filter<Task>[] = [
  { _id: 'x', key: 'k', state: { $in: ['waiting', 'running'] } },
  { 'lease.owner': 'me', 'channels.stable.version': { $gt: 1 }, tags: 'a' },
  { $or: [{ kind: 'sync' }, { lease: { $exists: false } }], $and: [{ key: 'k' }] },
];

function misspelt(tasks: Collection<Task>): Promise<unknown>[] {
  return [
    // @ts-expect-error a field Task does not have
    tasks.find({ kye: 'k' }),
    // @ts-expect-error a misspelt field inside $or
    tasks.deleteMany({ $or: [{ state: 'failed' }, { stat: 'failed' }] }),
    // @ts-expect-error a dotted path into a field Task does not have
    tasks.updateOne({ 'leese.owner': 'me' }, { $set: { state: 'waiting' } }),
    // @ts-expect-error a dotted path into a string field
    tasks.countDocuments({ 'key.length': 1 }),
  ];
}

describe('typed filters', () => {
  it('accept the document fields, dotted paths into object fields and logical operators', () => {
    expect(accepted).toHaveLength(3);
    expect(typeof misspelt).toBe('function');
  });
});
