/** Running digests on the hashing thread, and uploads that survive losing it. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDigest } from '@flotilla/protocol';
import {
  createGlobalBlobStore,
  createLinkedBlobStore,
  type GlobalBlobStore,
} from '../src/domain/blobs.js';
import { createDigester, inlineDigest, type Digester } from '../src/domain/digests.js';
import { createUploadSessions, type UploadSessions } from '../src/domain/uploads.js';
import { createFilesystemDriver, type StorageDriver } from '../src/storage/driver.js';
import { StoragePaths } from '../src/storage/paths.js';

function sha256(...parts: Buffer[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** A Buffer over shared memory, like the staging buffers the hashing thread reads in place. */
function sharedCopy(bytes: Buffer): Buffer {
  const shared = Buffer.from(new SharedArrayBuffer(bytes.length + 3), 3, bytes.length);
  bytes.copy(shared);
  return shared;
}

let digester: Digester;
beforeEach(() => {
  digester = createDigester();
});
afterEach(async () => {
  await digester.close();
});

describe('digester', () => {
  it('hashes shared and private chunks on the thread exactly as node:crypto does, and can go on after hex()', async () => {
    const parts = [
      randomBytes(1),
      randomBytes(1024 * 1024),
      randomBytes(65_537),
      randomBytes(0),
      randomBytes(3_000_001),
    ];
    const digest = digester.start('sha256');
    await digest.update(sharedCopy(parts[0]!));
    await digest.update(parts[1]!.subarray(0)); // private memory: sent as a copy
    expect(await digest.hex()).toBe(sha256(parts[0]!, parts[1]!));
    await Promise.all([
      digest.update(sharedCopy(parts[2]!)),
      digest.update(parts[3]!),
      digest.update(sharedCopy(parts[4]!)),
    ]);
    expect(await digest.hex()).toBe(sha256(...parts));
    digest.dispose();
    await expect(digest.hex()).rejects.toThrow(/disposed/);
  });

  it('keeps concurrent digests apart', async () => {
    const a = [randomBytes(70_000), randomBytes(900_000)];
    const b = [randomBytes(123_456), randomBytes(7)];
    const [da, db] = [digester.start('sha256'), digester.start('sha256')];
    await Promise.all([
      da.update(sharedCopy(a[0]!)),
      db.update(sharedCopy(b[0]!)),
      da.update(a[1]!),
      db.update(b[1]!),
    ]);
    expect(await Promise.all([da.hex(), db.hex()])).toEqual([sha256(...a), sha256(...b)]);
  });

  it('settles an update only once the thread has read the chunk', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const shared = sharedCopy(bytes);
    const digest = digester.start('sha256');
    await digest.update(shared);
    shared.fill(0); // the caller may reuse the memory now
    expect(await digest.hex()).toBe(sha256(bytes));
  });

  it('hashes other algorithms inline, and everything inline once closed', async () => {
    const bytes = randomBytes(10_000);
    const sha512 = digester.start('sha512');
    sha512.update(bytes);
    expect(await sha512.hex()).toBe(createHash('sha512').update(bytes).digest('hex'));
    await digester.close();
    const after = digester.start('sha256');
    expect(after.update(bytes)).toBeUndefined(); // inline: nothing to wait for
    expect(await after.hex()).toBe(sha256(bytes));
  });

  it('fails a running digest whose thread went away, at hex()', async () => {
    const digest = digester.start('sha256');
    await digest.update(randomBytes(1000));
    await digester.close();
    await expect(digest.hex()).rejects.toThrow();
    expect(await inlineDigest('sha256').hex()).toBe(sha256());
  });
});

describe('uploads with a hashing thread', () => {
  let dir: string;
  let driver: StorageDriver;
  let blobs: GlobalBlobStore;
  let uploads: UploadSessions;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-digests-'));
    driver = createFilesystemDriver(dir);
    blobs = createGlobalBlobStore(driver);
    uploads = createUploadSessions({
      driver,
      blobs,
      logger: pino({ level: 'silent' }),
      ttlMs: 60_000,
      digester,
    });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('completes an upload whose running digest was lost by re-hashing the data on disk', async () => {
    const parts = [randomBytes(3 * 1024 * 1024 + 5), randomBytes(777_777)];
    const digest = parseDigest(`sha256:${sha256(...parts)}`);
    const session = await uploads.create('lost/thread');
    await uploads.append('lost/thread', session.uuid, Readable.from([parts[0]!]));
    await digester.close(); // the thread holding this session's state is gone
    const info = await uploads.complete(
      'lost/thread',
      session.uuid,
      digest,
      createLinkedBlobStore(driver, blobs, 'lost/thread'),
      Readable.from([parts[1]!]),
    );
    expect(info).toEqual({ digest: digest.digest, size: parts[0]!.length + parts[1]!.length });
    expect(
      (await driver.getContent(StoragePaths.blobData(digest))).equals(Buffer.concat(parts)),
    ).toBe(true);
  });

  it('refuses a wrong digest computed on the thread', async () => {
    const session = await uploads.create('wrong/digest');
    await expect(
      uploads.complete(
        'wrong/digest',
        session.uuid,
        parseDigest(`sha256:${sha256(Buffer.from('other'))}`),
        createLinkedBlobStore(driver, blobs, 'wrong/digest'),
        Readable.from([randomBytes(2 * 1024 * 1024)]),
      ),
    ).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
  });
});
