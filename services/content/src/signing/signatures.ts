import { sign } from 'node:crypto';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLESIGNING_MEDIA_TYPE,
  digestOf,
  MediaType,
  parseManifest,
  parseSimpleSigningPayload,
  signatureManifest,
  simpleSigningPayload,
  verifyPayloadSignature,
  type SignatureLayer,
} from '@flotilla/protocol';
import type { ContentStore } from '../blobstore/content-store.js';
import type { Catalog } from '../domain/catalog.js';
import { knownKeys, type PublicKeyEntry, type SigningKeys } from './keys.js';

/** Attachment verdicts remembered for `GET /repositories/<name>` (cleared whole when full). */
const SIGNERS_CACHE_ENTRIES = 10_000;

export interface SignatureCheck {
  /** Ids of the given keys with a valid signature of the digest. */
  signedBy: string[];
  /** Why none verified, when `signedBy` is empty. */
  reason?: string;
}

/**
 * Cosign signatures in the content store: reads the attachment manifests (`sha256-<hex>.sig`
 * tags) a channel carries, verifies their layers with node's crypto, and makes new attachment
 * manifests that add a signature by the current key. Everything it makes is written to the
 * content store and recorded in the catalog before any channel version can point at it.
 */
export class Signatures {
  private readonly signersCache = new Map<string, string[]>();

  constructor(
    private readonly deps: {
      catalog: Catalog;
      contentStore: ContentStore;
      keys: SigningKeys;
      /** Registry host (and port) that signature identities name: `<identity>/<repository>`. */
      identity: string;
    },
  ) {}

  get keys(): SigningKeys {
    return this.deps.keys;
  }

  identityOf(repository: string): string {
    return `${this.deps.identity}/${repository}`;
  }

  /** The signature layers of an attachment manifest in the content store (others ignored). */
  async layers(attachment: string): Promise<SignatureLayer[]> {
    const bytes = await this.deps.contentStore.readBytes(attachment);
    const parsed = parseManifest(bytes);
    return parsed.layers
      .filter((l) => l.mediaType === COSIGN_SIMPLESIGNING_MEDIA_TYPE)
      .map((l) => ({
        mediaType: l.mediaType,
        digest: l.digest,
        size: l.size,
        ...(l.annotations ? { annotations: l.annotations } : {}),
      }));
  }

  /**
   * Which of `keys` validly sign `digest` in the attachment: the signature verifies over the
   * payload and the payload names `digest` (the identity is not checked: build systems sign
   * the reference they pushed to).
   */
  async check(
    attachment: string | undefined,
    digest: string,
    keys: readonly PublicKeyEntry[],
  ): Promise<SignatureCheck> {
    if (!attachment) return { signedBy: [], reason: 'no signature' };
    let layers: SignatureLayer[];
    try {
      layers = await this.layers(attachment);
    } catch (err) {
      return { signedBy: [], reason: `unreadable signature manifest: ${(err as Error).message}` };
    }
    if (layers.length === 0) return { signedBy: [], reason: 'no signature' };
    const signedBy = new Set<string>();
    let otherDigest = false;
    for (const layer of layers) {
      const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
      if (!signature) continue;
      const payload = await this.deps.contentStore.readBytes(layer.digest).catch(() => undefined);
      if (!payload) continue;
      const claims = parseSimpleSigningPayload(payload);
      for (const key of keys) {
        if (!verifyPayloadSignature(payload, signature, key.publicKey)) continue;
        if (claims?.digest === digest) signedBy.add(key.id);
        else otherDigest = true;
      }
    }
    if (signedBy.size > 0) return { signedBy: [...signedBy] };
    return {
      signedBy: [],
      reason: otherDigest
        ? 'signed by a trusted key, but for another digest'
        : 'no valid signature by a trusted key',
    };
  }

  /**
   * Ids of every known key (current, retired, trusted) that signs `digest` in the attachment.
   * Attachments are immutable and the keys fixed for the process, so answers are remembered.
   */
  async signers(attachment: string | undefined, digest: string): Promise<string[]> {
    if (!attachment) return [];
    const key = `${attachment}|${digest}`;
    const known = this.signersCache.get(key);
    if (known) return known;
    const signedBy = (
      await this.check(attachment, digest, knownKeys(this.deps.keys))
    ).signedBy.sort();
    if (this.signersCache.size >= SIGNERS_CACHE_ENTRIES) this.signersCache.clear();
    this.signersCache.set(key, signedBy);
    return signedBy;
  }

  /**
   * An attachment for `digest` holding every signature layer of `attachments` (deduplicated)
   * plus, with `signWithCurrent`, one by the current key unless one is there already. Returns
   * the attachment's digest (an existing one when nothing changes), or undefined when there is
   * nothing to hold.
   */
  async combine(
    repository: string,
    digest: string,
    attachments: readonly (string | undefined)[],
    signWithCurrent: boolean,
  ): Promise<string | undefined> {
    const present = [...new Set(attachments.filter((a): a is string => a !== undefined))];
    const layers: SignatureLayer[] = [];
    const seen = new Set<string>();
    for (const attachment of present) {
      for (const layer of await this.layers(attachment)) {
        const key = `${layer.digest}|${layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION] ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        layers.push(layer);
      }
    }
    let added = false;
    if (signWithCurrent) {
      const { current } = this.deps.keys;
      const identity = this.identityOf(repository);
      let signed = false;
      for (const layer of layers) {
        const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
        if (!signature) continue;
        const payload = await this.deps.contentStore.readBytes(layer.digest);
        const claims = parseSimpleSigningPayload(payload);
        if (
          claims?.digest === digest &&
          claims.identity === identity &&
          verifyPayloadSignature(payload, signature, current.publicKey)
        ) {
          signed = true;
          break;
        }
      }
      if (!signed) {
        const payload = simpleSigningPayload(identity, digest);
        const payloadDigest = digestOf(payload);
        await this.store(payloadDigest, payload);
        layers.push({
          mediaType: COSIGN_SIMPLESIGNING_MEDIA_TYPE,
          digest: payloadDigest,
          size: payload.length,
          annotations: {
            [COSIGN_SIGNATURE_ANNOTATION]: sign('sha256', payload, current.privateKey).toString(
              'base64',
            ),
          },
        });
        added = true;
      }
    }
    if (layers.length === 0) return undefined;
    if (!added && present.length === 1) return present[0];
    const subject = await this.deps.catalog.manifest(digest);
    const { manifest, config } = signatureManifest(
      layers,
      subject ? { mediaType: subject.mediaType, digest, size: subject.size } : undefined,
    );
    const configDigest = digestOf(config);
    await this.store(configDigest, config);
    const manifestDigest = digestOf(manifest);
    // Blobs first, then the manifest's record: its existence promises a complete closure.
    await this.deps.contentStore.writeBytes(manifestDigest, manifest);
    await this.deps.catalog.recordManifest(manifestDigest, {
      mediaType: MediaType.OCI_MANIFEST,
      size: manifest.length,
      kind: 'image',
      blobs: [
        { digest: configDigest, size: config.length, mediaType: MediaType.OCI_CONFIG },
        ...layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
      ],
      children: [],
    });
    return manifestDigest;
  }

  private async store(digest: string, bytes: Buffer): Promise<void> {
    if ((await this.deps.contentStore.size(digest)) !== bytes.length)
      await this.deps.contentStore.writeBytes(digest, bytes);
    await this.deps.catalog.recordBlob(digest, bytes.length, 'blob');
  }
}
