import { generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLESIGNING_MEDIA_TYPE,
  digestOf,
  isSignatureTag,
  parsePublishedKeys,
  parseRepositoryMetadata,
  signatureManifest,
  signatureTag,
  simpleSigningPayload,
} from '@flotilla/protocol';
import { FakeRegistry, OCI_MANIFEST } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

/** A build system's cosign signature of `digest`, as the upstream registry holds it. */
function addUpstreamSignature(
  upstream: FakeRegistry,
  repo: string,
  digest: string,
  privateKey: import('node:crypto').KeyObject,
): void {
  const payload = simpleSigningPayload(`build.example.org/${repo}`, digest);
  const payloadBlob = upstream.addBlob(repo, payload);
  const layer = {
    mediaType: COSIGN_SIMPLESIGNING_MEDIA_TYPE,
    digest: payloadBlob.digest,
    size: payloadBlob.size,
    annotations: {
      [COSIGN_SIGNATURE_ANNOTATION]: sign('sha256', payload, privateKey).toString('base64'),
    },
  };
  const { manifest, config } = signatureManifest([layer]);
  const configBlob = upstream.addBlob(repo, config);
  upstream.putManifest(repo, signatureTag(digest), manifest, OCI_MANIFEST, [
    configBlob,
    payloadBlob,
  ]);
}

describe('signing: sync brings signatures, trusted keys gate stable, promotion signs, publish carries', () => {
  let upstream: FakeRegistry;
  let content: ContentHarness;
  let dir: string;
  const build = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  beforeEach(async () => {
    upstream = await new FakeRegistry().start();
    dir = await fs.mkdtemp(path.join((await import('node:os')).tmpdir(), 'flotilla-signing-'));
    await fs.writeFile(
      path.join(dir, 'build.pub'),
      build.publicKey.export({ type: 'spki', format: 'pem' }),
    );
    content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_CONTENT_POLICY: '{}',
      FLOTILLA_CONTENT_TRUSTED_KEYS_BY_REPOSITORY: JSON.stringify({
        'fedora/httpd': [path.join(dir, 'build.pub')],
      }),
      FLOTILLA_CONTENT_SIGNING_IDENTITY: 'registry.example.org',
    });
  });
  afterEach(async () => {
    await content.stop();
    await upstream.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const tags = async (repo: string, channel: string): Promise<Record<string, string>> =>
    (await content.api('GET', `/api/v1/repositories/${repo}?channel=${channel}`)).body.channels[0]
      .tags;

  it('does all of it, and a failure halfway through signing leaves the channel as it was', async () => {
    const index = upstream.addIndex('fedora/httpd', '39');
    const unsigned = upstream.addImage('fedora/httpd', '38');
    addUpstreamSignature(upstream, 'fedora/httpd', index.digest, build.privateKey);
    const stray = `sha256:${'1'.repeat(64)}`; // a signature of nothing we sync
    addUpstreamSignature(upstream, 'fedora/httpd', stray, build.privateKey);

    // signedOnly leaves 38 out; the signature of 39 comes along even though the filter names 39 only.
    const only = await content.api('POST', '/api/v1/syncs', {
      repository: 'fedora/httpd',
      signedOnly: true,
      includeTags: ['3*'],
    });
    const onlyDone = await content.waitTask(only.body.task.id);
    expect(onlyDone.state, JSON.stringify(onlyDone.error)).toBe('completed');
    expect(onlyDone.result).toMatchObject({ unsigned: ['38'], signatures: 1 });
    expect(await tags('fedora/httpd', 'candidate')).toEqual({
      '39': index.digest,
      [signatureTag(index.digest)]: expect.any(String),
    });
    const all = await content.api('POST', '/api/v1/syncs', { repository: 'fedora/httpd' });
    expect((await content.waitTask(all.body.task.id)).state).toBe('completed');
    const candidate = await tags('fedora/httpd', 'candidate');
    expect(Object.keys(candidate).sort()).toEqual(['38', '39', signatureTag(index.digest)].sort());
    expect(candidate[signatureTag(stray)]).toBeUndefined();

    // Trusted build keys: 38 is refused into stable, by name and reason; nothing is written.
    const refused = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39', '38'],
      from: 'candidate',
      to: 'stable',
    });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      code: 'signature-required',
      tags: [{ tag: '38', digest: unsigned.digest, reason: 'no signature' }],
    });
    expect(await tags('fedora/httpd', 'stable')).toEqual({});

    // A failure after the first signature: the promotion fails whole and stable is untouched.
    const signatures = content.service.parts.signatures;
    const combine = signatures.combine.bind(signatures);
    let calls = 0;
    signatures.combine = async (...args) => {
      if (++calls === 2) throw new Error('killed halfway');
      return combine(...args);
    };
    const failed = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39'],
      from: 'candidate',
      to: 'stable',
    });
    expect(failed.status).toBe(500);
    expect(await tags('fedora/httpd', 'stable')).toEqual({});
    signatures.combine = combine;

    const promoted = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39'],
      from: 'candidate',
      to: 'stable',
    });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(201);
    const stable = await tags('fedora/httpd', 'stable');
    const signed = [index.digest, ...index.children.map((c) => c.digest)];
    expect(Object.keys(stable).sort()).toEqual(['39', ...signed.map(signatureTag)].sort());
    const current = signatures.keys.current.id;
    const buildId = (await content.api('GET', '/api/v1/keys')).body.trusted[0].id;
    const view = (await content.api('GET', '/api/v1/repositories/fedora/httpd?channel=stable')).body
      .channels[0];
    expect(view.signedBy[index.digest].sort()).toEqual([current, buildId].sort());
    for (const d of signed)
      expect(await signatures.signers(stable[signatureTag(d)], d)).toContain(current);

    // Promoting again changes nothing.
    const again = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39'],
      from: 'candidate',
      to: 'stable',
    });
    expect(again.body.changed).toBe(false);

    // A tag moved to another image takes its old image's signatures out of the channel with it.
    for (const body of [
      { tags: ['39'], from: 'candidate', to: 'testing' },
      { digest: unsigned.digest, targetTags: ['39'], from: 'candidate', to: 'testing' },
    ]) {
      const p = await content.api('POST', '/api/v1/promotions', {
        repository: 'fedora/httpd',
        ...body,
      });
      expect(p.status, JSON.stringify(p.body)).toBe(201);
    }
    expect(await tags('fedora/httpd', 'testing')).toEqual({ '39': unsigned.digest });

    // Publish carries the signature tags, their manifests and payload blobs, and the keys.
    const pub = await content.api('POST', '/api/v1/publications', { channel: 'stable' });
    expect((await content.waitTask(pub.body.task.id)).state).toBe('completed');
    const root = path.join(content.dir, 'publish');
    const metadata = parseRepositoryMetadata(
      await fs.readFile(path.join(root, 'channels/stable/repositories/fedora/httpd.json'), 'utf8'),
    );
    expect(Object.keys(metadata.tags).filter(isSignatureTag).sort()).toEqual(
      signed.map(signatureTag).sort(),
    );
    const attachment = JSON.parse(
      Buffer.from(
        metadata.manifests[stable[signatureTag(index.digest)]!]!.data,
        'base64',
      ).toString(),
    ) as {
      layers: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    expect(attachment.layers).toHaveLength(2);
    for (const layer of attachment.layers) {
      const bytes = await fs.readFile(
        path.join(root, 'blobs/sha256', layer.digest.slice(7, 9), layer.digest.slice(7)),
      );
      expect(digestOf(bytes)).toBe(layer.digest);
    }
    const keys = parsePublishedKeys(await fs.readFile(path.join(root, 'keys/index.json'), 'utf8'));
    expect(keys.current).toBe(current);
    expect(await fs.readFile(path.join(root, `keys/${current}.pub`), 'utf8')).toBe(
      signatures.keys.current.pem,
    );
  });
});
