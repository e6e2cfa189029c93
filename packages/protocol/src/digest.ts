import { Buffer } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, type TransformOptions } from 'node:stream';
import { OciError } from './errors.js';

/**
 * Content digests, `algorithm:encoded`. The OCI image spec grammar for a digest is
 *   algorithm ::= component (separator component)*   component ::= [a-z0-9]+   separator ::= [+._-]
 *   encoded   ::= [a-zA-Z0-9=_-]+
 * A string matching that grammar with an algorithm other than sha256/sha512 is well formed
 * but unsupported (UNSUPPORTED); anything else is malformed (DIGEST_INVALID).
 */

export type DigestAlgorithm = 'sha256' | 'sha512';

export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** The canonical string form, `algorithm:hex`. */
  digest: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const GENERIC_DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const SHA512 = /^sha512:[a-f0-9]{128}$/;
/** Long enough for any supported digest; bounds the work done on hostile input. */
const MAX_DIGEST_LENGTH = 1024;

function describe(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

export function parseDigest(value: string): ParsedDigest {
  if (typeof value !== 'string') {
    throw new OciError('DIGEST_INVALID', 'digest must be a string', {
      detail: { digest: describe(value) },
    });
  }
  if (SHA256.test(value) || SHA512.test(value)) {
    const colon = value.indexOf(':');
    return {
      algorithm: value.slice(0, colon) as DigestAlgorithm,
      hex: value.slice(colon + 1),
      digest: value,
    };
  }
  if (value.length <= MAX_DIGEST_LENGTH && GENERIC_DIGEST.test(value)) {
    const algorithm = value.slice(0, value.indexOf(':'));
    if (algorithm === 'sha256' || algorithm === 'sha512') {
      throw new OciError(
        'DIGEST_INVALID',
        `invalid ${algorithm} digest: expected ${HEX_LENGTH[algorithm]} lowercase hex characters`,
        { detail: { digest: describe(value) } },
      );
    }
    throw new OciError('UNSUPPORTED', `unsupported digest algorithm "${describe(algorithm)}"`, {
      status: 400,
      detail: { digest: describe(value), supported: DIGEST_ALGORITHMS },
    });
  }
  throw new OciError('DIGEST_INVALID', 'invalid digest', { detail: { digest: describe(value) } });
}

/** True for a well-formed sha256 or sha512 digest. */
export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && (SHA256.test(value) || SHA512.test(value));
}

export function digestOf(
  bytes: Uint8Array | string,
  algorithm: DigestAlgorithm = 'sha256',
): string {
  assertAlgorithm(algorithm);
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

function assertAlgorithm(algorithm: string): asserts algorithm is DigestAlgorithm {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new OciError('UNSUPPORTED', `unsupported digest algorithm "${describe(algorithm)}"`, {
      status: 400,
    });
  }
}

export interface DigestHasherOptions extends Omit<TransformOptions, 'transform' | 'flush'> {
  algorithm?: DigestAlgorithm;
  /** When set, the stream errors with DIGEST_INVALID at the end if the content differs. */
  expected?: string;
}

/**
 * A pass-through stream that hashes and counts the bytes flowing through it. With
 * `expected` the digest is checked in flush, so a mismatch fails the pipeline before the
 * consumer sees the end of the stream (write to a temporary file, rename only on success).
 */
export class DigestHasher extends Transform {
  readonly algorithm: DigestAlgorithm;
  readonly expected?: string;
  #hash: Hash;
  #bytes = 0;
  #digest?: string;

  constructor(options: DigestHasherOptions = {}) {
    const { algorithm: requested, expected, ...streamOptions } = options;
    super(streamOptions);
    let algorithm: DigestAlgorithm = requested ?? 'sha256';
    if (expected !== undefined) {
      const parsed = parseDigest(expected);
      if (requested !== undefined && requested !== parsed.algorithm) {
        throw new OciError(
          'DIGEST_INVALID',
          `expected digest uses ${parsed.algorithm}, hasher uses ${requested}`,
        );
      }
      algorithm = parsed.algorithm;
      this.expected = parsed.digest;
    }
    assertAlgorithm(algorithm);
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The digest of everything that passed through; only available after the stream ended. */
  digest(): string {
    if (this.#digest === undefined)
      throw new Error('DigestHasher.digest() called before the stream ended');
    return this.#digest;
  }

  override _transform(chunk: unknown, encoding: BufferEncoding, callback: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : (chunk as Uint8Array);
    this.#hash.update(buf);
    this.#bytes += buf.byteLength;
    callback(null, buf);
  }

  override _flush(callback: TransformCallback): void {
    const digest = `${this.algorithm}:${this.#hash.digest('hex')}`;
    this.#digest = digest;
    if (this.expected !== undefined && this.expected !== digest) {
      callback(
        new OciError('DIGEST_INVALID', undefined, {
          detail: { expected: this.expected, actual: digest, size: this.#bytes },
        }),
      );
      return;
    }
    callback();
  }
}
