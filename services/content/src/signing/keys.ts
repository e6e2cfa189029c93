import { readFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { loadOrCreateSigningKey, parsePublicKeyPem, publicKeyPem } from '@flotilla/kit';
import { publicKeyId } from '@flotilla/protocol';
import type { ContentConfig } from '../config.js';

export interface PublicKeyEntry {
  id: string;
  publicKey: KeyObject;
  pem: string;
  /** Where it came from (a file path), for messages. */
  source: string;
}

/**
 * The keys content works with: the current signing key (private), the retired keys whose
 * signatures stay valid and which stay published until removed from the configuration, and the
 * build systems' keys that promotion into a signing channel may require.
 */
export interface SigningKeys {
  current: PublicKeyEntry & { privateKey: KeyObject; created: boolean };
  retired: PublicKeyEntry[];
  /** Trusted build keys for every repository without its own list. */
  trusted: PublicKeyEntry[];
  trustedByRepository: ReadonlyMap<string, PublicKeyEntry[]>;
}

async function readPublicKey(path: string): Promise<PublicKeyEntry> {
  const pem = await readFile(path, 'utf8');
  const publicKey = parsePublicKeyPem(pem);
  return { id: publicKeyId(publicKey), publicKey, pem: publicKeyPem(publicKey), source: path };
}

export async function loadSigningKeys(config: ContentConfig): Promise<SigningKeys> {
  const s = config.signing;
  const passphrase = s.passphraseFile
    ? (await readFile(s.passphraseFile, 'utf8')).replace(/\r?\n$/, '')
    : s.passphrase;
  const loaded = await loadOrCreateSigningKey(config.dataDir, { keyFile: s.keyFile, passphrase });
  const publicKey = parsePublicKeyPem(loaded.publicKeyPem);
  const current = {
    id: publicKeyId(publicKey),
    publicKey,
    pem: loaded.publicKeyPem,
    source: loaded.path,
    privateKey: loaded.privateKey,
    created: loaded.created,
  };
  const retired = (await Promise.all(s.retiredKeyFiles.map(readPublicKey))).filter(
    (k) => k.id !== current.id,
  );
  const trusted = await Promise.all(s.trustedKeyFiles.map(readPublicKey));
  const trustedByRepository = new Map<string, PublicKeyEntry[]>();
  for (const [repository, files] of Object.entries(s.trustedKeyFilesByRepository)) {
    trustedByRepository.set(repository, await Promise.all(files.map(readPublicKey)));
  }
  return { current, retired, trusted, trustedByRepository };
}

/** The build keys a promotion of `repository` into a signing channel must find a signature by. */
export function trustedKeysFor(keys: SigningKeys, repository: string): PublicKeyEntry[] {
  return keys.trustedByRepository.get(repository) ?? keys.trusted;
}

/** Every key whose signature a person may want named: current, retired and trusted build keys. */
export function knownKeys(keys: SigningKeys): PublicKeyEntry[] {
  const all = new Map<string, PublicKeyEntry>();
  for (const k of [
    keys.current,
    ...keys.retired,
    ...keys.trusted,
    ...[...keys.trustedByRepository.values()].flat(),
  ]) {
    if (!all.has(k.id)) all.set(k.id, k);
  }
  return [...all.values()];
}
