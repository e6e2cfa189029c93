/**
 * Sigstore-compatible signing keys: ECDSA P-256, the public key as PEM (`PUBLIC KEY`, SPKI) and
 * the private key in the encrypted form cosign writes and skopeo's
 * `--sign-by-sigstore-private-key` reads: a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` whose
 * bytes are the JSON of go-securesystemslib's `encrypted` package
 * (`{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":…},"cipher":{"name":
 * "nacl/secretbox","nonce":…},"ciphertext":…}`, byte fields base64), the plaintext being the
 * key's PKCS#8 DER. scrypt comes from node's crypto, secretbox (XSalsa20-Poly1305) from tweetnacl.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scrypt,
  type KeyObject,
} from 'node:crypto';
import { chmod, link, mkdir, open, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { loadOrCreateSecret, secretsDir } from './secrets.js';

export const SIGSTORE_PRIVATE_KEY_PEM_TYPE = 'ENCRYPTED SIGSTORE PRIVATE KEY';
/** What older cosign releases wrote; the same content, read for compatibility. */
const COSIGN_PRIVATE_KEY_PEM_TYPE = 'ENCRYPTED COSIGN PRIVATE KEY';

/** go-securesystemslib's "legacy" parameters, the ones sigstore writes and every reader accepts. */
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 32;

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

export interface SigningKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateSigningKeyPair(): SigningKeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

export function publicKeyPem(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'pem' }).toString();
}

function deriveKey(
  passphrase: string,
  salt: Buffer,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // 128·N·r bytes are needed; node's default ceiling is exactly that, so leave room.
    scrypt(
      passphrase,
      salt,
      KEY_BYTES,
      { ...params, maxmem: 256 * params.N * params.r },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

function pemBlock(type: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

function readPemBlock(pem: string): { type: string; body: Buffer } {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END \1-----/.exec(pem);
  if (!m) throw new SigningKeyError('not a PEM block');
  return {
    type: m[1] as string,
    body: Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64'),
  };
}

/** The private key as an `ENCRYPTED SIGSTORE PRIVATE KEY` PEM block. */
export async function encryptPrivateKey(
  privateKey: KeyObject,
  passphrase: string,
): Promise<string> {
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const key = await deriveKey(passphrase, salt, SCRYPT);
  const ciphertext = nacl.secretbox(
    new Uint8Array(der),
    new Uint8Array(nonce),
    new Uint8Array(key),
  );
  // Field order as Go's encoding/json writes the struct.
  const json = JSON.stringify({
    kdf: {
      name: 'scrypt',
      params: { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p },
      salt: salt.toString('base64'),
    },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  });
  return pemBlock(SIGSTORE_PRIVATE_KEY_PEM_TYPE, Buffer.from(json));
}

/** Reads an encrypted sigstore (or cosign) private key; throws SigningKeyError when it cannot. */
export async function decryptPrivateKey(pem: string, passphrase: string): Promise<KeyObject> {
  const { type, body } = readPemBlock(pem);
  if (type !== SIGSTORE_PRIVATE_KEY_PEM_TYPE && type !== COSIGN_PRIVATE_KEY_PEM_TYPE) {
    throw new SigningKeyError(`unsupported PEM type ${type}`);
  }
  const der = await openKeyEnvelope(body, passphrase);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch {
    throw new SigningKeyError('the encrypted key is not a PKCS#8 private key');
  }
  if (
    privateKey.asymmetricKeyType !== 'ec' ||
    privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
  ) {
    throw new SigningKeyError('the key is not ECDSA P-256');
  }
  return privateKey;
}

/** Opens go-securesystemslib's `encrypted` JSON (scrypt + nacl/secretbox): the plaintext bytes. */
export async function openKeyEnvelope(body: Buffer, passphrase: string): Promise<Buffer> {
  let parsed: {
    kdf?: { name?: unknown; params?: { N?: unknown; r?: unknown; p?: unknown }; salt?: unknown };
    cipher?: { name?: unknown; nonce?: unknown };
    ciphertext?: unknown;
  };
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch {
    throw new SigningKeyError('the encrypted key is not JSON');
  }
  const { kdf, cipher, ciphertext } = parsed;
  const params = kdf?.params;
  if (kdf?.name !== 'scrypt' || cipher?.name !== 'nacl/secretbox')
    throw new SigningKeyError('unsupported key encryption');
  if (
    typeof kdf.salt !== 'string' ||
    typeof cipher.nonce !== 'string' ||
    typeof ciphertext !== 'string'
  ) {
    throw new SigningKeyError('malformed encrypted key');
  }
  const N = Number(params?.N);
  const r = Number(params?.r);
  const p = Number(params?.p);
  // The parameter sets go-securesystemslib accepts; anything else could ask for unbounded memory.
  if (!(r === 8 && p === 1 && (N === 32768 || N === 65536 || N === 131072))) {
    throw new SigningKeyError('unsupported scrypt parameters');
  }
  const key = await deriveKey(passphrase, Buffer.from(kdf.salt, 'base64'), { N, r, p });
  const nonce = Buffer.from(cipher.nonce, 'base64');
  if (nonce.length !== nacl.secretbox.nonceLength) throw new SigningKeyError('malformed nonce');
  const der = nacl.secretbox.open(
    new Uint8Array(Buffer.from(ciphertext, 'base64')),
    new Uint8Array(nonce),
    new Uint8Array(key),
  );
  if (!der) throw new SigningKeyError('wrong passphrase or damaged key');
  return Buffer.from(der);
}

/** Reads a public key PEM; throws SigningKeyError unless it is ECDSA P-256. */
export function parsePublicKeyPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new SigningKeyError(`not a public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new SigningKeyError('the key is not ECDSA P-256');
  }
  return key;
}

/** Writes a file that must not exist yet, mode `mode`, complete before it appears (hard link). */
export async function writeNewFile(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temp, mode);
    await link(temp, path);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

export interface LoadedSigningKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  /** The encrypted private key file. */
  path: string;
  /** True when this call generated the key (all-in-one's first start). */
  created: boolean;
}

/**
 * The signing key of a service: `keyFile` with `passphrase` when configured, else
 * `<dataDir>/secrets/signing-key` (encrypted, 0600) with `signing-key.pub` beside it and the
 * passphrase in `signing-key-passphrase`, all generated on first use like the other secrets.
 */
export async function loadOrCreateSigningKey(
  dataDir: string,
  options: { keyFile?: string | undefined; passphrase?: string | undefined } = {},
): Promise<LoadedSigningKey> {
  if (options.keyFile) {
    if (options.passphrase === undefined)
      throw new SigningKeyError(`no passphrase for the signing key ${options.keyFile}`);
    const privateKey = await decryptPrivateKey(
      await readFile(options.keyFile, 'utf8'),
      options.passphrase,
    );
    return {
      privateKey,
      publicKeyPem: publicKeyPem(privateKey),
      path: options.keyFile,
      created: false,
    };
  }
  const passphrase = (
    await loadOrCreateSecret(dataDir, 'signing-key-passphrase', { env: options.passphrase })
  ).value;
  const dir = secretsDir(dataDir);
  const path = join(dir, 'signing-key');
  try {
    const privateKey = await decryptPrivateKey(await readFile(path, 'utf8'), passphrase);
    return { privateKey, publicKeyPem: publicKeyPem(privateKey), path, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = generateSigningKeyPair();
  const pem = publicKeyPem(pair.publicKey);
  try {
    await writeNewFile(path, await encryptPrivateKey(pair.privateKey, passphrase), 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process generated it at the same moment: theirs wins.
    const privateKey = await decryptPrivateKey(await readFile(path, 'utf8'), passphrase);
    return { privateKey, publicKeyPem: publicKeyPem(privateKey), path, created: false };
  }
  // For people and tools (`policy.json`'s keyPath); the service derives it from the private key.
  await writeFile(`${path}.pub`, pem, { mode: 0o644 });
  return { privateKey: pair.privateKey, publicKeyPem: pem, path, created: true };
}
