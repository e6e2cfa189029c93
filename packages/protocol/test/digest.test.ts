import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DigestHasher, OciError, digestOf, isDigest, parseDigest } from '../src/index.js';
import { ociCode } from './fixtures.js';

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const EMPTY_SHA512 =
  'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';

describe('parseDigest', () => {
  it('parses sha256 and sha512', () => {
    expect(parseDigest(EMPTY_SHA256)).toEqual({
      algorithm: 'sha256',
      hex: EMPTY_SHA256.slice(7),
      digest: EMPTY_SHA256,
    });
    expect(parseDigest(EMPTY_SHA512)).toMatchObject({
      algorithm: 'sha512',
      hex: EMPTY_SHA512.slice(7),
    });
  });

  it.each([
    ['', 'DIGEST_INVALID'],
    ['sha256', 'DIGEST_INVALID'],
    ['sha256:', 'DIGEST_INVALID'],
    [':abc', 'DIGEST_INVALID'],
    [EMPTY_SHA256.toUpperCase(), 'DIGEST_INVALID'],
    [EMPTY_SHA256.replace('e3b0', 'E3B0'), 'DIGEST_INVALID'],
    [EMPTY_SHA256.slice(0, -1), 'DIGEST_INVALID'],
    [`${EMPTY_SHA256}0`, 'DIGEST_INVALID'],
    [EMPTY_SHA256.replace('e3b0', 'g3b0'), 'DIGEST_INVALID'],
    [`${EMPTY_SHA256} `, 'DIGEST_INVALID'],
    [EMPTY_SHA512.slice(0, 71), 'DIGEST_INVALID'],
    ['sha256:../../etc/passwd', 'DIGEST_INVALID'],
    ['md5:d41d8cd98f00b204e9800998ecf8427e', 'UNSUPPORTED'],
    ['blake3:abc', 'UNSUPPORTED'],
    ['sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564', 'UNSUPPORTED'],
    ['multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8', 'UNSUPPORTED'],
  ])('refuses %j with %s', (value, code) => {
    expect(ociCode(() => parseDigest(value))).toBe(code);
  });

  it('refuses non-strings with DIGEST_INVALID and gives unsupported algorithms status 400', () => {
    expect(ociCode(() => parseDigest(42 as unknown as string))).toBe('DIGEST_INVALID');
    try {
      parseDigest('md5:abc');
    } catch (err) {
      expect((err as OciError).status).toBe(400);
    }
  });

  it('isDigest agrees', () => {
    expect(isDigest(EMPTY_SHA256)).toBe(true);
    expect(isDigest(EMPTY_SHA512)).toBe(true);
    expect(isDigest('md5:abc')).toBe(false);
    expect(isDigest(undefined)).toBe(false);
  });
});

describe('digestOf', () => {
  it('hashes bytes with sha256 by default and sha512 on request', () => {
    expect(digestOf(new Uint8Array())).toBe(EMPTY_SHA256);
    expect(digestOf(new Uint8Array(), 'sha512')).toBe(EMPTY_SHA512);
    expect(digestOf(Buffer.from('abc'))).toBe(
      'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
  it('refuses an unknown algorithm', () => {
    expect(ociCode(() => digestOf(new Uint8Array(), 'md5' as 'sha256'))).toBe('UNSUPPORTED');
  });
});

async function run(hasher: DigestHasher, chunks: (Uint8Array | string)[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks, { objectMode: false }),
    hasher,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('DigestHasher', () => {
  it('passes bytes through, counts them and hashes them', async () => {
    const hasher = new DigestHasher();
    const out = await run(hasher, [Buffer.from('ab'), Buffer.from(''), Buffer.from('c')]);
    expect(out.toString()).toBe('abc');
    expect(hasher.bytes).toBe(3);
    expect(hasher.digest()).toBe(digestOf(Buffer.from('abc')));
  });

  it('accepts content that matches the expected digest', async () => {
    const hasher = new DigestHasher({ expected: digestOf(Buffer.from('abc')) });
    await run(hasher, ['a', 'bc']);
    expect(hasher.digest()).toBe(digestOf(Buffer.from('abc')));
  });

  it('fails in flush with DIGEST_INVALID when the content differs', async () => {
    const expected = digestOf(Buffer.from('abc'));
    const hasher = new DigestHasher({ expected });
    const failure = await run(hasher, [Buffer.from('abd')]).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(OciError);
    expect((failure as OciError).code).toBe('DIGEST_INVALID');
    expect((failure as OciError).detail).toMatchObject({
      expected,
      actual: digestOf(Buffer.from('abd')),
      size: 3,
    });
  });

  it('takes its algorithm from the expected digest', async () => {
    const hasher = new DigestHasher({ expected: digestOf(Buffer.from('x'), 'sha512') });
    expect(hasher.algorithm).toBe('sha512');
    await run(hasher, ['x']);
    expect(hasher.digest()).toBe(digestOf(Buffer.from('x'), 'sha512'));
  });

  it('refuses a malformed expected digest, a conflicting algorithm, and digest() before the end', () => {
    expect(ociCode(() => new DigestHasher({ expected: 'sha256:nope' }))).toBe('DIGEST_INVALID');
    expect(ociCode(() => new DigestHasher({ expected: 'md5:abc' }))).toBe('UNSUPPORTED');
    expect(ociCode(() => new DigestHasher({ algorithm: 'sha512', expected: EMPTY_SHA256 }))).toBe(
      'DIGEST_INVALID',
    );
    expect(() => new DigestHasher().digest()).toThrow(/before the stream ended/);
  });
});
