/** The filesystem storage driver's contract (Distribution's driver testsuite, in small). */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createFilesystemDriver,
  PathNotFoundError,
  type StorageDriver,
} from '../src/storage/driver.js';
import { StoragePaths } from '../src/storage/paths.js';
import { STAGING_BYTES } from '../src/storage/staged-writer.js';

let dir: string;
let driver: StorageDriver;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-driver-'));
  driver = createFilesystemDriver(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('filesystem driver', () => {
  it('putContent replaces atomically and leaves no temporary file', async () => {
    await driver.putContent('a/b/c', 'one');
    await driver.putContent('a/b/c', 'two');
    expect((await driver.getContent('a/b/c')).toString()).toBe('two');
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['c']);
  });

  it('missing paths raise PathNotFoundError', async () => {
    await expect(driver.getContent('nope')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.stat('nope')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.list('nope')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.reader('nope')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.touch('nope')).rejects.toBeInstanceOf(PathNotFoundError);
    await expect(driver.move('nope', 'x')).rejects.toBeInstanceOf(PathNotFoundError);
    await driver.delete('nope');
  });

  it('reader honours offsets and inclusive ends', async () => {
    await driver.putContent('f', '0123456789');
    expect(await readAll(await driver.reader('f', 3))).toBe('3456789');
    expect(await readAll(await driver.reader('f', 2, 4))).toBe('234');
  });

  it('writer appends at an offset, truncating what lies past it; cancel removes the file', async () => {
    const first = await driver.writer('up/data', 0);
    await pipeline(Readable.from([Buffer.from('hello '), Buffer.from('world')]), first.stream);
    await first.commit();
    expect(first.size).toBe(11);
    const second = await driver.writer('up/data', 6);
    await pipeline(Readable.from([Buffer.from('there')]), second.stream);
    await second.close();
    expect((await driver.getContent('up/data')).toString()).toBe('hello there');
    const third = await driver.writer('up/data', 5);
    await third.cancel();
    await expect(driver.stat('up/data')).rejects.toBeInstanceOf(PathNotFoundError);
  });

  it('writer keeps every byte and observes them in order across staging buffers and unaligned offsets', async () => {
    // staging buffers written with O_DIRECT: cover unaligned starts, odd chunk sizes,
    // several full buffers and a partial tail, appended in three sessions
    const total = 3 * STAGING_BYTES + 12_345;
    const data = Buffer.alloc(total);
    for (let i = 0; i < total; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
    const cuts = [0, 5_000, 5_000 + 2 * STAGING_BYTES + 777, total];
    for (let part = 0; part < 3; part++) {
      const start = cuts[part] as number;
      const end = cuts[part + 1] as number;
      const seen: Buffer[] = [];
      const writer = await driver.writer('up/big', start, {
        observe: (c) => {
          seen.push(Buffer.from(c));
        },
      });
      const pieces: Buffer[] = [];
      for (let at = start; at < end; at += 65_537)
        pieces.push(data.subarray(at, Math.min(at + 65_537, end)));
      await pipeline(Readable.from(pieces), writer.stream);
      await (part === 2 ? writer.commit() : writer.close());
      expect(writer.size).toBe(end);
      expect(Buffer.concat(seen).equals(data.subarray(start, end))).toBe(true);
    }
    expect((await driver.getContent('up/big')).equals(data)).toBe(true);
  });

  it('writer reuses a staging buffer only after the promise observe returned for it has settled', async () => {
    // The hashing thread reads each full staging buffer after `observe` returns; the bytes it
    // reads when it gets to them must still be the ones observed.
    const total = 5 * STAGING_BYTES + 99;
    const data = randomBytes(total); // no period: a refilled buffer never repeats the old bytes
    const observed: Buffer[] = [];
    const readLater: Array<Promise<Buffer>> = [];
    const writer = await driver.writer('up/slow-reader', 0, {
      observe: (chunk) => {
        observed.push(Buffer.from(chunk));
        const read = new Promise<Buffer>((resolve) =>
          setTimeout(() => resolve(Buffer.from(chunk)), 20),
        );
        readLater.push(read);
        return read.then(() => undefined);
      },
    });
    const pieces: Buffer[] = [];
    for (let at = 0; at < total; at += 100_003)
      pieces.push(data.subarray(at, Math.min(at + 100_003, total)));
    await pipeline(Readable.from(pieces), writer.stream);
    await writer.commit();
    expect(observed.length).toBeGreaterThan(4);
    const late = await Promise.all(readLater);
    expect(Buffer.concat(late).equals(data)).toBe(true);
    expect(Buffer.concat(observed).equals(data)).toBe(true);
    expect((await driver.getContent('up/slow-reader')).equals(data)).toBe(true);
  });

  it('writer keeps the staged bytes when its stream is destroyed (a client that went away)', async () => {
    // Less than one staging buffer plus one full buffer's worth: both must reach the file.
    const data = randomBytes(STAGING_BYTES + 300_001);
    const observed: Buffer[] = [];
    const writer = await driver.writer('up/interrupted', 0, {
      observe: (c) => void observed.push(Buffer.from(c)),
    });
    await new Promise<void>((resolve) => writer.stream.write(data, () => resolve()));
    writer.stream.on('error', () => undefined); // pipeline's handler, in the service
    writer.stream.destroy(new Error('client went away'));
    await writer.close();
    expect(writer.size).toBe(data.length);
    expect((await driver.getContent('up/interrupted')).equals(data)).toBe(true);
    // the salvaged tail is written, not hashed: the running digest is not trusted after an error
    expect(Buffer.concat(observed).equals(data.subarray(0, STAGING_BYTES))).toBe(true);
  });

  it('send copies exactly the requested range, across its reused read buffers', async () => {
    // Several read buffers' worth, so buffers are reused while earlier writes are pending; the
    // collector copies each chunk and acknowledges it later, like a socket under back-pressure.
    const data = randomBytes(9 * 1024 * 1024 + 4_321);
    await driver.putContent('blobs/send', data);
    const collect = (): { sink: Writable; bytes: () => Buffer } => {
      const parts: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          parts.push(Buffer.from(chunk));
          setImmediate(callback);
        },
      });
      return { sink, bytes: () => Buffer.concat(parts) };
    };
    for (const [start, end] of [
      [0, data.length - 1],
      [1024 * 1024 + 7, 6 * 1024 * 1024 + 9],
      [data.length - 10, data.length - 1],
    ] as const) {
      const { sink, bytes } = collect();
      expect(await driver.send('blobs/send', sink, start, end)).toBe(true);
      expect(bytes().equals(data.subarray(start, end + 1))).toBe(true);
    }
  });

  it('writer refuses an offset past the end of the file', async () => {
    await driver.putContent('short', 'abc');
    await expect(driver.writer('short', 10)).rejects.toThrow();
  });

  it('move creates parents and replaces; list and walk see the tree; walk can prune', async () => {
    await driver.putContent('src/x', 'x');
    await driver.putContent('dst/deep/y', 'old');
    await driver.move('src/x', 'dst/deep/y');
    expect((await driver.getContent('dst/deep/y')).toString()).toBe('x');
    await driver.putContent('dst/other/z', 'z');
    expect(await driver.list('dst')).toEqual(['deep', 'other']);
    const seen: string[] = [];
    await driver.walk('dst', (info) => {
      seen.push(info.path);
      return info.path === 'dst/other' ? 'skip' : undefined;
    });
    expect(seen).toEqual(['dst/deep', 'dst/deep/y', 'dst/other']);
    await driver.delete('dst');
    expect(await driver.list('')).toEqual(['src']);
  });

  it('touch sets the modification time', async () => {
    await driver.putContent('t', 't');
    const when = new Date('2020-01-01T00:00:00Z');
    await driver.touch('t', when);
    expect((await driver.stat('t')).modTime.getTime()).toBe(when.getTime());
  });

  it('refuses paths that escape the root', async () => {
    await expect(driver.getContent('../etc/passwd')).rejects.toThrow(/escapes/);
  });

  it('paths.ts builds the documented layout', () => {
    const d = { algorithm: 'sha256', hex: 'ab'.repeat(32) };
    expect(StoragePaths.blobData(d)).toBe(`blobs/sha256/ab/${d.hex}/data`);
    expect(StoragePaths.layerLink('fedora/httpd', d)).toBe(
      `repositories/fedora/httpd/_layers/sha256/${d.hex}/link`,
    );
    expect(StoragePaths.revisionLink('fedora/httpd', d)).toBe(
      `repositories/fedora/httpd/_manifests/revisions/sha256/${d.hex}/link`,
    );
    expect(StoragePaths.tagCurrentLink('fedora/httpd', '39')).toBe(
      'repositories/fedora/httpd/_manifests/tags/39/current/link',
    );
    expect(StoragePaths.uploadData('fedora/httpd', 'u')).toBe(
      'repositories/fedora/httpd/_uploads/u/data',
    );
  });
});
