import { describe, expect, it } from 'vitest';
import {
  groupBlobsByPublication,
  parseSelectionSnapshot,
  SELECTION_SNAPSHOT_VERSION,
  sumRedirectStatistics,
  type SelectionSnapshot,
} from '../src/index.js';

const hex = (c: string) => c.repeat(64);

const valid: SelectionSnapshot = {
  version: SELECTION_SNAPSHOT_VERSION,
  writtenAt: '2026-01-01T00:00:00.000Z',
  master: { name: 'master', baseUrl: 'http://master.example/master' },
  marker: 2,
  mirrors: [
    {
      id: 'm1',
      name: 'one',
      baseUrl: 'http://one.example/pub',
      country: 'DE',
      netblocks: ['192.0.2.0/24'],
      asn: 64500,
      bandwidth: 100,
      private: false,
      countriesAllowed: [],
      families: ['ipv4'],
      publication: 2,
    },
  ],
  blobs: [
    { publication: 1, hex: [hex('a')] },
    { publication: 2, hex: [hex('b'), hex('c')] },
  ],
};

describe('selection snapshot', () => {
  it('round-trips through its JSON text', () => {
    expect(parseSelectionSnapshot(JSON.stringify(valid))).toEqual(valid);
  });

  it('groups blobs under the publication that introduced them', () => {
    const introduced = new Map([
      [hex('c'), 2],
      [hex('a'), 1],
      [hex('b'), 2],
    ]);
    expect(groupBlobsByPublication(introduced)).toEqual([
      { publication: 1, hex: [hex('a')] },
      { publication: 2, hex: [hex('c'), hex('b')] },
    ]);
  });

  it.each([
    ['not JSON', '{"version":1', /not JSON/],
    ['another version', JSON.stringify({ ...valid, version: 2 }), /version 2 is not 1/],
    ['no version', JSON.stringify({ ...valid, version: undefined }), /version undefined/],
    [
      'an upper-case digest',
      JSON.stringify({ ...valid, blobs: [{ publication: 1, hex: ['A'.repeat(64)] }] }),
      /blobs\.0\.hex\.0/,
    ],
    [
      'a lower-case country',
      JSON.stringify({ ...valid, mirrors: [{ ...valid.mirrors[0], country: 'de' }] }),
      /mirrors\.0\.country/,
    ],
    [
      'an unknown family',
      JSON.stringify({ ...valid, mirrors: [{ ...valid.mirrors[0], families: ['ipx'] }] }),
      /mirrors\.0\.families/,
    ],
    ['a negative publication', JSON.stringify({ ...valid, marker: -1 }), /marker/],
  ])('refuses %s, saying where', (_what, text, reason) => {
    expect(() => parseSelectionSnapshot(text)).toThrow(reason);
  });
});

describe('redirect statistics', () => {
  it('sums several redirectors, keeping the earliest start', () => {
    const total = sumRedirectStatistics([
      {
        since: '2026-01-02T00:00:00Z',
        redirects: 3,
        notFound: 1,
        byMirror: { a: 3 },
        byCountry: { DE: 3 },
        byTier: { country: 3 },
      },
      {
        since: '2026-01-01T00:00:00Z',
        redirects: 2,
        notFound: 0,
        byMirror: { a: 1, b: 1 },
        byCountry: { '--': 2 },
        byTier: { global: 2 },
      },
    ]);
    expect(total).toEqual({
      since: '2026-01-01T00:00:00Z',
      redirects: 5,
      notFound: 1,
      byMirror: { a: 4, b: 1 },
      byCountry: { DE: 3, '--': 2 },
      byTier: { country: 3, global: 2 },
    });
    expect(sumRedirectStatistics([]).redirects).toBe(0);
  });
});
