import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLESIGNING_MEDIA_TYPE,
  digestOf,
  isSignatureTag,
  parseManifest,
  parseSimpleSigningPayload,
  publicKeyId,
  signatureManifest,
  signatureTag,
  signedDigestOfTag,
  simpleSigningPayload,
  verifyPayloadSignature,
} from '../src/index.js';

const digest = `sha256:${'ab'.repeat(32)}`;

describe('cosign signatures', () => {
  it('names the attachment tag of a digest, and back', () => {
    expect(signatureTag(digest)).toBe(`sha256-${'ab'.repeat(32)}.sig`);
    expect(signedDigestOfTag(signatureTag(digest))).toBe(digest);
    expect(isSignatureTag('39')).toBe(false);
    expect(isSignatureTag(`sha256-${'ab'.repeat(32)}.att`)).toBe(false);
  });

  it('writes the simple-signing payload byte for byte as containers/image does', () => {
    const payload = simpleSigningPayload('registry.example.org/fedora/httpd', digest);
    expect(payload.toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"registry.example.org/fedora/httpd"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
    );
    expect(parseSimpleSigningPayload(payload)).toEqual({
      identity: 'registry.example.org/fedora/httpd',
      digest,
    });
    expect(
      parseSimpleSigningPayload(Buffer.from('{"critical":{"type":"atomic container signature"}}')),
    ).toBeUndefined();
    expect(parseSimpleSigningPayload(Buffer.from('not json'))).toBeUndefined();
  });

  it('verifies ECDSA P-256 signatures over the exact payload with the right key only', () => {
    const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const payload = simpleSigningPayload('r/x', digest);
    const signature = sign('sha256', payload, ours.privateKey).toString('base64');
    expect(verifyPayloadSignature(payload, signature, ours.publicKey)).toBe(true);
    expect(verifyPayloadSignature(payload, signature, other.publicKey)).toBe(false);
    expect(
      verifyPayloadSignature(Buffer.concat([payload, Buffer.from(' ')]), signature, ours.publicKey),
    ).toBe(false);
    expect(verifyPayloadSignature(payload, '', ours.publicKey)).toBe(false);
    expect(publicKeyId(ours.publicKey)).toMatch(/^[a-f0-9]{16}$/);
    expect(publicKeyId(ours.publicKey)).not.toBe(publicKeyId(other.publicKey));
  });

  it('builds an attachment manifest whose layers are the signatures and whose config lists them', () => {
    const payload = simpleSigningPayload('r/x', digest);
    const layer = {
      mediaType: COSIGN_SIMPLESIGNING_MEDIA_TYPE,
      digest: digestOf(payload),
      size: payload.length,
      annotations: { [COSIGN_SIGNATURE_ANNOTATION]: 'c2ln' },
    };
    const { manifest, config } = signatureManifest([layer, layer], {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: 10,
    });
    const parsed = parseManifest(manifest);
    expect(parsed.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(parsed.config?.digest).toBe(digestOf(config));
    expect(parsed.layers.map((l) => l.annotations?.[COSIGN_SIGNATURE_ANNOTATION])).toEqual([
      'c2ln',
      'c2ln',
    ]);
    expect(parsed.subject?.digest).toBe(digest);
    expect(JSON.parse(config.toString())).toEqual({
      architecture: '',
      os: '',
      config: {},
      rootfs: { type: 'layers', diff_ids: [layer.digest, layer.digest] },
    });
  });
});
