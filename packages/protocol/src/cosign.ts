import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { digestOf, parseDigest } from './digest.js';
import { MediaType } from './media-types.js';

/**
 * Cosign / sigstore image signatures in the form podman and skopeo read with
 * `use-sigstore-attachments: true` (containers/image's sigstore attachments, cosign's
 * "tag" mode): the signatures of manifest `sha256:<hex>` are the layers of the OCI manifest
 * tagged `sha256-<hex>.sig` in the same repository. Each layer is a simple-signing payload
 * (media type `application/vnd.dev.cosign.simplesigning.v1+json`) and carries the base64
 * ECDSA signature of those exact bytes in the `dev.cosignproject.cosign/signature` annotation.
 */

export const COSIGN_SIMPLESIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const SIMPLE_SIGNING_TYPE = 'cosign container image signature';

const SIGNATURE_TAG = /^sha256-([a-f0-9]{64})\.sig$/;

/** `sha256:<hex>` → `sha256-<hex>.sig`, the tag that holds the digest's signatures. */
export function signatureTag(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${algorithm}-${hex}.sig`;
}

/** The digest a `sha256-<hex>.sig` tag signs, or undefined for any other tag. */
export function signedDigestOfTag(tag: string): string | undefined {
  const m = SIGNATURE_TAG.exec(tag);
  return m ? `sha256:${m[1]}` : undefined;
}

export function isSignatureTag(tag: string): boolean {
  return SIGNATURE_TAG.test(tag);
}

/**
 * The simple-signing payload sigstore signs, byte for byte as containers/image and cosign write
 * it (Go's encoding/json field order): `identity` is the public reference without a tag.
 */
export function simpleSigningPayload(identity: string, digest: string): Buffer {
  parseDigest(digest);
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': identity },
        image: { 'docker-manifest-digest': digest },
        type: SIMPLE_SIGNING_TYPE,
      },
      optional: null,
    }),
  );
}

export interface SimpleSigningClaims {
  identity: string;
  digest: string;
}

/** Reads a payload's claims; undefined when it is not a simple-signing payload. */
export function parseSimpleSigningPayload(bytes: Uint8Array): SimpleSigningClaims | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const critical = (value as { critical?: unknown } | null)?.critical as
    | {
        identity?: { 'docker-reference'?: unknown };
        image?: { 'docker-manifest-digest'?: unknown };
        type?: unknown;
      }
    | undefined;
  const identity = critical?.identity?.['docker-reference'];
  const digest = critical?.image?.['docker-manifest-digest'];
  if (
    critical?.type !== SIMPLE_SIGNING_TYPE ||
    typeof identity !== 'string' ||
    typeof digest !== 'string'
  )
    return undefined;
  return { identity, digest };
}

/** One signature layer of an attachment manifest. */
export interface SignatureLayer {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The config of an attachment manifest as containers/image writes it: one diff ID per layer. */
export function signatureConfig(layers: readonly SignatureLayer[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: '',
      os: '',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
}

/**
 * The attachment manifest holding `layers`, with its config bytes. `subject` (the signed
 * manifest) is an OCI 1.1 addition that cosign's tag mode leaves out; clients reading the tag
 * ignore it, and it lists the signatures in the referrers API.
 */
export function signatureManifest(
  layers: readonly SignatureLayer[],
  subject?: { mediaType: string; digest: string; size: number },
): { manifest: Buffer; config: Buffer } {
  const config = signatureConfig(layers);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OCI_MANIFEST,
      config: { mediaType: MediaType.OCI_CONFIG, size: config.length, digest: digestOf(config) },
      layers: layers.map((l) => ({
        mediaType: l.mediaType,
        size: l.size,
        digest: l.digest,
        ...(l.annotations ? { annotations: l.annotations } : {}),
      })),
      ...(subject
        ? { subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest } }
        : {}),
    }),
  );
  return { manifest, config };
}

/** True when `signatureBase64` is a valid ECDSA/SHA-256 signature of `payload` by `publicKey`. */
export function verifyPayloadSignature(
  payload: Uint8Array,
  signatureBase64: string,
  publicKey: KeyObject | string,
): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const signature = Buffer.from(signatureBase64, 'base64');
  if (signature.length === 0) return false;
  try {
    return verify('sha256', payload, key, signature);
  } catch {
    return false;
  }
}

/** A short, stable name for a public key: the first 16 hex of the SHA-256 of its SPKI DER. */
export function publicKeyId(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const der = key.export({ type: 'spki', format: 'der' });
  return digestOf(der).slice('sha256:'.length, 'sha256:'.length + 16);
}
