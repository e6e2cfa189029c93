import { describe, expect, it } from 'vitest';
import { parseAddress } from '@flotilla/kit';
import { continentOf } from '@flotilla/protocol';
import {
  buildSelector,
  type ClientInfo,
  type SelectableMirror,
} from '../src/selection/selector.js';
import { seeded } from '../../../test/support/seeded.js';

const master = { name: 'master', baseUrl: 'http://master.example/pub' };

function mirror(name: string, over: Partial<SelectableMirror> = {}): SelectableMirror {
  return {
    id: name,
    name,
    baseUrl: `http://${name}.example`,
    country: 'US',
    netblocks: [],
    asn: null,
    bandwidth: 100,
    private: false,
    countriesAllowed: [],
    families: ['ipv4', 'ipv6'],
    publication: 10,
    ...over,
  };
}

function client(
  address: string,
  country: string | null = null,
  asn: number | null = null,
): ClientInfo {
  const parsed = parseAddress(address);
  if (!parsed) throw new Error(`bad address ${address}`);
  return { address: parsed, country, asn };
}

describe('countries', () => {
  it('maps countries to continents', () => {
    expect(continentOf('DE')).toBe('EU');
    expect(continentOf('BR')).toBe('SA');
    expect(continentOf('JP')).toBe('AS');
    expect(continentOf('ZZ')).toBeUndefined();
  });
});

describe('selector tiers', () => {
  const mirrors = [
    mirror('campus', {
      netblocks: ['198.51.100.0/24', '2001:db8:1::/48'],
      country: 'DE',
      private: true,
    }),
    mirror('campus-dept', { netblocks: ['198.51.100.128/25'], country: 'DE', private: true }),
    mirror('isp', { asn: 64500, country: 'FR', private: true }),
    mirror('de', { country: 'DE' }),
    mirror('at', { country: 'AT' }),
    mirror('br', { country: 'BR' }),
  ];
  const selector = buildSelector(mirrors, { master, random: seeded(1) });

  it('prefers the most specific netblock, then shorter ones', () => {
    expect(selector.pick(client('198.51.100.200', 'DE'), 5)).toMatchObject({
      name: 'campus-dept',
      tier: 'netblock',
    });
    expect(selector.pick(client('198.51.100.20', 'DE'), 5)).toMatchObject({
      name: 'campus',
      tier: 'netblock',
    });
    expect(selector.pick(client('2001:db8:1::5', 'DE'), 5)).toMatchObject({
      name: 'campus',
      tier: 'netblock',
    });
    expect(
      selector
        .list(client('198.51.100.200', 'DE'), 5)
        .map((c) => c.name)
        .slice(0, 3),
    ).toEqual(['campus-dept', 'campus', 'de']);
  });

  it('falls to ASN, country, continent, global and the master in order', () => {
    expect(selector.pick(client('203.0.113.9', 'FR', 64500), 5)).toMatchObject({
      name: 'isp',
      tier: 'asn',
    });
    expect(selector.pick(client('203.0.113.9', 'DE'), 5)).toMatchObject({
      name: 'de',
      tier: 'country',
    });
    expect(selector.pick(client('203.0.113.9', 'IT'), 5).tier).toBe('continent');
    expect(['de', 'at']).toContain(selector.pick(client('203.0.113.9', 'IT'), 5).name);
    expect(selector.pick(client('203.0.113.9', 'JP'), 5).tier).toBe('global');
    expect(selector.pick(client('203.0.113.9', null), 11)).toMatchObject({
      name: 'master',
      tier: 'master',
    });
    const list = selector.list(client('203.0.113.9', 'AT'), 5);
    expect(list.map((c) => c.tier)).toEqual(['country', 'continent', 'global', 'master']);
    expect(list.map((c) => c.name).slice(0, 2)).toEqual(['at', 'de']);
    expect(list.map((c) => c.name)).not.toContain('campus');
  });

  it('never offers a mirror older than the blob, nor one on the wrong family', () => {
    const sel = buildSelector(
      [
        mirror('old', { country: 'DE', publication: 3 }),
        mirror('v4only', { country: 'DE', families: ['ipv4'] }),
      ],
      { master, random: seeded(2) },
    );
    expect(sel.pick(client('203.0.113.1', 'DE'), 4).name).toBe('v4only');
    expect(sel.pick(client('2001:db8::1', 'DE'), 4).name).toBe('master');
    expect(sel.list(client('2001:db8::1', 'DE'), 3).map((c) => c.name)).toEqual(['old', 'master']);
  });

  it('honours countriesAllowed in the geographic tiers', () => {
    const sel = buildSelector(
      [
        mirror('fr-only', { country: 'DE', countriesAllowed: ['FR'] }),
        mirror('br', { country: 'BR' }),
      ],
      { master, random: seeded(3) },
    );
    expect(sel.pick(client('203.0.113.1', 'FR'), 1)).toMatchObject({
      name: 'fr-only',
      tier: 'continent',
    });
    expect(sel.pick(client('203.0.113.1', 'DE'), 1)).toMatchObject({ name: 'br', tier: 'global' });
    expect(sel.list(client('203.0.113.1', 'US'), 1).map((c) => c.name)).toEqual(['br', 'master']);
    expect(sel.list(client('203.0.113.1', 'FR'), 1).map((c) => c.name)).toEqual([
      'fr-only',
      'br',
      'master',
    ]);
  });

  it('weights picks by bandwidth within a tier', () => {
    const sel = buildSelector(
      [
        mirror('big', { country: 'DE', bandwidth: 900 }),
        mirror('small', { country: 'DE', bandwidth: 100 }),
      ],
      { master, random: seeded(42) },
    );
    const counts = { big: 0, small: 0 } as Record<string, number>;
    for (let i = 0; i < 10_000; i += 1) counts[sel.pick(client('203.0.113.1', 'DE'), 1).name]! += 1;
    // Expected 9000 / 1000; binomial sd ≈ 30, so ±200 is > 6 sd.
    expect(counts.big).toBeGreaterThan(8800);
    expect(counts.big).toBeLessThan(9200);
    let firstBig = 0;
    for (let i = 0; i < 2_000; i += 1)
      if (sel.list(client('203.0.113.1', 'DE'), 1)[0]!.name === 'big') firstBig += 1;
    expect(firstBig).toBeGreaterThan(1700);
    expect(firstBig).toBeLessThan(1900);
  });
});
