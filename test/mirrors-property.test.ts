/**
 * Property: for random mirrors (verified publications, families, tiers, flags), random
 * publications and random requests, the redirector never sends a blob to a mirror whose
 * verified publication predates the blob's, nor to a disabled mirror, nor to one that
 * cannot serve the client's address family. Runs the real redirector (path parsing, blob
 * index, client address through X-Forwarded-For, selection snapshot) on in-memory fakes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createAddressSet, parseCidr } from '@flotilla/kit';
import {
  groupBlobsByPublication,
  parseSelectionSnapshot,
  SELECTION_SNAPSHOT_VERSION,
  type SelectionSnapshot,
} from '@flotilla/protocol';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../services/mirrors/src/blob-index.js';
import { toSelectable, type MirrorDocument } from '../services/mirrors/src/mirrors/model.js';
import { createRedirector } from '../services/redirector/src/redirector.js';
import { selectionFrom } from '../services/redirector/src/selection-state.js';
import { RedirectStatistics } from '../services/redirector/src/statistics.js';
import type { TreeReader } from '../services/mirrors/src/tree/reader.js';

const COUNTRIES = ['DE', 'FR', 'US', 'BR', 'JP', 'KE'];
const NETBLOCKS = [
  '192.0.2.0/24',
  '192.0.2.0/26',
  '198.51.100.0/24',
  '2001:db8::/32',
  '2001:db8:1::/48',
];
const CLIENTS = [
  '192.0.2.1',
  '192.0.2.100',
  '198.51.100.7',
  '203.0.113.9',
  '2001:db8::1',
  '2001:db8:1::9',
  '2001:db8:2::1',
];

const hex64 = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Buffer.from(bytes).toString('hex'));

const mirrorArb = fc.record({
  publication: fc.option(fc.integer({ min: 0, max: 6 }), { nil: null }),
  families: fc.constantFrom<Array<'ipv4' | 'ipv6'>>(['ipv4'], ['ipv6'], ['ipv4', 'ipv6']),
  country: fc.constantFrom(...COUNTRIES),
  netblocks: fc.subarray(NETBLOCKS, { maxLength: 2 }),
  asn: fc.option(fc.constantFrom(64500, 64501), { nil: null }),
  bandwidth: fc.integer({ min: 1, max: 10_000 }),
  private: fc.boolean(),
  countriesAllowed: fc.subarray(COUNTRIES, { maxLength: 2 }),
  enabled: fc.boolean(),
  autoDisabled: fc.boolean(),
});

const requestArb = fc.record({
  blob: fc.nat(),
  client: fc.constantFrom(...CLIENTS),
  country: fc.option(fc.constantFrom(...COUNTRIES), { nil: null }),
  asn: fc.option(fc.constantFrom(64500, 64501), { nil: null }),
  method: fc.constantFrom('GET', 'HEAD'),
});

type MirrorSpec = typeof mirrorArb extends fc.Arbitrary<infer T> ? T : never;

function doc(i: number, m: MirrorSpec): MirrorDocument {
  const time = new Date(0).toISOString();
  return {
    _id: `m${i}`,
    name: `m${i}`,
    baseUrl: `http://m${i}.example`,
    continent: '--',
    createdAt: time,
    updatedAt: time,
    claimedPublication: m.publication,
    learnedFamilies: [],
    lastCrawledAt: null,
    lastCrawlDurationMs: null,
    lastCrawlStatus: null,
    lastCrawlError: null,
    consecutiveFailures: 0,
    ...m,
  };
}

class FakeResponse {
  statusCode = 200;
  headersSent = false;
  headers: Record<string, string> = {};
  setHeader(name: string, value: string | number) {
    this.headers[name.toLowerCase()] = String(value);
  }
  writeHead(status: number, headers: Record<string, string> | string[]) {
    this.statusCode = status;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) this.setHeader(headers[i]!, headers[i + 1]!);
    } else {
      for (const [k, v] of Object.entries(headers)) this.setHeader(k, v);
    }
    this.headersSent = true;
    return this;
  }
  end() {
    this.headersSent = true;
  }
  destroy() {}
}

describe('redirector property', () => {
  it('never redirects to a mirror that predates the blob, is disabled, or misses the client family', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(hex64, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.array(mirrorArb, { maxLength: 12 }),
        fc.array(requestArb, { minLength: 1, maxLength: 30 }),
        fc.integer(),
        async (publications, mirrorSpecs, requests, seed) => {
          const reader: TreeReader = {
            location: 'memory',
            readMarker: async () => publications.length,
            listPublications: async (after, upTo) =>
              publications.map((_, i) => i + 1).filter((n) => n > after && n <= upTo),
            readPublication: async (n) => ({
              schemaVersion: 1,
              publication: n,
              channel: 'stable',
              time: new Date(0).toISOString(),
              repositories: [],
              newBlobs: publications[n - 1]!.map((h) => `sha256:${h}`),
            }),
            blobSize: async () => 1,
          };
          const index = new BlobIndex(reader, pino({ level: 'silent' }));
          await index.refresh();
          const docs = mirrorSpecs.map((m, i) => doc(i, m));
          let state = seed >>> 0;
          const random = () => {
            state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
            return state / 4294967296;
          };
          // Through the snapshot file's text, as a redirector process reads it.
          const snapshot: SelectionSnapshot = {
            version: SELECTION_SNAPSHOT_VERSION,
            writtenAt: new Date(0).toISOString(),
            master: { name: 'master', baseUrl: 'http://master.example' },
            marker: index.marker,
            mirrors: docs.map(toSelectable).filter((m) => m !== null),
            blobs: groupBlobsByPublication(index.entries()),
          };
          const selection = selectionFrom(parseSelectionSnapshot(JSON.stringify(snapshot)), random);
          let geo = { country: null as string | null, asn: null as number | null };
          const redirector = createRedirector({
            selection: () => selection,
            geo: { lookup: () => geo },
            trustedProxies: createAddressSet([parseCidr('127.0.0.1/32')!]),
            statistics: new RedirectStatistics(),
            logger: pino({ level: 'silent' }),
          });
          const allBlobs = publications.flat();
          for (const r of requests) {
            const hex = allBlobs[r.blob % allBlobs.length]!;
            const introduced = index.introducedIn(hex)!;
            geo = { country: r.country, asn: r.asn };
            const req = {
              url: `/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex}`,
              method: r.method,
              headers: { 'x-forwarded-for': r.client },
              rawHeaders: ['X-Forwarded-For', r.client],
              socket: { remoteAddress: '127.0.0.1' },
            } as unknown as IncomingMessage;
            const res = new FakeResponse();
            expect(redirector.handle(req, res as unknown as ServerResponse)).toBe(true);
            expect(res.statusCode).toBe(302);
            const name = res.headers['x-flotilla-mirror']!;
            if (name === 'master') continue;
            const chosen = docs.find((d) => d.name === name)!;
            expect(chosen.publication).not.toBeNull();
            expect(chosen.publication!).toBeGreaterThanOrEqual(introduced);
            expect(chosen.enabled && !chosen.autoDisabled).toBe(true);
            expect(chosen.families).toContain(r.client.includes(':') ? 'ipv6' : 'ipv4');
            expect(res.headers.location).toBe(
              `${chosen.baseUrl}/blobs/sha256/${hex.slice(0, 2)}/${hex}`,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
