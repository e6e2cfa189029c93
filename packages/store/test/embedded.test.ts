import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeContract } from '../src/contract.js';
import {
  CorruptDatafileError,
  createEmbeddedStore,
  findCorruptLines,
  openStore,
  repairDatafile,
  type StoreLogger,
} from '../src/index.js';

storeContract('embedded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-store-'));
  return {
    store: createEmbeddedStore({ dir, compactIntervalMs: 0 }),
    reopen: async () => createEmbeddedStore({ dir, compactIntervalMs: 0 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

const silent: StoreLogger = { debug() {}, info() {}, warn() {}, error() {} };

async function dataLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('embedded store files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates its directory and keeps one datafile per collection', async () => {
    const nested = join(dir, 'a', 'b');
    const store = createEmbeddedStore({ dir: nested, compactIntervalMs: 0 });
    await store.collection('blobs').insertOne({ size: 1 });
    await store.collection('tags.v2').insertOne({ name: 'x' });
    await store.close();
    expect((await readdir(nested)).sort()).toEqual(['blobs.db', 'tags.v2.db']);
  });

  it('compacts at close: one line per live document and index', async () => {
    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    const docs = store.collection<{ n: number }>('docs');
    await docs.createIndex({ keys: { n: 1 } });
    for (let i = 0; i < 10; i += 1) await docs.insertOne({ _id: `d${i}`, n: i });
    for (let round = 0; round < 5; round += 1) await docs.updateMany({}, { $inc: { n: 100 } });
    await docs.deleteMany({ _id: { $in: ['d0', 'd1', 'd2'] } });
    const before = await dataLines(join(dir, 'docs.db'));
    expect(before.length).toBeGreaterThan(60);

    await store.close();
    const after = await dataLines(join(dir, 'docs.db'));
    const live = after.filter((line) => typeof line._id === 'string');
    expect(live.map((d) => d._id).sort()).toEqual(['d3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9']);
    expect(live.every((d) => typeof d.n === 'number' && d.n >= 500)).toBe(true);
    expect(after.filter((line) => '$$indexCreated' in line)).toHaveLength(1);
    expect(after).toHaveLength(8);
  });

  it('compacts periodically while open', async () => {
    const store = createEmbeddedStore({ dir, compactIntervalMs: 20 });
    try {
      const docs = store.collection<{ n: number }>('docs');
      await docs.insertOne({ _id: 'only', n: 0 });
      for (let i = 0; i < 30; i += 1) await docs.updateOne({ _id: 'only' }, { $inc: { n: 1 } });
      // Bounded wait for the timer to rewrite the file; the assertion is on content, not time.
      let lines = await dataLines(join(dir, 'docs.db'));
      for (let i = 0; i < 200 && lines.length !== 1; i += 1) {
        await sleep(25);
        lines = await dataLines(join(dir, 'docs.db'));
      }
      expect(lines).toEqual([{ _id: 'only', n: 30 }]);
    } finally {
      await store.close();
    }
  });

  it('close is idempotent and refuses new collections afterwards', async () => {
    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    await store.collection('x').insertOne({ a: 1 });
    await Promise.all([store.close(), store.close()]);
    await store.close();
    expect(() => store.collection('y')).toThrow(/closed/);
    await expect(store.ping()).rejects.toThrow(/closed/);
  });

  it('refuses collection names that are not safe file names', () => {
    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    for (const name of ['../escape', 'a/b', '', '.hidden', 'a..b', 'x'.repeat(121)]) {
      expect(() => store.collection(name), name).toThrow(TypeError);
    }
  });

  it('drops a write torn by a crash at the end of the datafile and loads the rest', async () => {
    const lines = ['{"_id":"a","n":1}', '{"_id":"b","n":2}', '{"_id":"a","n":3}'];
    await writeFile(join(dir, 'docs.db'), `${lines.join('\n')}\n{"_id":"c","n":`);
    const warnings: string[] = [];
    const store = createEmbeddedStore({
      dir,
      compactIntervalMs: 0,
      logger: { ...silent, warn: (_obj, msg) => warnings.push(msg ?? '') },
    });
    const docs = store.collection<{ n: number }>('docs');
    expect(await docs.find({}, { sort: { _id: 1 } })).toEqual([
      { _id: 'a', n: 3 },
      { _id: 'b', n: 2 },
    ]);
    expect(warnings).toEqual(['dropped a torn write at the end of the datafile']);
    await docs.insertOne({ _id: 'c', n: 4 });
    await store.close();
    const reopened = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    expect(await reopened.collection('docs').countDocuments()).toBe(3);
    await reopened.close();
  });

  it('reports a corrupt datafile from ping and from operations', async () => {
    await writeFile(join(dir, 'broken.db'), 'not json\n'.repeat(20));
    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    const broken = store.collection('broken');
    await expect(broken.findOne({})).rejects.toThrow();
    await expect(store.ping()).rejects.toThrow();
    await store.close();
  });
});

describe('openStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens the embedded store under <dataDir>/db without a MongoDB URL', async () => {
    const store = openStore({ dataDir: dir, logger: silent });
    expect(store.kind).toBe('embedded');
    await store.collection('repositories').insertOne({ name: 'fedora/httpd' });
    await store.ping();
    await store.close();
    expect(await readdir(join(dir, 'db'))).toEqual(['repositories.db']);
  });

  it('opens MongoDB when a URL is given, connecting lazily', async () => {
    const store = openStore({
      dataDir: dir,
      mongoUrl: 'mongodb://127.0.0.1:1/none',
      logger: silent,
    });
    expect(store.kind).toBe('mongo');
    await store.close();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('corrupt datafiles', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeDatafile(lines: string[]): Promise<string> {
    const file = join(dir, 'docs.db');
    await writeFile(file, `${lines.join('\n')}\n`);
    return file;
  }

  const good = Array.from({ length: 30 }, (_, i) => JSON.stringify({ _id: `d${i}`, n: i }));

  it('refuses to load a datafile with any corrupt line, naming the file, the line and the repair command', async () => {
    // One bad line in 32 is far under nedb's own 10 % threshold.
    const lines = [...good.slice(0, 4), '{"_id":"d4","n":', ...good.slice(5), '{"n":7}'];
    const file = await writeDatafile(lines);
    const errors: string[] = [];
    const store = createEmbeddedStore({
      dir,
      compactIntervalMs: 0,
      logger: { ...silent, error: (_obj, msg) => errors.push(msg ?? '') },
    });
    const docs = store.collection('docs');
    const failure = await docs.find({}).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(CorruptDatafileError);
    const message = (failure as Error).message;
    expect(message).toContain(file);
    expect(message).toContain('line 5');
    expect(message).toContain('5, 31');
    expect(message).toContain(`flotilla store repair ${file}`);
    await expect(docs.insertOne({ n: 1 })).rejects.toBeInstanceOf(CorruptDatafileError);
    await expect(store.ping()).rejects.toBeInstanceOf(CorruptDatafileError);
    expect(errors).toContain('refusing to load a corrupt datafile');
    await store.close();
    // Nothing was rewritten: the bad lines are still there for the repair to keep.
    expect((await readFile(file, 'utf8')).split('\n')[4]).toBe('{"_id":"d4","n":');
  });

  it('repair keeps a copy of every dropped line and leaves a datafile that loads', async () => {
    const lines = [...good.slice(0, 4), '{"_id":"d4","n":', ...good.slice(5), 'garbage'];
    const file = await writeDatafile(lines);
    expect((await findCorruptLines(file)).map((l) => l.line)).toEqual([5, 31]);

    const report = await repairDatafile(file, new Date('2026-01-02T03:04:05.000Z'));
    expect(report).toMatchObject({ file, keptLines: 29, droppedLines: [5, 31] });
    expect(report.droppedFile).toBe(`${file}.dropped-2026-01-02T03-04-05.000Z`);
    expect(await readFile(report.droppedFile as string, 'utf8')).toBe(
      '5\t{"_id":"d4","n":\n31\tgarbage\n',
    );
    expect(await findCorruptLines(file)).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual([
      'docs.db',
      'docs.db.dropped-2026-01-02T03-04-05.000Z',
    ]);

    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    expect(await store.collection('docs').countDocuments()).toBe(29);
    await store.close();

    // A whole file is left as it is.
    expect(await repairDatafile(file)).toMatchObject({ droppedLines: [] });
  });
});
