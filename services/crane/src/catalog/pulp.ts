import { assertRepositoryName, MediaType } from '@flotilla/protocol';
import { z } from 'zod';

/**
 * Pulp 2's redirect files (`pulp-docker-redirect`, version 4), the format pulp_docker's web
 * distributor publishes for Crane:
 *
 * ```json
 * { "type": "pulp-docker-redirect", "version": 4, "repository": "zoo",
 *   "repo-registry-id": "redhat/zoo", "url": "https://cdn.example.com/zoo/", "protected": false,
 *   "schema2_data": ["sha256:…", "1.25.1"],             // tags and digests with a schema2 manifest
 *   "manifest_list_data": ["latest", "sha256:…"],       // tags and digests with a manifest list
 *   "manifest_list_amd64_tags": { "latest": ["sha256:…", 2] } }  // list tag → amd64 image, schema
 * ```
 *
 * Crane served these by redirecting everything to `url`: manifests to
 * `manifests/list/<ref>`, `manifests/2/<ref>` or `manifests/1/<ref>` by what the client
 * accepts, blobs to `blobs/<digest>`, tags to `tags/list`. We do the same, so an existing Pulp
 * can feed this crane during a migration.
 */
export const pulpRedirectFileSchema = z.object({
  type: z.literal('pulp-docker-redirect'),
  version: z.literal(4),
  'repo-registry-id': z.string().min(1),
  repository: z.string().optional(),
  url: z.url({ protocol: /^https?$/ }),
  protected: z.boolean().default(false),
  schema2_data: z.array(z.string()).default([]),
  manifest_list_data: z.array(z.string()).default([]),
  manifest_list_amd64_tags: z
    .record(z.string(), z.tuple([z.string(), z.number().int()]))
    .default({}),
});

export interface PulpRepository {
  readonly name: string;
  /** Base URL, always ending in `/`. */
  readonly url: string;
  readonly protected: boolean;
  readonly schema2: ReadonlySet<string>;
  readonly lists: ReadonlySet<string>;
  readonly amd64Tags: ReadonlyMap<string, { digest: string; schemaVersion: number }>;
}

/** Parses one redirect file; throws (zod or `OciError('NAME_INVALID')`) when it is not valid. */
export function parsePulpRedirectFile(
  json: unknown,
  isProtected: (name: string) => boolean,
): PulpRepository {
  const file = pulpRedirectFileSchema.parse(json);
  const name = file['repo-registry-id'];
  assertRepositoryName(name);
  return {
    name,
    url: file.url.endsWith('/') ? file.url : `${file.url}/`,
    protected: file.protected || isProtected(name),
    schema2: new Set(file.schema2_data),
    lists: new Set(file.manifest_list_data),
    amd64Tags: new Map(
      Object.entries(file.manifest_list_amd64_tags).map(([tag, [digest, schemaVersion]]) => [
        tag,
        { digest, schemaVersion },
      ]),
    ),
  };
}

/** Where Crane sent a manifest request for `reference`, given the media types the client accepts. */
export function pulpManifestLocation(
  repo: PulpRepository,
  reference: string,
  accepted: ReadonlySet<string>,
): string {
  const path = pulpManifestPath(repo, reference, accepted);
  return `${repo.url}${path}`;
}

function pulpManifestPath(
  repo: PulpRepository,
  reference: string,
  accepted: ReadonlySet<string>,
): string {
  if (repo.schema2.size === 0 && repo.lists.size === 0) return `manifests/1/${reference}`;
  if (accepted.has(MediaType.DOCKER_MANIFEST_LIST) && repo.lists.has(reference))
    return `manifests/list/${reference}`;
  const amd64 = repo.amd64Tags.get(reference);
  if (amd64) {
    if (accepted.has(MediaType.DOCKER_MANIFEST))
      return `manifests/${amd64.schemaVersion}/${amd64.digest}`;
    if (amd64.schemaVersion === 1) return `manifests/1/${amd64.digest}`;
    return `manifests/1/${reference}`;
  }
  if (accepted.has(MediaType.DOCKER_MANIFEST) && repo.schema2.has(reference))
    return `manifests/2/${reference}`;
  return `manifests/1/${reference}`;
}

export function pulpBlobLocation(repo: PulpRepository, digest: string): string {
  return `${repo.url}blobs/${digest}`;
}

export function pulpTagsLocation(repo: PulpRepository): string {
  return `${repo.url}tags/list`;
}
