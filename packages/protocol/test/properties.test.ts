import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DigestHasher,
  EVENT_TYPES,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  createEvent,
  digestOf,
  formatPublicationMarker,
  isDigest,
  isValidRepositoryName,
  isValidTag,
  parseDigest,
  parseEvent,
  parseManifest,
  parseManifestReference,
  parsePublicationMarker,
  parsePublicationRecord,
  parseReference,
  parseRepositoryMetadata,
  repositoryMetadataSchema,
} from '../src/index.js';
import {
  D1,
  bytes,
  dockerManifest,
  dockerManifestList,
  ociIndex,
  ociManifest,
  valueOrTypedError,
} from './fixtures.js';

const RUNS = { numRuns: 1000 };

const hex = (n: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const nearHex = fc.string({
  unit: fc.constantFrom(...'0123456789abcdefABCDEFgz:=_-+.'),
  maxLength: 140,
});
/** Strings close to digests: right and wrong algorithms, right and wrong lengths. */
const digestish = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('sha256', 'sha512', 'md5', 'SHA256', 'sha256+b64u', 'a.b', '', 'sha-256'),
      nearHex,
    )
    .map(([a, h]) => `${a}:${h}`),
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
  fc.string({ unit: 'binary', maxLength: 200 }),
);
const refAlphabet = fc.constantFrom(
  ...'abcAZ09._-_/:@%'.split(''),
  'sha256:',
  '..',
  '__',
  '--',
  'localhost:5000/',
);
const referenceish = fc.oneof(
  fc.string({ unit: refAlphabet, maxLength: 60 }),
  fc.tuple(fc.string({ unit: refAlphabet, maxLength: 40 }), digestish).map(([n, d]) => `${n}@${d}`),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('a', '/', '-'), minLength: 200, maxLength: 400 }),
);

const nameComponent = fc.stringMatching(/^[a-z0-9]{1,8}(?:(?:\.|_|__|-{1,3})[a-z0-9]{1,8}){0,2}$/);
const repositoryName = fc
  .array(nameComponent, { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join('/'))
  .filter((n) => n.length <= 255);
const tag = fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}$/);
const digest = fc.oneof(
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
);

const descriptor = fc.record(
  {
    mediaType: fc.constantFrom(
      MediaType.OCI_LAYER_GZIP,
      MediaType.OCI_CONFIG,
      'application/x-anything',
    ),
    digest,
    size: fc.nat(),
    annotations: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), {
      maxKeys: 3,
    }),
    urls: fc.array(fc.webUrl(), { maxLength: 2 }),
  },
  { requiredKeys: ['mediaType', 'digest', 'size'] },
);

/** A path into a JSON value, and a mutation to apply there. */
type Mutation = { path: number[]; op: 'replace' | 'delete' | 'wrap'; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  path: fc.array(fc.nat(), { minLength: 0, maxLength: 4 }),
  op: fc.constantFrom('replace', 'delete', 'wrap'),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(
      -1,
      1.5,
      1e309,
      '',
      'sha256:abc',
      null,
      2,
      1,
      MediaType.DOCKER_SCHEMA1,
      MediaType.OCI_INDEX,
    ),
  ),
});

function mutate(root: unknown, m: Mutation): unknown {
  const copy: unknown = structuredClone(root);
  if (m.path.length === 0) return m.op === 'wrap' ? [copy] : m.value;
  let node: unknown = copy;
  for (let i = 0; i < m.path.length; i++) {
    if (node === null || typeof node !== 'object') return copy;
    const keys = Object.keys(node);
    if (keys.length === 0) return copy;
    const key = keys[m.path[i]! % keys.length]!;
    const container = node as Record<string, unknown>;
    if (i === m.path.length - 1) {
      if (m.op === 'delete') {
        if (Array.isArray(container)) container.splice(Number(key), 1);
        else delete container[key];
      } else if (m.op === 'wrap') container[key] = [container[key]];
      else container[key] = m.value;
      return copy;
    }
    node = container[key];
  }
  return copy;
}

function mutateBytes(
  raw: Uint8Array,
  edits: { at: number; byte: number; op: 'set' | 'cut' | 'insert' }[],
): Uint8Array {
  let out = Array.from(raw);
  for (const e of edits) {
    const at = out.length === 0 ? 0 : e.at % out.length;
    if (e.op === 'set') out[at] = e.byte;
    else if (e.op === 'cut') out = out.slice(0, at);
    else out.splice(at, 0, e.byte);
  }
  return Uint8Array.from(out);
}

const contentType = fc.option(
  fc.constantFrom(
    ...MANIFEST_MEDIA_TYPES,
    MediaType.DOCKER_SCHEMA1,
    MediaType.DOCKER_SCHEMA1_SIGNED,
    'application/json',
    'application/json; charset=utf-8',
    'text/html',
    '',
    ';',
    'APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON',
  ),
  { nil: undefined },
);
const validManifests = [ociManifest(), ociIndex(), dockerManifest(), dockerManifestList()];

describe('property: parsers return a value or a typed error, never anything else', () => {
  it('parseDigest', () => {
    fc.assert(
      fc.property(digestish, (s) => valueOrTypedError(() => parseDigest(s))),
      RUNS,
    );
  });

  it('parseReference', () => {
    fc.assert(
      fc.property(referenceish, (s) => valueOrTypedError(() => parseReference(s))),
      RUNS,
    );
  });

  it('parseManifestReference', () => {
    fc.assert(
      fc.property(fc.oneof(referenceish, digestish), (s) =>
        valueOrTypedError(() => parseManifestReference(s)),
      ),
      RUNS,
    );
  });

  it('parseManifest on arbitrary bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.jsonValue({ maxDepth: 3 }).map((v) => bytes(JSON.stringify(v) ?? '')),
          fc.string({ unit: 'binary', maxLength: 200 }).map((s) => bytes(s)),
        ),
        contentType,
        (raw, type) => valueOrTypedError(() => parseManifest(raw, type)),
      ),
      RUNS,
    );
  });

  it('parseManifest on mutated valid manifests', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...validManifests),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        contentType,
        (manifest, mutations, type) => {
          const mutated = mutations.reduce<unknown>((acc, m) => mutate(acc, m), manifest);
          valueOrTypedError(() => parseManifest(bytes(JSON.stringify(mutated) ?? ''), type));
        },
      ),
      RUNS,
    );
  });

  it('parseManifest on byte-level corruptions of valid manifests', () => {
    const edit = fc.record({
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      op: fc.constantFrom('set', 'cut', 'insert'),
    } as const);
    fc.assert(
      fc.property(
        fc.constantFrom(...validManifests),
        fc.array(edit, { minLength: 1, maxLength: 4 }),
        contentType,
        (m, edits, type) =>
          valueOrTypedError(() => parseManifest(mutateBytes(bytes(m), edits), type)),
      ),
      RUNS,
    );
  });

  it('parseEvent on arbitrary values and on mutated valid events', () => {
    const valid = createEvent('content.published', 'content', {
      channel: 'stable',
      publication: 3,
      repositories: ['fedora/httpd'],
      newBlobs: 1,
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc
            .array(mutation, { minLength: 1, maxLength: 3 })
            .map((ms) => ms.reduce<unknown>((acc, m) => mutate(acc, m), valid)),
          fc
            .record({ type: fc.constantFrom(...EVENT_TYPES, 'x', '__proto__') })
            .map((r) => ({ ...valid, ...r })),
        ),
        (value) => valueOrTypedError(() => parseEvent(value)),
      ),
      RUNS,
    );
  });

  it('parsePublicationMarker', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 40 }),
          fc.string({ unit: fc.constantFrom(...'0123456789 \n\t-+.e'), maxLength: 25 }),
          fc.uint8Array({ maxLength: 30 }),
        ),
        (text) => valueOrTypedError(() => parsePublicationMarker(text)),
      ),
      RUNS,
    );
  });

  it('repository metadata and publication records', () => {
    const raw = Buffer.from('{}');
    const md = {
      schemaVersion: 1,
      repository: 'fedora/httpd',
      publication: 4,
      tags: { '39': digestOf(raw) },
      manifests: {
        [digestOf(raw)]: {
          mediaType: MediaType.OCI_MANIFEST,
          size: 2,
          data: raw.toString('base64'),
        },
      },
      blobs: { [D1]: 10 },
    };
    const record = {
      schemaVersion: 1,
      publication: 4,
      channel: 'stable',
      time: new Date(0).toISOString(),
      repositories: [],
      newBlobs: [D1],
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.string({ unit: 'binary', maxLength: 100 }),
          fc
            .array(mutation, { minLength: 1, maxLength: 3 })
            .map((ms) => ms.reduce<unknown>((acc, m) => mutate(acc, m), md)),
          fc
            .array(mutation, { minLength: 1, maxLength: 3 })
            .map((ms) => ms.reduce<unknown>((acc, m) => mutate(acc, m), record)),
        ),
        (value) => {
          valueOrTypedError(() => parseRepositoryMetadata(value));
          valueOrTypedError(() => parsePublicationRecord(value));
          valueOrTypedError(() => parseRepositoryMetadata(JSON.stringify(value) ?? ''));
          const result = repositoryMetadataSchema.safeParse(value);
          expect(typeof result.success).toBe('boolean');
        },
      ),
      RUNS,
    );
  });
});

describe('property: round trips and agreement', () => {
  it('digestOf → parseDigest gives the same digest', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 256 }),
        fc.constantFrom('sha256', 'sha512') as fc.Arbitrary<'sha256' | 'sha512'>,
        (data, algorithm) => {
          const d = digestOf(data, algorithm);
          const parsed = parseDigest(d);
          expect(parsed.digest).toBe(d);
          expect(parsed.algorithm).toBe(algorithm);
          expect(`${parsed.algorithm}:${parsed.hex}`).toBe(d);
          expect(isDigest(d)).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it('DigestHasher over random chunkings equals digestOf', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2048 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom('sha256', 'sha512') as fc.Arbitrary<'sha256' | 'sha512'>,
        fc.boolean(),
        async (data, cuts, algorithm, withExpected) => {
          const points = [
            ...new Set(cuts.map((c) => (data.length === 0 ? 0 : c % (data.length + 1)))),
          ].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let last = 0;
          for (const p of [...points, data.length]) {
            chunks.push(Buffer.from(data.subarray(last, p)));
            last = p;
          }
          const expected = digestOf(data, algorithm);
          const hasher = new DigestHasher(withExpected ? { expected } : { algorithm });
          let seen = 0;
          await pipeline(
            Readable.from(chunks),
            hasher,
            new Writable({
              write(chunk: Buffer, _enc, cb) {
                seen += chunk.byteLength;
                cb();
              },
            }),
          );
          expect(hasher.digest()).toBe(expected);
          expect(hasher.bytes).toBe(data.length);
          expect(seen).toBe(data.length);
        },
      ),
      RUNS,
    );
  });

  it('generated repository names, tags and digests parse back as references', () => {
    fc.assert(
      fc.property(
        fc.option(fc.constantFrom('localhost:5000', 'registry.example.org', '[::1]:5000'), {
          nil: undefined,
        }),
        repositoryName,
        fc.option(tag, { nil: undefined }),
        fc.option(digest, { nil: undefined }),
        (domain, name, t, d) => {
          expect(isValidRepositoryName(name)).toBe(true);
          const full = domain === undefined ? name : `${domain}/${name}`;
          const ref = `${full}${t === undefined ? '' : `:${t}`}${d === undefined ? '' : `@${d}`}`;
          const parsed = parseReference(ref);
          expect(parsed.name).toBe(full);
          // Docker's rule: a first component with a '.' (or 'localhost') before a '/' is a host.
          const first = name.split('/')[0]!;
          const hostLike =
            domain === undefined &&
            name.includes('/') &&
            (first.includes('.') || first === 'localhost') &&
            /^[a-z0-9]+(?:-+[a-z0-9]+)*(?:\.[a-z0-9]+(?:-+[a-z0-9]+)*)*$/.test(first);
          expect(parsed.domain).toBe(hostLike ? first : domain);
          expect(parsed.repository).toBe(hostLike ? name.slice(first.length + 1) : name);
          expect(parsed.tag).toBe(t);
          expect(parsed.digest).toBe(d);
          if (t !== undefined) expect(parseManifestReference(t)).toEqual({ tag: t });
          if (d !== undefined) expect(parseManifestReference(d)).toEqual({ digest: d });
        },
      ),
      RUNS,
    );
  });

  it('isValidTag and the tag grammar agree on generated strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'aZ9_.-:/'), maxLength: 140 }), (s) => {
        expect(isValidTag(s)).toBe(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/.test(s));
      }),
      RUNS,
    );
  });

  it('generated valid manifests parse, keep their descriptors and hash their exact bytes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...MANIFEST_MEDIA_TYPES),
        descriptor,
        fc.array(descriptor, { maxLength: 5 }),
        fc.boolean(),
        fc.nat({ max: 4 }),
        (mediaType, config, list, sendType, indent) => {
          const isIndex =
            mediaType === MediaType.OCI_INDEX || mediaType === MediaType.DOCKER_MANIFEST_LIST;
          const body = isIndex
            ? { schemaVersion: 2, mediaType, manifests: list }
            : { schemaVersion: 2, mediaType, config, layers: list };
          const raw = bytes(JSON.stringify(body, null, indent));
          const m = parseManifest(raw, sendType ? mediaType : undefined);
          expect(m.mediaType).toBe(mediaType);
          expect(m.digest).toBe(digestOf(raw));
          expect(m.size).toBe(raw.byteLength);
          expect((isIndex ? m.manifests : m.layers).map((x) => [x.digest, x.size])).toEqual(
            list.map((x) => [x.digest, x.size]),
          );
          if (!isIndex) expect(m.config?.digest).toBe(config.digest);
        },
      ),
      RUNS,
    );
  });

  it('publication markers round-trip', () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat().filter((n) => n < 1e15),
        (n) => {
          expect(parsePublicationMarker(formatPublicationMarker(n))).toBe(n);
        },
      ),
      RUNS,
    );
  });
});
