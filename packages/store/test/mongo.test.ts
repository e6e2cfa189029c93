import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeContract } from '../src/contract.js';
import { createMongoStore, DuplicateKeyError } from '../src/index.js';

/**
 * Runs the contract suite against MongoDB: MONGODB_URL when set, else a `mongo:7` container
 * when testcontainers finds a container runtime, else it registers a skipped suite and says why.
 */

const RUNTIME_PROBE_MS = 10_000;

async function probeContainerRuntime(): Promise<string | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${RUNTIME_PROBE_MS} ms`)),
        RUNTIME_PROBE_MS,
      );
    });
    try {
      await Promise.race([getContainerRuntimeClient(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const configuredUrl = process.env.MONGODB_URL;
const runtimeProblem = configuredUrl ? undefined : await probeContainerRuntime();

if (runtimeProblem !== undefined) {
  console.log(
    `mongo contract suite skipped: MONGODB_URL is not set and testcontainers found no container runtime (${runtimeProblem})`,
  );
  describe.skip('store contract: mongo (no MONGODB_URL, no container runtime)', () => {
    it('runs the contract suite against MongoDB', () => {});
  });
} else {
  describe('mongo', () => {
    let url = configuredUrl ?? '';
    let stop: () => Promise<unknown> = async () => undefined;

    beforeAll(async () => {
      if (configuredUrl) return;
      const { GenericContainer, Wait } = await import('testcontainers');
      const container = await new GenericContainer('mongo:7')
        .withExposedPorts(27017)
        .withWaitStrategy(Wait.forLogMessage(/Waiting for connections/))
        .start();
      url = `mongodb://${container.getHost()}:${container.getMappedPort(27017)}`;
      stop = () => container.stop();
    }, 180_000);

    afterAll(async () => {
      await stop();
    });

    storeContract('mongo', async () => {
      const dbName = `flotilla_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      return {
        store: createMongoStore({ url, dbName }),
        reopen: async () => createMongoStore({ url, dbName }),
        // Separate clients over one database: replicas in separate processes.
        another: async () => createMongoStore({ url, dbName }),
        cleanup: async () => {
          const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
          try {
            await client.db(dbName).dropDatabase();
          } finally {
            await client.close();
          }
        },
      };
    });

    it('maps E11000 to the same DuplicateKeyError class as the embedded store', async () => {
      const store = createMongoStore({ url, dbName: `flotilla_test_${randomUUID().slice(0, 8)}` });
      try {
        const c = store.collection('dup');
        await c.insertOne({ _id: 'x' });
        await expect(c.insertOne({ _id: 'x' })).rejects.toBeInstanceOf(DuplicateKeyError);
      } finally {
        await store.close();
      }
    });
  });
}
