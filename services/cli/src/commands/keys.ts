import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  encryptPrivateKey,
  generateSigningKeyPair,
  publicKeyPem,
  writeNewFile,
} from '@flotilla/kit';
import { publicKeyId } from '@flotilla/protocol';
import { CliError } from '../output.js';

/** The environment variable `flotilla keys generate` reads the passphrase from. */
export const KEY_PASSPHRASE_ENV = 'FLOTILLA_KEY_PASSPHRASE';

/**
 * `flotilla keys generate`: a new ECDSA P-256 pair, the private key encrypted as sigstore does
 * (what cosign and `skopeo --sign-by-sigstore-private-key` read). The passphrase comes from a
 * file or the environment, never from the command line (where `ps` and shell history see it).
 * Existing files are never overwritten.
 */
export async function generateKeyFiles(
  opts: { output: string; passphraseFile?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ id: string; privateKey: string; publicKey: string }> {
  let passphrase: string | undefined;
  if (opts.passphraseFile)
    passphrase = (await readFile(opts.passphraseFile, 'utf8')).replace(/\r?\n$/, '');
  else passphrase = env[KEY_PASSPHRASE_ENV];
  if (passphrase === undefined) {
    throw new CliError(
      `no passphrase: pass --passphrase-file <file> or set ${KEY_PASSPHRASE_ENV}`,
      2,
    );
  }
  const pair = generateSigningKeyPair();
  const privatePath = resolve(`${opts.output}.key`);
  const publicPath = resolve(`${opts.output}.pub`);
  try {
    await writeNewFile(privatePath, await encryptPrivateKey(pair.privateKey, passphrase), 0o600);
    await writeNewFile(publicPath, publicKeyPem(pair.publicKey), 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new CliError(`${opts.output}.key or .pub exists; not overwriting it`);
    throw err;
  }
  return { id: publicKeyId(pair.publicKey), privateKey: privatePath, publicKey: publicPath };
}
