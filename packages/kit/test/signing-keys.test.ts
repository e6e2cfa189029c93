import { createPublicKey, sign, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decryptPrivateKey,
  encryptPrivateKey,
  generateSigningKeyPair,
  loadOrCreateSigningKey,
  openKeyEnvelope,
  parsePublicKeyPem,
  publicKeyPem,
  SigningKeyError,
} from '../src/index.js';

/** Wraps go-securesystemslib's `encrypted` JSON (what sigstore puts in the PEM) as a PEM block. */
const pem = (json: string) =>
  `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from(json).toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;

describe('sigstore-encrypted signing keys', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-keys-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the PEM type and JSON fields sigstore reads, and reads them back', async () => {
    const pair = generateSigningKeyPair();
    const text = await encryptPrivateKey(pair.privateKey, 'correct horse');
    expect(text).toMatch(/^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    const body = JSON.parse(
      Buffer.from(text.split('\n').slice(1, -2).join(''), 'base64').toString('utf8'),
    ) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['kdf', 'cipher', 'ciphertext']);
    expect(body.kdf).toMatchObject({ name: 'scrypt', params: { N: 32768, r: 8, p: 1 } });
    expect(Buffer.from((body.kdf as { salt: string }).salt, 'base64')).toHaveLength(32);
    expect(body.cipher).toMatchObject({ name: 'nacl/secretbox' });
    expect(Buffer.from((body.cipher as { nonce: string }).nonce, 'base64')).toHaveLength(24);

    const back = await decryptPrivateKey(text, 'correct horse');
    const message = Buffer.from('payload');
    expect(verify('sha256', message, pair.publicKey, sign('sha256', message, back))).toBe(true);
    await expect(decryptPrivateKey(text, 'wrong')).rejects.toThrow(SigningKeyError);
  });

  it('decrypts what the Go implementation encrypted (go-securesystemslib test vector)', async () => {
    const vector =
      '{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},' +
      '"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}';
    expect((await openKeyEnvelope(Buffer.from(vector), 'supersecret')).toString()).toBe(
      'reallyimportant',
    );
    await expect(decryptPrivateKey(pem(vector), 'supersecre')).rejects.toThrow(/wrong passphrase/);
  });

  it('refuses scrypt parameters outside the accepted sets (unbounded memory)', async () => {
    const json =
      '{"kdf":{"name":"scrypt","params":{"N":1073741824,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"AA=="},"ciphertext":"AA=="}';
    await expect(decryptPrivateKey(pem(json), 'x')).rejects.toThrow(
      /unsupported scrypt parameters/,
    );
  });

  it('generates the all-in-one key once, into the secrets directory, and loads it after', async () => {
    const first = await loadOrCreateSigningKey(dir);
    expect(first.created).toBe(true);
    expect(first.path).toBe(join(dir, 'secrets', 'signing-key'));
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    expect(await readFile(`${first.path}.pub`, 'utf8')).toBe(first.publicKeyPem);
    const second = await loadOrCreateSigningKey(dir);
    expect(second.created).toBe(false);
    expect(second.publicKeyPem).toBe(first.publicKeyPem);
    expect(publicKeyPem(createPublicKey(second.privateKey))).toBe(first.publicKeyPem);
  });

  it('loads a configured key file with its passphrase, and only ECDSA P-256 public keys', async () => {
    const pair = generateSigningKeyPair();
    await writeFile(join(dir, 'k'), await encryptPrivateKey(pair.privateKey, 'p'));
    const loaded = await loadOrCreateSigningKey(dir, { keyFile: join(dir, 'k'), passphrase: 'p' });
    expect(loaded.publicKeyPem).toBe(publicKeyPem(pair.publicKey));
    await expect(loadOrCreateSigningKey(dir, { keyFile: join(dir, 'k') })).rejects.toThrow(
      /no passphrase/,
    );
    expect(() => parsePublicKeyPem('nonsense')).toThrow(SigningKeyError);
  });
});
