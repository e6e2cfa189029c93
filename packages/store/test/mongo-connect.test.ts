import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMongoStore, type StoreLogger } from '../src/index.js';
import { databaseInUrl } from '../src/mongo.js';

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

describe('mongo store options', () => {
  it('uses the database named in the connection string', () => {
    expect(databaseInUrl('mongodb://a:1,b:2/fedora?replicaSet=rs0')).toBe('fedora');
    expect(databaseInUrl('mongodb+srv://user:pw@cluster.example/flotilla-prod')).toBe(
      'flotilla-prod',
    );
    expect(databaseInUrl('mongodb://127.0.0.1:27017/?directConnection=true')).toBeUndefined();
    expect(databaseInUrl('mongodb://127.0.0.1:27017')).toBeUndefined();
  });

  it('close() during the connection back-off ends the attempts instead of reopening the client', async () => {
    const lines: string[] = [];
    const store = createMongoStore({
      url: `mongodb://127.0.0.1:${await closedPort()}/?directConnection=true`,
      serverSelectionTimeoutMS: 100,
      connectAttempts: 6,
      logger: recordingLogger(lines),
    });
    const pinging = store.ping();
    pinging.catch(() => undefined);
    // Wait (bounded) for the first failed attempt, then close during its back-off.
    for (let i = 0; i < 100 && lines.length === 0; i += 1) await sleep(20);
    expect(lines).toEqual(['warn failed to connect to mongodb, retrying']);
    await store.close();
    await expect(pinging).rejects.toThrow(/closed/);
    expect(lines.filter((l) => l.startsWith('warn'))).toHaveLength(1);
  });
});
