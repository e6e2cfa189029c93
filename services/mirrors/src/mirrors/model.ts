import { z } from 'zod';
import { parseCidr, type AddressFamily } from '@flotilla/kit';
import { continentOf, isKnownCountry, type SelectableMirror } from '@flotilla/protocol';

/**
 * A registered mirror: what its admin declared (validated by `mirrorCreateSchema`) and what
 * the crawler learned about it. Stored in the `mirrors` collection, one document per mirror.
 */
export type CrawlStatus = 'ok' | 'incomplete' | 'unreachable';

export interface MirrorDocument extends Record<string, unknown> {
  _id: string;
  name: string;
  baseUrl: string;
  country: string;
  continent: string;
  netblocks: string[];
  asn: number | null;
  bandwidth: number;
  private: boolean;
  countriesAllowed: string[];
  /** The admin's switch. */
  enabled: boolean;
  /** Families set by the admin (tests, or a host the crawler cannot probe); `null` = learn them. */
  families: AddressFamily[] | null;
  createdAt: string;
  updatedAt: string;
  /** Highest publication fully verified on the mirror; `null` before the first good crawl. */
  publication: number | null;
  /** What the mirror's `PUBLICATION` said at the last crawl. */
  claimedPublication: number | null;
  /** Families on which the mirror answered at the last crawl that reached it. */
  learnedFamilies: AddressFamily[];
  lastCrawledAt: string | null;
  lastCrawlDurationMs: number | null;
  lastCrawlStatus: CrawlStatus | null;
  lastCrawlError: string | null;
  consecutiveFailures: number;
  /** Set by the crawler after 4 failed crawls in a row, cleared by the next good one. */
  autoDisabled: boolean;
}

export const AUTO_DISABLE_AFTER_FAILURES = 4;

const country = z
  .string()
  .regex(/^[A-Za-z]{2}$/, { message: 'expected an ISO 3166-1 alpha-2 country code' })
  .transform((code) => code.toUpperCase())
  .refine(isKnownCountry, { message: 'unknown ISO 3166-1 alpha-2 country code' });

const netblock = z
  .string()
  .max(64)
  .refine((text) => text.includes('/') && parseCidr(text) !== undefined, {
    message: 'expected an IPv4 or IPv6 CIDR such as 192.0.2.0/24',
  })
  .transform((text) => {
    const cidr = parseCidr(text)!;
    return cidr.family === 'ipv4'
      ? `${[24, 16, 8, 0].map((shift) => (cidr.v4 >>> shift) & 255).join('.')}/${cidr.prefix}`
      : text.toLowerCase();
  });

const baseUrl = z
  .string()
  .max(2048)
  .transform((text, ctx) => {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected an absolute http or https URL' });
      return z.NEVER;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: 'expected an http or https URL' });
      return z.NEVER;
    }
    if (parsed.username || parsed.password || parsed.search || parsed.hash) {
      ctx.addIssue({
        code: 'custom',
        message: 'a mirror URL carries no credentials, query or fragment',
      });
      return z.NEVER;
    }
    return parsed.toString().replace(/\/+$/, '');
  });

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, {
  message: 'letters, digits, dot, dash and underscore; up to 100',
});

const declared = {
  name,
  baseUrl,
  country,
  netblocks: z.array(netblock).max(10_000),
  asn: z.number().int().min(1).max(4_294_967_295).nullable(),
  bandwidth: z.number().int().min(1).max(10_000_000),
  private: z.boolean(),
  countriesAllowed: z.array(country).max(300),
  enabled: z.boolean(),
  families: z
    .array(z.enum(['ipv4', 'ipv6']))
    .min(1)
    .max(2)
    .nullable(),
};

export const mirrorCreateSchema = z.strictObject({
  name: declared.name,
  baseUrl: declared.baseUrl,
  country: declared.country,
  netblocks: declared.netblocks.default([]),
  asn: declared.asn.default(null),
  bandwidth: declared.bandwidth.default(100),
  private: declared.private.default(false),
  countriesAllowed: declared.countriesAllowed.default([]),
  enabled: declared.enabled.default(true),
  families: declared.families.default(null),
});

export const mirrorPatchSchema = z
  .strictObject({
    name: declared.name.optional(),
    baseUrl: declared.baseUrl.optional(),
    country: declared.country.optional(),
    netblocks: declared.netblocks.optional(),
    asn: declared.asn.optional(),
    bandwidth: declared.bandwidth.optional(),
    private: declared.private.optional(),
    countriesAllowed: declared.countriesAllowed.optional(),
    enabled: declared.enabled.optional(),
    families: declared.families.optional(),
  })
  .refine((patch) => Object.keys(patch).length > 0, { message: 'nothing to change' });

export type MirrorCreate = z.output<typeof mirrorCreateSchema>;
export type MirrorPatch = z.output<typeof mirrorPatchSchema>;

/** The continent stored alongside the country (derived, never declared). */
export function continentFor(countryCode: string): string {
  return continentOf(countryCode) ?? '--';
}

/** The API's view of a mirror. */
export interface MirrorView {
  id: string;
  name: string;
  baseUrl: string;
  country: string;
  continent: string;
  netblocks: string[];
  asn: number | null;
  bandwidth: number;
  private: boolean;
  countriesAllowed: string[];
  enabled: boolean;
  autoDisabled: boolean;
  families: AddressFamily[] | null;
  learnedFamilies: AddressFamily[];
  publication: number | null;
  claimedPublication: number | null;
  upToDate: boolean;
  lastCrawledAt: string | null;
  lastCrawlDurationMs: number | null;
  lastCrawlStatus: CrawlStatus | null;
  lastCrawlError: string | null;
  consecutiveFailures: number;
  createdAt: string;
  updatedAt: string;
}

export function toView(doc: MirrorDocument, currentPublication: number | null): MirrorView {
  return {
    id: doc._id,
    name: doc.name,
    baseUrl: doc.baseUrl,
    country: doc.country,
    continent: doc.continent,
    netblocks: doc.netblocks,
    asn: doc.asn,
    bandwidth: doc.bandwidth,
    private: doc.private,
    countriesAllowed: doc.countriesAllowed,
    enabled: doc.enabled,
    autoDisabled: doc.autoDisabled,
    families: doc.families,
    learnedFamilies: doc.learnedFamilies,
    publication: doc.publication,
    claimedPublication: doc.claimedPublication,
    upToDate:
      doc.publication !== null &&
      currentPublication !== null &&
      doc.publication >= currentPublication,
    lastCrawledAt: doc.lastCrawledAt,
    lastCrawlDurationMs: doc.lastCrawlDurationMs,
    lastCrawlStatus: doc.lastCrawlStatus,
    lastCrawlError: doc.lastCrawlError,
    consecutiveFailures: doc.consecutiveFailures,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}

/** The selection view of a mirror, or `null` when it must not receive clients. */
export function toSelectable(doc: MirrorDocument): SelectableMirror | null {
  if (!doc.enabled || doc.autoDisabled || doc.publication === null) return null;
  const families = doc.families ?? doc.learnedFamilies;
  if (families.length === 0) return null;
  return {
    id: doc._id,
    name: doc.name,
    baseUrl: doc.baseUrl,
    country: doc.country,
    netblocks: doc.netblocks,
    asn: doc.asn,
    bandwidth: doc.bandwidth,
    private: doc.private,
    countriesAllowed: doc.countriesAllowed,
    families,
    publication: doc.publication,
  };
}
