import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  parseDigest,
  parseManifestReference,
  parseReference,
  isValidRepositoryName,
} from '../src/index.js';
import { ociCode } from './fixtures.js';

const ALLOWED = new Set(['zod', 'node:crypto', 'node:stream', 'node:buffer']);
const SRC = new URL('../src/', import.meta.url);

describe('the protocol package is pure', () => {
  it('imports only zod, node:crypto, node:stream, node:buffer and its own modules', () => {
    const files = readdirSync(SRC).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const file of files) {
      const text = readFileSync(new URL(file, SRC), 'utf8');
      const specifiers = [
        ...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g),
      ].map((m) => m[1]!);
      const dynamic = [
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]/g),
        ...text.matchAll(/\brequire\(/g),
      ];
      expect(dynamic, file).toEqual([]);
      for (const spec of specifiers) {
        if (spec.startsWith('./')) expect(spec, file).toMatch(/^\.\/[a-z-]+\.js$/);
        else expect(ALLOWED.has(spec), `${file} imports ${spec}`).toBe(true);
      }
    }
  });
});

describe('hostile inputs finish and are refused', () => {
  // A catastrophic regex would hang here (and hit the test timeout), not fail an assertion.
  const long = [
    'a-'.repeat(50_000) + '!',
    'a_'.repeat(50_000) + '_',
    'a.'.repeat(50_000),
    'a/'.repeat(50_000) + '/',
    'sha256:' + 'a'.repeat(100_000),
    'a'.repeat(100_000) + ':' + 'b'.repeat(100_000),
    'a.a-'.repeat(30_000) + '/x',
  ];
  it.each(long.map((s) => [s.slice(0, 12), s]))('%s…', (_label, s) => {
    expect(isValidRepositoryName(s)).toBe(false);
    expect(['NAME_INVALID', 'MANIFEST_INVALID', 'DIGEST_INVALID', 'UNSUPPORTED']).toContain(
      ociCode(() => parseReference(s)),
    );
    expect(['MANIFEST_INVALID', 'DIGEST_INVALID', 'UNSUPPORTED']).toContain(
      ociCode(() => parseManifestReference(s)),
    );
    expect(['DIGEST_INVALID', 'UNSUPPORTED']).toContain(ociCode(() => parseDigest(s)));
  });
});
