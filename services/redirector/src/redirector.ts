import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  forwardedClient,
  forwardedForHeader,
  parseAddress,
  problems,
  writeError,
  type AddressSet,
  type ParsedAddress,
} from '@flotilla/kit';
import { isKnownCountry } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { GeoInfo, GeoLookup } from './geo.js';
import type { ClientInfo, Plan, Selector } from './selection/selector.js';
import type { Selection } from './selection-state.js';
import type { RedirectStatistics } from './statistics.js';

/**
 * The redirector's routes on plain `node:http`:
 *
 *   GET|HEAD /pub/containers/blobs/sha256/<2 hex>/<64 hex>  → 302 to the chosen mirror
 *   GET|HEAD /mirrorlist?path=…[&country=CC]                → the ordered list (text or JSON)
 *
 * Per request: parse the path by hand, find the blob's introducing publication in a Map, pick
 * from the current selection (built from the snapshot file), bump a counter. No store, no
 * middleware. Errors still
 * go through kit's one mapper (`writeError`), as problem JSON.
 */
export interface RedirectorOptions {
  /** The current selection (swapped as a whole when the snapshot changes). */
  selection: () => Selection;
  geo: GeoLookup;
  trustedProxies: AddressSet;
  statistics: RedirectStatistics;
  logger: Logger;
}

export interface Redirector {
  /** Answers and returns true for the redirector's paths; false leaves the request alone. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** The client as the redirector sees it (exposed for tests and the mirror list). */
  clientOf(req: IncomingMessage, countryOverride?: string): ClientInfo;
}

const PUB_PREFIX = '/pub/containers/';
const BLOB_PREFIX = '/pub/containers/blobs/sha256/';
/** `<BLOB_PREFIX><2 hex>/<64 hex>` */
const BLOB_PATH_LENGTH = BLOB_PREFIX.length + 67;
const SLASH = 0x2f;
const MIRRORLIST = '/mirrorlist';
const UNSPECIFIED: ParsedAddress = { family: 'ipv4', v4: 0, text: '0.0.0.0' };
const GEO_CACHE_LIMIT = 50_000;

/** What a connection remembers about its client between keep-alive requests. */
interface ClientState {
  /** The socket peer with its GeoIP answer. */
  peer: ClientInfo;
  /** Whether the peer is a trusted proxy (then X-Forwarded-For decides). */
  trusted: boolean;
  /** The last X-Forwarded-For value seen on this connection, and the client it named. */
  header: string | undefined;
  forwarded: ClientInfo | undefined;
  /** The last plan made here, for this selector snapshot, publication and client. */
  plan: Plan | undefined;
  planSelector: Selector | undefined;
  planPublication: number;
  planClient: ClientInfo | undefined;
}

function isLowerHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i += 1) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

type BlobPath = { hex: string } | { status: 400 | 404; detail: string };

/** `blobs/sha256/<2>/<64>` relative to the tree, as in the published layout. */
export function parseBlobPath(relative: string): BlobPath {
  if (!relative.startsWith('blobs/sha256/')) return { status: 404, detail: 'not a blob path' };
  const rest = relative.slice('blobs/sha256/'.length);
  const slash = rest.indexOf('/');
  if (slash !== 2 || rest.length !== 67) {
    return rest.length === 0 || slash === -1
      ? { status: 404, detail: 'not a blob path' }
      : { status: 400, detail: 'expected blobs/sha256/<2 hex>/<64 hex>' };
  }
  if (!isLowerHex(rest, 0, 2) || !isLowerHex(rest, 3, 67)) {
    return { status: 400, detail: 'invalid sha256 digest: expected 64 lowercase hex characters' };
  }
  if (rest.charCodeAt(0) !== rest.charCodeAt(3) || rest.charCodeAt(1) !== rest.charCodeAt(4)) {
    return { status: 404, detail: 'the directory does not match the digest' };
  }
  return { hex: rest.slice(3) };
}

function blobPathError(rejected: { status: 400 | 404; detail: string }): Error {
  return rejected.status === 400
    ? problems.badRequest(rejected.detail)
    : problems.notFound(rejected.detail);
}

export function createRedirector(options: RedirectorOptions): Redirector {
  const { geo, trustedProxies, statistics } = options;
  const logger = options.logger.child({ component: 'redirector' });

  const fail = (
    req: IncomingMessage,
    res: ServerResponse,
    error: Error,
    pathname: string,
  ): void => {
    writeError(res, error, { format: 'problem', instance: pathname });
    logger.debug({ url: req.url, status: res.statusCode }, 'redirect request rejected');
  };

  // GeoIP per address, memoised: the MMDB walk is the largest cost left on the hot path, and
  // clients repeat. Bounded by clearing, which is cheaper than LRU bookkeeping per request.
  let geoCache = new Map<string, GeoInfo>();
  const geoOf = (address: ParsedAddress): GeoInfo => {
    let info = geoCache.get(address.text);
    if (info === undefined) {
      if (geoCache.size >= GEO_CACHE_LIMIT) geoCache = new Map();
      info = geo.lookup(address);
      geoCache.set(address.text, info);
    }
    return info;
  };
  const infoOf = (address: ParsedAddress): ClientInfo => {
    const info = geoOf(address);
    return { address, country: info.country, asn: info.asn };
  };

  /**
   * The client of a request, cached per connection: the peer (parsed, checked against the
   * trusted proxies and looked up once per connection) and, behind a trusted proxy, the last
   * X-Forwarded-For value with its answer, so a keep-alive connection repeating the same
   * header parses nothing. Read-only: callers never change it.
   */
  // A WeakMap rather than a property on the socket: node's own socket objects keep their shape.
  const connections = new WeakMap<object, ClientState>();
  const connectionOf = (req: IncomingMessage): ClientState => {
    const socket = req.socket as IncomingMessage['socket'] | null;
    let state = socket ? connections.get(socket) : undefined;
    if (state === undefined) {
      const peer = parseAddress(socket?.remoteAddress ?? '') ?? UNSPECIFIED;
      state = {
        peer: infoOf(peer),
        trusted: trustedProxies.size > 0 && trustedProxies.contains(peer),
        header: undefined,
        forwarded: undefined,
        plan: undefined,
        planSelector: undefined,
        planPublication: 0,
        planClient: undefined,
      };
      // A socket without an address yet (tests' fakes) is not cached.
      if (socket && socket.remoteAddress !== undefined) connections.set(socket, state);
    }
    return state;
  };
  const clientOn = (state: ClientState, req: IncomingMessage): ClientInfo => {
    if (!state.trusted) return state.peer;
    const header = forwardedForHeader(req.rawHeaders);
    if (header === undefined) return state.peer;
    if (header !== state.header || state.forwarded === undefined) {
      const address = forwardedClient(state.peer.address, header, trustedProxies);
      state.forwarded = address === state.peer.address ? state.peer : infoOf(address);
      state.header = header;
    }
    return state.forwarded;
  };
  const cachedClientOf = (req: IncomingMessage): ClientInfo => clientOn(connectionOf(req), req);

  const clientOf = (req: IncomingMessage, countryOverride?: string): ClientInfo => {
    const client = cachedClientOf(req);
    return countryOverride === undefined
      ? client
      : { address: client.address, country: countryOverride, asn: client.asn };
  };

  /** The publication that introduced the blob at `pathname`, or the error to answer. */
  const publicationOf = (blobs: ReadonlyMap<string, number>, pathname: string): number | Error => {
    // Fast path: the index holds only valid digests, so a path of the right shape whose hex
    // is indexed (and whose directory is the hex's first two characters) needs no more checks.
    if (
      pathname.length === BLOB_PATH_LENGTH &&
      pathname.charCodeAt(BLOB_PREFIX.length + 2) === SLASH
    ) {
      const hex = pathname.slice(BLOB_PREFIX.length + 3);
      const publication = blobs.get(hex);
      if (
        publication !== undefined &&
        pathname.charCodeAt(BLOB_PREFIX.length) === hex.charCodeAt(0) &&
        pathname.charCodeAt(BLOB_PREFIX.length + 1) === hex.charCodeAt(1)
      ) {
        return publication;
      }
    }
    // Anything else gets the precise answer: 400 for a malformed path, 404 for the rest.
    const parsed = parseBlobPath(pathname.slice(PUB_PREFIX.length));
    if (!('hex' in parsed)) return blobPathError(parsed);
    const publication = blobs.get(parsed.hex);
    if (publication === undefined) {
      statistics.recordNotFound();
      return problems.notFound('blob is not published');
    }
    return publication;
  };

  const redirectBlob = (req: IncomingMessage, res: ServerResponse, pathname: string): void => {
    const selection = options.selection();
    const publication = publicationOf(selection.blobs, pathname);
    if (typeof publication !== 'number') {
      fail(req, res, publication, pathname);
      return;
    }
    const state = connectionOf(req);
    const client = clientOn(state, req);
    const selector = selection.selector;
    // Keep-alive clients repeat themselves: the tier and candidates are worked out once per
    // connection, client, publication and snapshot; each request only draws a mirror.
    let plan = state.plan;
    if (
      plan === undefined ||
      state.planSelector !== selector ||
      state.planPublication !== publication ||
      state.planClient !== client
    ) {
      plan = selector.plan(client, publication);
      state.plan = plan;
      state.planSelector = selector;
      state.planPublication = publication;
      state.planClient = client;
    }
    const choice = selector.draw(plan);
    statistics.record(choice.name, client.country, choice.tier);
    // A flat header list skips the object walk; a 302 without freshness headers is not cached.
    res.writeHead(302, [
      'Location',
      `${choice.baseUrl}/${pathname.slice(PUB_PREFIX.length)}`,
      'X-Flotilla-Mirror',
      choice.name,
      'Content-Length',
      '0',
    ]);
    res.end();
  };

  const mirrorlist = (req: IncomingMessage, res: ServerResponse, query: string): void => {
    const params = new URLSearchParams(query);
    const raw = params.get('path');
    if (raw === null || raw === '') {
      fail(req, res, problems.badRequest('the path parameter is required'), MIRRORLIST);
      return;
    }
    let relative = raw.replace(/^\/+/, '');
    if (relative.startsWith(PUB_PREFIX.slice(1))) relative = relative.slice(PUB_PREFIX.length - 1);
    if (/^sha256:[0-9a-f]{64}$/.test(relative))
      relative = `blobs/sha256/${relative.slice(7, 9)}/${relative.slice(7)}`;
    const parsed = parseBlobPath(relative);
    if (!('hex' in parsed)) {
      fail(req, res, blobPathError(parsed), MIRRORLIST);
      return;
    }
    const countryParam = params.get('country');
    let country: string | undefined;
    if (countryParam !== null && countryParam !== '') {
      country = countryParam.toUpperCase();
      if (!/^[A-Z]{2}$/.test(country) || !isKnownCountry(country)) {
        fail(
          req,
          res,
          problems.badRequest('country must be an ISO 3166-1 alpha-2 code'),
          MIRRORLIST,
        );
        return;
      }
    }
    const selection = options.selection();
    const publication = selection.blobs.get(parsed.hex);
    if (publication === undefined) {
      fail(req, res, problems.notFound('blob is not published'), MIRRORLIST);
      return;
    }
    const client = clientOf(req, country);
    const choices = selection.selector.list(client, publication);
    const accept = req.headers.accept ?? '';
    let body: string;
    let type: string;
    if (accept.includes('application/json')) {
      type = 'application/json; charset=utf-8';
      body = JSON.stringify({
        path: relative,
        publication,
        client: {
          address: client.address.text,
          family: client.address.family,
          country: client.country,
          asn: client.asn,
        },
        mirrors: choices.map((c) => ({
          name: c.name,
          url: `${c.baseUrl}/${relative}`,
          tier: c.tier,
        })),
      });
    } else {
      type = 'text/plain; charset=utf-8';
      const header =
        `# path=${relative} publication=${publication} client=${client.address.text}` +
        ` country=${client.country ?? '--'} asn=${client.asn ?? '--'}\n`;
      body = header + choices.map((c) => `${c.baseUrl}/${relative}\n`).join('');
    }
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
      Vary: 'Accept',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return {
    clientOf,
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const pathname = q === -1 ? url : url.slice(0, q);
      const isBlob = pathname.startsWith(PUB_PREFIX);
      if (!isBlob && pathname !== MIRRORLIST) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        fail(req, res, problems.methodNotAllowed(['GET', 'HEAD']), pathname);
        return true;
      }
      try {
        if (isBlob) {
          if (pathname.startsWith(BLOB_PREFIX)) redirectBlob(req, res, pathname);
          else fail(req, res, problems.notFound('not a blob path'), pathname);
        } else {
          mirrorlist(req, res, q === -1 ? '' : url.slice(q + 1));
        }
      } catch (error) {
        logger.error({ err: error, url }, 'failed to redirect');
        if (!res.headersSent) writeError(res, error, { format: 'problem', instance: pathname });
        else res.destroy();
      }
      return true;
    },
  };
}
