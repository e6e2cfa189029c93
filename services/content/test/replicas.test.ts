import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { contentCollections, ensureIndexes, type ContentCollections } from '../src/collections.js';
import { claimPublicationNumber } from '../src/domain/publication-numbers.js';
import { TaskQueue, type StoredTask } from '../src/tasks/task-queue.js';
import { TaskWorker, type TaskHandler } from '../src/tasks/worker.js';

/**
 * Content task workers of three replicas over one store (in-process replicas sharing one
 * embedded store handle), under a load of concurrent submissions: one task per key at a time,
 * each task run once, and publication numbers contiguous without duplicates.
 */

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const REPLICAS = 3;
const LEASE_MS = 60_000;

interface Replica {
  queue: TaskQueue;
  worker: TaskWorker;
}

function startReplicas(c: ContentCollections, handler: TaskHandler): Replica[] {
  return Array.from({ length: REPLICAS }, () => {
    const queue = new TaskQueue(c, undefined, logger, LEASE_MS, 20);
    const worker = new TaskWorker({
      queue,
      logger,
      concurrency: 3,
      leaseMs: LEASE_MS,
      pollMs: 10,
      handlers: {
        sync: handler,
        publish: handler,
        retention: handler,
        reconcile: handler,
        gc: handler,
        sign: handler,
      },
    });
    worker.start();
    return { queue, worker };
  });
}

async function waitAllFinal(c: ContentCollections, count: number): Promise<StoredTask[]> {
  for (let i = 0; i < 2_000; i += 1) {
    const done = await c.tasks.find({ state: { $in: ['completed', 'failed', 'canceled'] } });
    if (done.length >= count) return done;
    await sleep(10);
  }
  throw new Error('tasks did not finish');
}

describe('content replicas over one store', () => {
  let dir: string;
  let store: Store;
  let c: ContentCollections;
  let replicas: Replica[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'content-replicas-'));
    store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    c = contentCollections(store);
    await ensureIndexes(c);
  });

  afterEach(async () => {
    for (const replica of replicas) await replica.worker.stop();
    replicas = [];
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs one task per key at a time across replicas, and each task once', async () => {
    const keys = ['sync:a', 'sync:b', 'publish'];
    const perKey = 8;
    const runningPerKey = new Map<string, number>();
    let overlap = 0;
    const runs = new Map<string, number>();
    replicas = startReplicas(c, async (task) => {
      const running = (runningPerKey.get(task.key) ?? 0) + 1;
      runningPerKey.set(task.key, running);
      if (running > 1) overlap += 1;
      runs.set(task._id, (runs.get(task._id) ?? 0) + 1);
      await sleep(1 + (task._id.charCodeAt(0) % 4));
      runningPerKey.set(task.key, (runningPerKey.get(task.key) ?? 1) - 1);
      return {};
    });
    const submitted = await Promise.all(
      keys.flatMap((key, k) =>
        Array.from({ length: perKey }, (_, i) =>
          (replicas[(k + i) % REPLICAS] as Replica).queue.submit({
            kind: key === 'publish' ? 'publish' : 'sync',
            key,
            params: { i },
          }),
        ),
      ),
    );
    for (const replica of replicas) replica.worker.wake();
    const done = await waitAllFinal(c, submitted.length);
    expect(done.every((t) => t.state === 'completed')).toBe(true);
    expect(overlap).toBe(0);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(runs.size).toBe(submitted.length);
    // Every key lease is given back (just after its task's final state is written).
    const held = async () =>
      (await Promise.all(keys.map((key) => c.taskKeys.holder(key)))).filter(Boolean);
    for (let i = 0; i < 200 && (await held()).length > 0; i += 1) await sleep(10);
    expect(await held()).toEqual([]);
  }, 60_000);

  it('gives publishes of several channels running at once contiguous publication numbers without duplicates', async () => {
    const channels = ['candidate', 'testing', 'stable'];
    const count = 24;
    const numbers: number[] = [];
    replicas = startReplicas(c, async (task) => {
      const channel = task.channel ?? 'stable';
      const n = await claimPublicationNumber(c, { channel, taskId: task._id });
      await sleep(1 + (n % 3));
      numbers.push(n);
      await c.publications.updateOne(
        { _id: String(n), state: 'pending' },
        { $set: { state: 'complete' } },
      );
      return { publication: n };
    });
    await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const channel = channels[i % channels.length] as string;
        return (replicas[i % REPLICAS] as Replica).queue.submit({
          kind: 'publish',
          key: `publish:${channel}`,
          channel,
          params: { channel },
        });
      }),
    );
    await waitAllFinal(c, count);
    expect([...numbers].sort((a, b) => a - b)).toEqual(
      Array.from({ length: count }, (_, i) => i + 1),
    );
    expect(await c.publications.countDocuments({ state: 'complete' })).toBe(count);
  }, 60_000);

  it('a retried publish keeps its number, and a number left pending by a failed publish is reused', async () => {
    const running = await c.tasks.insertOne({
      _id: 'running-task',
      kind: 'publish',
      state: 'running',
      key: 'publish',
      params: {},
      createdAt: new Date().toISOString(),
      attempts: 1,
      progress: {},
    });
    const doomed = await c.tasks.insertOne({ ...running, _id: 'doomed-task' });
    await c.tasks.insertOne({ ...running, _id: 'next-task' });
    expect(await claimPublicationNumber(c, { channel: 'stable', taskId: running._id })).toBe(1);
    expect(await claimPublicationNumber(c, { channel: 'stable', taskId: doomed._id })).toBe(2);
    await c.tasks.updateOne({ _id: doomed._id }, { $set: { state: 'failed' } });
    // The running task asks again (a retry after its worker died): the same number.
    expect(await claimPublicationNumber(c, { channel: 'stable', taskId: running._id })).toBe(1);
    // Number 2 belongs to a task that failed: the next publish takes it over.
    expect(await claimPublicationNumber(c, { channel: 'testing', taskId: 'next-task' })).toBe(2);
    expect(await c.publications.findOne({ _id: '2' })).toMatchObject({
      taskId: 'next-task',
      channel: 'testing',
    });
    expect(await claimPublicationNumber(c, { channel: 'testing', taskId: 'later-task' })).toBe(3);
  });
});
