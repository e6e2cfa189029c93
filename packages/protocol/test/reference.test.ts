import { describe, expect, it } from 'vitest';
import {
  REPOSITORY_NAME_MAX,
  assertRepositoryName,
  assertTag,
  isValidRepositoryName,
  isValidTag,
  parseManifestReference,
  parseReference,
} from '../src/index.js';
import { D1, D512, ociCode } from './fixtures.js';

describe('repository names', () => {
  it.each([
    'fedora',
    'fedora/httpd',
    'a',
    '0',
    'a.b_c__d-e---f/g',
    'fedora/f39/httpd-2.4',
    'x/y/z/w/v/u',
    'a'.repeat(REPOSITORY_NAME_MAX),
    `${'a'.repeat(127)}/${'b'.repeat(127)}`,
  ])('accepts %j', (name) => {
    expect(isValidRepositoryName(name)).toBe(true);
    expect(() => assertRepositoryName(name)).not.toThrow();
  });

  it.each([
    '',
    'Fedora',
    'fedora/HTTPD',
    '..',
    '../etc',
    'fedora/../secrets',
    'fedora/..',
    '%2e%2e',
    'fedora/%2e%2e/x',
    'fedora%2fhttpd',
    '.hidden',
    'a/.b',
    '/fedora',
    'fedora/',
    'fedora//httpd',
    'a___b',
    'a-',
    '-a',
    'a.-b',
    'a..b',
    'a b',
    'a\\b',
    'a\0b',
    'a:b',
    'localhost:5000/fedora',
    'é',
    'a'.repeat(REPOSITORY_NAME_MAX + 1),
    `${'a'.repeat(128)}/${'b'.repeat(127)}`,
  ])('refuses %j with NAME_INVALID', (name) => {
    expect(isValidRepositoryName(name)).toBe(false);
    expect(ociCode(() => assertRepositoryName(name))).toBe('NAME_INVALID');
  });

  it('refuses non-strings', () => {
    expect(isValidRepositoryName(undefined)).toBe(false);
    expect(ociCode(() => assertRepositoryName(42))).toBe('NAME_INVALID');
  });

  it('says when a name is too long', () => {
    expect(() => assertRepositoryName('a'.repeat(256))).toThrow(/longer than 255/);
  });
});

describe('tags', () => {
  it.each([
    'latest',
    '39',
    '_private',
    'v1.2.3-rc.1_build',
    'A',
    'a'.repeat(128),
    'aA1bB90aA_aA9._-912921391239',
  ])('accepts %j', (tag) => {
    expect(isValidTag(tag)).toBe(true);
    expect(() => assertTag(tag)).not.toThrow();
  });
  it.each(['', '.hidden', '-x', 'a:b', 'a/b', 'a@b', 'a b', 'a'.repeat(129), 'é', 'a\n'])(
    'refuses %j',
    (tag) => {
      expect(isValidTag(tag)).toBe(false);
      expect(ociCode(() => assertTag(tag))).toBe('MANIFEST_INVALID');
    },
  );
});

describe('parseReference', () => {
  it('parses name, tag and digest', () => {
    expect(parseReference('fedora/httpd')).toEqual({
      name: 'fedora/httpd',
      repository: 'fedora/httpd',
    });
    expect(parseReference('fedora/httpd:39')).toEqual({
      name: 'fedora/httpd',
      repository: 'fedora/httpd',
      tag: '39',
    });
    expect(parseReference(`fedora/httpd@${D1}`)).toEqual({
      name: 'fedora/httpd',
      repository: 'fedora/httpd',
      digest: D1,
    });
    expect(parseReference(`fedora/httpd:39@${D512}`)).toEqual({
      name: 'fedora/httpd',
      repository: 'fedora/httpd',
      tag: '39',
      digest: D512,
    });
  });

  it('accepts a registry host with a port and splits the tag only after the last slash', () => {
    expect(parseReference('localhost:5000/fedora/httpd:39')).toEqual({
      name: 'localhost:5000/fedora/httpd',
      domain: 'localhost:5000',
      repository: 'fedora/httpd',
      tag: '39',
    });
    expect(parseReference('localhost:5000/fedora/httpd')).toEqual({
      name: 'localhost:5000/fedora/httpd',
      domain: 'localhost:5000',
      repository: 'fedora/httpd',
    });
    expect(parseReference('localhost/httpd')).toMatchObject({
      domain: 'localhost',
      repository: 'httpd',
    });
    expect(parseReference('registry.fedoraproject.org/fedora:39')).toMatchObject({
      domain: 'registry.fedoraproject.org',
      repository: 'fedora',
      tag: '39',
    });
    expect(parseReference(`127.0.0.1:5000/a/b@${D1}`)).toMatchObject({
      domain: '127.0.0.1:5000',
      repository: 'a/b',
      digest: D1,
    });
    expect(parseReference('[::1]:5000/a:1')).toMatchObject({
      domain: '[::1]:5000',
      repository: 'a',
      tag: '1',
    });
    // without a slash there is no host: this is repository "localhost" with tag "5000", as in Docker
    expect(parseReference('localhost:5000')).toEqual({
      name: 'localhost',
      repository: 'localhost',
      tag: '5000',
    });
    expect(parseReference('Quay.IO/a')).toMatchObject({ domain: 'Quay.IO', repository: 'a' });
  });

  it.each([
    ['', 'NAME_INVALID'],
    ['Fedora/httpd', 'NAME_INVALID'],
    ['fedora/../x', 'NAME_INVALID'],
    ['fedora/httpd:', 'MANIFEST_INVALID'],
    ['fedora/httpd:-x', 'MANIFEST_INVALID'],
    ['fedora/httpd@sha256:abc', 'DIGEST_INVALID'],
    ['fedora/httpd@md5:abc', 'UNSUPPORTED'],
    ['fedora/httpd@', 'DIGEST_INVALID'],
    [`a@${D1}@${D1}`, 'DIGEST_INVALID'],
    ['localhost:5000/', 'NAME_INVALID'],
    ['bad_host:5000/a', 'NAME_INVALID'],
    ['-host.com/a', 'NAME_INVALID'],
    ['host.com:port/a', 'NAME_INVALID'],
    [`${'a'.repeat(256)}:1`, 'NAME_INVALID'],
    [`example.com/${'a'.repeat(250)}`, 'NAME_INVALID'],
    ['x'.repeat(5000), 'NAME_INVALID'],
  ])('refuses %j with %s', (ref, code) => {
    expect(ociCode(() => parseReference(ref))).toBe(code);
  });
});

describe('parseManifestReference', () => {
  it('tells tags from digests', () => {
    expect(parseManifestReference('39')).toEqual({ tag: '39' });
    expect(parseManifestReference(D1)).toEqual({ digest: D1 });
    expect(parseManifestReference(D512)).toEqual({ digest: D512 });
  });
  it.each([
    ['', 'MANIFEST_INVALID'],
    ['.x', 'MANIFEST_INVALID'],
    ['a'.repeat(129), 'MANIFEST_INVALID'],
    ['../x', 'MANIFEST_INVALID'],
    ['sha256:abc', 'DIGEST_INVALID'],
    [D1.toUpperCase(), 'DIGEST_INVALID'],
    ['md5:abc', 'UNSUPPORTED'],
    ['a:b:c', 'DIGEST_INVALID'],
  ])('refuses %j with %s', (ref, code) => {
    expect(ociCode(() => parseManifestReference(ref))).toBe(code);
  });
});
