/**
 * Cosign signatures from the client's side, for tests on machines whose podman and skopeo cannot
 * (Debian bookworm builds containers/image with sigstore disabled: "Debian-local change:
 * sigstore disabled", for signing and for `sigstoreSigned` policies alike).
 *
 * ```ts
 * await pushSignature(registryUrl, 'fedora/httpd', digest, { privateKey, identity, auth }); // as skopeo --sign-by-sigstore-private-key
 * const ok = await sigstoreAccepts(`http://${crane}`, 'fedora/httpd', '39', [publicKeyPem], { arch: 'arm64' });
 * ```
 *
 * `sigstoreAccepts` makes the requests a client makes (manifest by tag, the platform's instance,
 * the `sha256-<hex>.sig` attachment, each payload blob through crane's redirect to the
 * redirector and a mirror) and applies what containers/image's `sigstoreSigned` requirement with
 * `signedIdentity: matchRepository` applies: some layer's signature verifies with one of the
 * keys, and its payload names this digest and this repository.
 */
import { sign, type KeyObject } from 'node:crypto';
import { request } from 'undici';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLESIGNING_MEDIA_TYPE,
  digestOf,
  parseSimpleSigningPayload,
  signatureManifest,
  signatureTag,
  simpleSigningPayload,
  verifyPayloadSignature,
} from '@flotilla/protocol';
import { OCI_CONFIG, OCI_MANIFEST, pushImage, type TestImage } from './images.js';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** The sigstore attachment containers/image writes for a signed push: one layer per signature. */
export async function pushSignature(
  registryUrl: string,
  repository: string,
  digest: string,
  o: {
    privateKey: KeyObject;
    identity: string;
    auth: { username: string; password: string };
    /** The digest the payload names (default `digest`; another one makes a misdirected signature). */
    claimedDigest?: string;
  },
): Promise<void> {
  const payload = simpleSigningPayload(o.identity, o.claimedDigest ?? digest);
  const layer = {
    mediaType: COSIGN_SIMPLESIGNING_MEDIA_TYPE,
    digest: digestOf(payload),
    size: payload.length,
    annotations: {
      [COSIGN_SIGNATURE_ANNOTATION]: sign('sha256', payload, o.privateKey).toString('base64'),
    },
  };
  const { manifest, config } = signatureManifest([layer]);
  const blob = (mediaType: string, bytes: Buffer) => ({
    mediaType,
    digest: digestOf(bytes),
    bytes,
  });
  const image: TestImage = {
    images: [
      {
        platform: { os: '', architecture: '' },
        config: blob(OCI_CONFIG, config),
        layers: [blob(COSIGN_SIMPLESIGNING_MEDIA_TYPE, payload)],
        manifest: blob(OCI_MANIFEST, manifest),
      },
    ],
    top: blob(OCI_MANIFEST, manifest),
  };
  await pushImage(registryUrl, repository, signatureTag(digest), { image, auth: o.auth });
}

async function get(
  url: string,
  accept?: string,
): Promise<{ status: number; body: Buffer; contentType: string }> {
  let target = url;
  for (let hop = 0; hop < 5; hop++) {
    const res = await request(target, { method: 'GET', headers: accept ? { accept } : {} });
    const location = res.headers['location'];
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      await res.body.dump();
      target = new URL(location, target).toString();
      continue;
    }
    return {
      status: res.statusCode,
      body: Buffer.from(await res.body.arrayBuffer()),
      contentType: String(res.headers['content-type'] ?? ''),
    };
  }
  throw new Error(`too many redirects from ${url}`);
}

/**
 * True when a client pulling `<repository>:<tag>` (the `arch` instance of an index, amd64 by
 * default, as podman on this machine) would accept it under a policy requiring a sigstore
 * signature by one of `publicKeys`, identity matched by repository.
 */
export async function sigstoreAccepts(
  craneUrl: string,
  repository: string,
  tag: string,
  publicKeys: string[],
  o: { arch?: string } = {},
): Promise<boolean> {
  const base = `${craneUrl}/v2/${repository}`;
  const top = await get(`${base}/manifests/${tag}`, ACCEPT);
  if (top.status !== 200) throw new Error(`manifest ${repository}:${tag}: ${top.status}`);
  let digest = digestOf(top.body);
  const parsed = JSON.parse(top.body.toString('utf8')) as {
    manifests?: Array<{ digest: string; platform?: { architecture?: string } }>;
  };
  if (parsed.manifests) {
    const arch = o.arch ?? 'amd64';
    const child = parsed.manifests.find((m) => m.platform?.architecture === arch);
    if (!child) throw new Error(`no ${arch} instance in ${repository}:${tag}`);
    digest = child.digest;
  }
  const attachment = await get(
    `${base}/manifests/${signatureTag(digest)}`,
    'application/vnd.oci.image.manifest.v1+json',
  );
  if (attachment.status === 404) return false;
  if (attachment.status !== 200) throw new Error(`signature of ${digest}: ${attachment.status}`);
  const host = new URL(craneUrl).host;
  const layers = (
    JSON.parse(attachment.body.toString('utf8')) as {
      layers: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }>;
    }
  ).layers;
  for (const layer of layers) {
    const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    if (layer.mediaType !== COSIGN_SIMPLESIGNING_MEDIA_TYPE || !signature) continue;
    const payload = await get(`${base}/blobs/${layer.digest}`);
    if (payload.status !== 200 || digestOf(payload.body) !== layer.digest)
      throw new Error(`payload ${layer.digest}: ${payload.status}`);
    if (!publicKeys.some((key) => verifyPayloadSignature(payload.body, signature, key))) continue;
    const claims = parseSimpleSigningPayload(payload.body);
    if (claims?.digest === digest && claims.identity === `${host}/${repository}`) return true;
  }
  return false;
}
