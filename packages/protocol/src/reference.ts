import { parseDigest } from './digest.js';
import { OciError } from './errors.js';

/**
 * Repository names, tags and `name[:tag][@digest]` references, with the grammars of the
 * OCI distribution spec:
 *   name  [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*  (≤ 255 chars)
 *   tag   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 * A repository name built from this grammar can never contain `..`, `%`, `\`, a leading
 * `/` or an empty component, so it is safe to use as a relative path.
 */

export const REPOSITORY_NAME_MAX = 255;
export const TAG_MAX = 128;

const PATH_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_NAME = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// Docker's reference grammar for the optional registry host in front of a name:
// domain-name | [ipv6], then an optional :port.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
/** Bounds the regex work on hostile input: a name, a tag and a sha512 digest fit easily. */
const MAX_REFERENCE_LENGTH = 1024;

function describe(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

export function isValidRepositoryName(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length <= REPOSITORY_NAME_MAX && REPOSITORY_NAME.test(value)
  );
}

export function assertRepositoryName(value: unknown): asserts value is string {
  if (!isValidRepositoryName(value)) {
    const tooLong = typeof value === 'string' && value.length > REPOSITORY_NAME_MAX;
    throw new OciError(
      'NAME_INVALID',
      tooLong
        ? `repository name longer than ${REPOSITORY_NAME_MAX} characters`
        : 'invalid repository name',
      { detail: { name: describe(value) } },
    );
  }
}

export function isValidTag(value: unknown): value is string {
  return typeof value === 'string' && TAG.test(value);
}

/**
 * The distribution spec has no error code for a malformed tag (Docker Distribution uses its
 * own TAG_INVALID, which is not one of the spec's 14 codes). The spec's MANIFEST_INVALID
 * ("manifest invalid", 400) is the closest catalog entry for a `/manifests/<reference>` that
 * is neither a tag nor a digest, so that is what a bad tag raises, with a message that says
 * what was wrong.
 */
export function assertTag(value: unknown): asserts value is string {
  if (!isValidTag(value)) {
    throw new OciError(
      'MANIFEST_INVALID',
      'invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}',
      {
        detail: { tag: describe(value) },
      },
    );
  }
}

export interface ParsedReference {
  /** Everything before the tag/digest, including a registry host when one was given. */
  name: string;
  /** The registry host (and port) when the reference starts with one, e.g. `localhost:5000`. */
  domain?: string;
  /** The repository name within the registry (validated with the OCI name grammar). */
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Parses `[host[:port]/]name[:tag][@digest]`. Like Docker, the first path component is a
 * registry host when it contains `.` or `:` or is `localhost` and more components follow
 * (and is a valid host name; otherwise the whole name must be a repository name).
 * The tag is split off only after the last `/`, so `localhost:5000/fedora/httpd:39` parses.
 */
export function parseReference(value: string): ParsedReference {
  if (typeof value !== 'string' || value.length === 0) {
    throw new OciError('NAME_INVALID', 'empty reference', {
      detail: { reference: describe(value) },
    });
  }
  if (value.length > MAX_REFERENCE_LENGTH) {
    throw new OciError('NAME_INVALID', 'reference too long', {
      detail: { reference: describe(value) },
    });
  }
  let rest = value;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = parseDigest(rest.slice(at + 1)).digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    assertTag(tag);
    rest = rest.slice(0, colon);
  }
  const name = rest;
  let domain: string | undefined;
  let repository = name;
  const slash = name.indexOf('/');
  if (slash !== -1) {
    const first = name.slice(0, slash);
    const hostLike =
      first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[');
    if (hostLike && DOMAIN.test(first)) {
      domain = first;
      repository = name.slice(slash + 1);
    } else if (hostLike && !isValidRepositoryName(name)) {
      // `0_0.a/x` is a valid repository name, not a bad host; `bad_host:5000/x` is neither.
      throw new OciError('NAME_INVALID', 'invalid registry host in reference', {
        detail: { reference: describe(value) },
      });
    }
  }
  if (name.length > REPOSITORY_NAME_MAX) {
    throw new OciError(
      'NAME_INVALID',
      `repository name longer than ${REPOSITORY_NAME_MAX} characters`,
      {
        detail: { reference: describe(value) },
      },
    );
  }
  assertRepositoryName(repository);
  const parsed: ParsedReference = { name, repository };
  if (domain !== undefined) parsed.domain = domain;
  if (tag !== undefined) parsed.tag = tag;
  if (digest !== undefined) parsed.digest = digest;
  return parsed;
}

export type ManifestReference =
  { tag: string; digest?: undefined } | { digest: string; tag?: undefined };

/**
 * The `<reference>` of `/v2/<name>/manifests/<reference>`: a digest (it contains `:`, which
 * no tag can) or a tag. Digests raise DIGEST_INVALID / UNSUPPORTED, tags MANIFEST_INVALID
 * (see assertTag for why).
 */
export function parseManifestReference(ref: string): ManifestReference {
  if (typeof ref === 'string' && ref.includes(':')) return { digest: parseDigest(ref).digest };
  assertTag(ref);
  return { tag: ref };
}

/**
 * The reference of a manifest *read* (`GET`/`HEAD`): a name that is no valid tag cannot name a
 * manifest, so reading it is a miss, 404 MANIFEST_UNKNOWN (what the OCI conformance suite
 * expects of `.INVALID_MANIFEST_NAME`); a `PUT` with it stays 400 MANIFEST_INVALID.
 */
export function parseManifestReferenceToRead(ref: string): ManifestReference {
  try {
    return parseManifestReference(ref);
  } catch (err) {
    if (err instanceof OciError && err.code === 'MANIFEST_INVALID') {
      throw new OciError('MANIFEST_UNKNOWN', undefined, { detail: { tag: ref.slice(0, 200) } });
    }
    throw err;
  }
}
