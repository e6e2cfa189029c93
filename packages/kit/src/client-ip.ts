import {
  createAddressSet,
  forwardedClient,
  parseAddress,
  type ParsedCidr,
} from './client-address.js';

/**
 * Resolves the client address of a request with kit's one parser and X-Forwarded-For walk:
 * the header is believed only when the direct peer is a trusted proxy.
 */
export function createClientIpResolver(trusted: readonly ParsedCidr[]) {
  const proxies = createAddressSet(trusted);
  const trustCache = new Map<string, boolean>();

  function peerTrusted(peer: string): boolean {
    if (proxies.size === 0) return false;
    let known = trustCache.get(peer);
    if (known === undefined) {
      const address = parseAddress(peer);
      known = address !== undefined && proxies.contains(address);
      if (trustCache.size > 10_000) trustCache.clear();
      trustCache.set(peer, known);
    }
    return known;
  }

  return {
    peerTrusted,
    resolve(peer: string, forwardedFor: string | string[] | undefined): string {
      if (forwardedFor === undefined || !peerTrusted(peer)) return peer;
      const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
      const address = parseAddress(peer);
      return address === undefined ? peer : forwardedClient(address, header, proxies).text;
    },
  };
}

export type ClientIpResolver = ReturnType<typeof createClientIpResolver>;

/**
 * The rate-limit key for a client address: the address itself for IPv4, its /64 for IPv6 (one
 * subscriber usually holds a whole /64 and can rotate through it at will).
 */
export function rateLimitKey(address: string): string {
  const parsed = parseAddress(address);
  if (parsed === undefined) return address;
  if (parsed.family === 'ipv4') return parsed.text;
  const [a, b] = parsed.v6;
  const groups = [a >>> 16, a & 0xffff, b >>> 16, b & 0xffff].map((group) => group.toString(16));
  return `${groups.join(':')}::/64`;
}
