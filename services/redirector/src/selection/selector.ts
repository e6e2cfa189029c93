import { parseCidr, type AddressFamily, type ParsedAddress, type ParsedCidr } from '@flotilla/kit';
import { continentOf, type SelectableMirror } from '@flotilla/protocol';
import { buildBucket, countHolding, pickWeighted, weightedOrder, type Bucket } from './bucket.js';
import { PrefixMap } from './prefix-map.js';

/**
 * The redirector's selection core: pure and synchronous. `buildSelector` precomputes, once
 * per change of mirrors, crawls or publications, every tier's candidates per address family
 * (see bucket.ts); `pick` and `list` then answer from memory. A new selector replaces the
 * old one by swapping one reference, so a request always sees one consistent snapshot.
 *
 * Tiers, in order (MirrorManager's): the client's netblocks (most specific first), its ASN,
 * its country, its continent, every public mirror, the master. Private mirrors appear only
 * in their own netblock and ASN tiers; `countriesAllowed` limits the geographic tiers. A
 * mirror is a candidate only when its verified publication is at least the one that
 * introduced the blob and it answers on the client's address family.
 */

export type { SelectableMirror };

export interface ClientInfo {
  readonly address: ParsedAddress;
  /** Upper-case alpha-2, from GeoIP or the `country=` override; `null` when unknown. */
  readonly country: string | null;
  readonly asn: number | null;
}

export type Tier = 'netblock' | 'asn' | 'country' | 'continent' | 'global' | 'master';

export interface MasterTarget {
  readonly name: string;
  readonly baseUrl: string;
}

export interface Choice {
  readonly tier: Tier;
  readonly name: string;
  readonly baseUrl: string;
  /** `undefined` for the master. */
  readonly mirror?: SelectableMirror;
}

/**
 * Where a client's requests for blobs of one publication go: the first tier with a mirror
 * holding it, as a bucket and how many of its mirrors qualify (`bucket` null: the master).
 * Valid only for the snapshot that made it; the redirector reuses it across a keep-alive
 * connection's requests and draws a mirror per request.
 */
export interface Plan {
  readonly tier: Tier;
  readonly bucket: Bucket<SelectableMirror> | null;
  readonly count: number;
}

export interface Selector {
  /** Eligible mirrors in this snapshot. */
  readonly size: number;
  /** The mirror one request for a blob introduced by `required` goes to: `draw(plan(…))`. */
  pick(client: ClientInfo, required: number): Choice;
  /** The tier and candidates for this client and publication, without the random draw. */
  plan(client: ClientInfo, required: number): Plan;
  /** One bandwidth-weighted draw from a plan this snapshot made. */
  draw(plan: Plan): Choice;
  /** The whole ordered candidate list (each tier shuffled by bandwidth), master last. */
  list(client: ClientInfo, required: number): Choice[];
}

export interface SelectorOptions {
  master: MasterTarget;
  /** Uniform in [0, 1); tests pass a seeded generator. Default `Math.random`. */
  random?: () => number;
}

type FamilyBuckets = Readonly<Record<AddressFamily, Bucket<SelectableMirror>>>;

const byId = (a: SelectableMirror, b: SelectableMirror): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

function familyBuckets(mirrors: readonly SelectableMirror[]): FamilyBuckets {
  return {
    ipv4: buildBucket(
      mirrors.filter((m) => m.families.includes('ipv4')),
      byId,
    ),
    ipv6: buildBucket(
      mirrors.filter((m) => m.families.includes('ipv6')),
      byId,
    ),
  };
}

function groupBy<K>(
  mirrors: readonly SelectableMirror[],
  keys: (m: SelectableMirror) => Iterable<K>,
): Map<K, SelectableMirror[]> {
  const groups = new Map<K, SelectableMirror[]>();
  for (const mirror of mirrors) {
    for (const key of keys(mirror)) {
      let group = groups.get(key);
      if (!group) {
        group = [];
        groups.set(key, group);
      }
      if (group[group.length - 1] !== mirror) group.push(mirror);
    }
  }
  return groups;
}

function mapValues<K, A, B>(map: Map<K, A>, fn: (value: A, key: K) => B): Map<K, B> {
  const out = new Map<K, B>();
  for (const [key, value] of map) out.set(key, fn(value, key));
  return out;
}

export function buildSelector(
  input: readonly SelectableMirror[],
  options: SelectorOptions,
): Selector {
  const random = options.random ?? Math.random;
  const master = options.master;
  const mirrors = input.filter(
    (m) => m.bandwidth > 0 && Number.isFinite(m.publication) && m.families.length > 0,
  );

  // Netblock tier: one bucket per block, holding every mirror (private ones included) that
  // declared it and answers on the block's family.
  const netblockMembers = new PrefixMap<SelectableMirror[]>();
  const declared: Array<[ParsedCidr, SelectableMirror[]]> = [];
  for (const mirror of mirrors) {
    for (const text of mirror.netblocks) {
      const cidr = parseCidr(text);
      if (!cidr || !mirror.families.includes(cidr.family)) continue;
      const members = netblockMembers.upsert(cidr, () => {
        const fresh: SelectableMirror[] = [];
        declared.push([cidr, fresh]);
        return fresh;
      });
      if (!members.includes(mirror)) members.push(mirror);
    }
  }
  const netblocks = new PrefixMap<Bucket<SelectableMirror>>();
  for (const [cidr, members] of declared) netblocks.upsert(cidr, () => buildBucket(members, byId));

  const byAsn = mapValues(
    groupBy(mirrors, (m) => (m.asn === null ? [] : [m.asn])),
    familyBuckets,
  );

  const open = mirrors.filter((m) => !m.private);
  const unrestricted = open.filter((m) => m.countriesAllowed.length === 0);
  const servesCountry = (m: SelectableMirror, country: string): boolean =>
    m.countriesAllowed.length === 0 || m.countriesAllowed.includes(country);

  const byCountry = mapValues(
    groupBy(open, (m) => [m.country]),
    (group, country) => familyBuckets(group.filter((m) => servesCountry(m, country))),
  );
  const byContinent = mapValues(
    groupBy(unrestricted, (m) => {
      const continent = continentOf(m.country);
      return continent ? [continent] : [];
    }),
    familyBuckets,
  );
  const globalDefault = familyBuckets(unrestricted);

  // Countries some mirror is restricted to get their own continent and global buckets, so
  // that a client from such a country also sees the mirrors reserved for it.
  const restrictedCountries = new Set(open.flatMap((m) => m.countriesAllowed));
  const continentForCountry = new Map<string, FamilyBuckets>();
  const globalForCountry = new Map<string, FamilyBuckets>();
  for (const country of restrictedCountries) {
    const eligible = open.filter((m) => servesCountry(m, country));
    globalForCountry.set(country, familyBuckets(eligible));
    const continent = continentOf(country);
    if (continent) {
      continentForCountry.set(
        country,
        familyBuckets(eligible.filter((m) => continentOf(m.country) === continent)),
      );
    }
  }

  const continentBuckets = (country: string): FamilyBuckets | undefined => {
    const special = continentForCountry.get(country);
    if (special) return special;
    const continent = continentOf(country);
    return continent ? byContinent.get(continent) : undefined;
  };

  const masterChoice: Choice = { tier: 'master', name: master.name, baseUrl: master.baseUrl };
  const choose = (tier: Tier, mirror: SelectableMirror): Choice => ({
    tier,
    name: mirror.name,
    baseUrl: mirror.baseUrl,
    mirror,
  });

  /** The geographic and ASN tiers after the netblocks, in order, for one client. */
  const laterTiers = (client: ClientInfo): Array<[Tier, Bucket<SelectableMirror> | undefined]> => {
    const family = client.address.family;
    const country = client.country;
    return [
      ['asn', client.asn === null ? undefined : byAsn.get(client.asn)?.[family]],
      ['country', country === null ? undefined : byCountry.get(country)?.[family]],
      ['continent', country === null ? undefined : continentBuckets(country)?.[family]],
      [
        'global',
        (country === null ? undefined : globalForCountry.get(country)?.[family]) ??
          globalDefault[family],
      ],
    ];
  };

  const masterPlan: Plan = { tier: 'master', bucket: null, count: 0 };
  const planFor = (
    tier: Tier,
    bucket: Bucket<SelectableMirror> | undefined,
    required: number,
  ): Plan | undefined => {
    if (bucket === undefined) return undefined;
    const count = countHolding(bucket, required);
    return count > 0 ? { tier, bucket, count } : undefined;
  };
  const plan = (client: ClientInfo, required: number): Plan => {
    const fromNetblock = netblocks.firstMatch(client.address, (bucket) =>
      planFor('netblock', bucket, required),
    );
    if (fromNetblock) return fromNetblock;
    const family = client.address.family;
    const country = client.country;
    const fromAsn =
      client.asn === null ? undefined : planFor('asn', byAsn.get(client.asn)?.[family], required);
    if (fromAsn) return fromAsn;
    if (country !== null) {
      const fromCountry = planFor('country', byCountry.get(country)?.[family], required);
      if (fromCountry) return fromCountry;
      const fromContinent = planFor('continent', continentBuckets(country)?.[family], required);
      if (fromContinent) return fromContinent;
    }
    const global =
      (country === null ? undefined : globalForCountry.get(country)?.[family]) ??
      globalDefault[family];
    return planFor('global', global, required) ?? masterPlan;
  };
  const draw = (chosen: Plan): Choice =>
    chosen.bucket === null
      ? masterChoice
      : choose(chosen.tier, pickWeighted(chosen.bucket, chosen.count, random));

  return {
    size: mirrors.length,
    plan,
    draw,
    pick: (client, required) => draw(plan(client, required)),

    list(client, required) {
      const seen = new Set<string>();
      const out: Choice[] = [];
      const add = (tier: Tier, bucket: Bucket<SelectableMirror> | undefined): void => {
        if (!bucket) return;
        for (const mirror of weightedOrder(bucket, countHolding(bucket, required), random)) {
          if (seen.has(mirror.id)) continue;
          seen.add(mirror.id);
          out.push(choose(tier, mirror));
        }
      };
      for (const bucket of netblocks.matches(client.address)) add('netblock', bucket);
      for (const [tier, bucket] of laterTiers(client)) add(tier, bucket);
      out.push(masterChoice);
      return out;
    },
  };
}
