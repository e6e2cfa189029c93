import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createMongoStore, type StoreLogger } from '../src/index.js';

/** The mongo adapter's lazy connection, exercised without a MongoDB server: nothing listens. */

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function recordingLogger(lines: string[]): StoreLogger {
  const record = (level: string) => (_obj: object, msg?: string) =>
    lines.push(`${level} ${msg ?? ''}`);
  return {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
  };
}

describe('mongo store connection', () => {
  it('connects lazily, retries with back-off, fails, and starts over on the next operation', async () => {
    const lines: string[] = [];
    const store = createMongoStore({
      url: `mongodb://127.0.0.1:${await closedPort()}/?directConnection=true`,
      serverSelectionTimeoutMS: 150,
      connectAttempts: 2,
      logger: recordingLogger(lines),
    });
    expect(store.kind).toBe('mongo');
    const items = store.collection('items');
    expect(lines).toEqual([]);

    await expect(store.ping()).rejects.toThrow();
    expect(lines).toEqual([
      'warn failed to connect to mongodb, retrying',
      'error failed to connect to mongodb',
    ]);

    await expect(items.findOne({})).rejects.toThrow();
    expect(lines).toHaveLength(4);

    await store.close();
    await store.close();
    await expect(store.ping()).rejects.toThrow(/closed/);
    await expect(items.insertOne({ a: 1 })).rejects.toThrow(/closed/);
    expect(() => store.collection('other')).toThrow(/closed/);
  });

  it('refuses malformed updates before touching the server', async () => {
    const store = createMongoStore({
      url: `mongodb://127.0.0.1:${await closedPort()}`,
      connectAttempts: 1,
    });
    const items = store.collection('items');
    await expect(items.updateOne({}, {})).rejects.toThrow(TypeError);
    await expect(items.updateMany({}, { $rename: { a: 'b' } } as never)).rejects.toThrow(TypeError);
    await expect(items.insertOne({ _id: 7 } as never)).rejects.toThrow(TypeError);
    await store.close();
  });
});
