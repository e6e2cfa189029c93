import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses `FLOTILLA_TRUSTED_PROXIES` entries: CIDRs or single addresses, IPv4 or IPv6. */
export function parseTrustedProxies(entries: readonly string[]): Range[] {
  return entries.map((entry) => {
    if (entry.includes('/')) {
      const [addr, bits] = ipaddr.parseCIDR(entry);
      return [
        normalize(addr),
        addr.kind() === 'ipv6' && normalize(addr).kind() === 'ipv4' ? bits - 96 : bits,
      ];
    }
    const addr = normalize(ipaddr.parse(entry));
    return [addr, addr.kind() === 'ipv4' ? 32 : 128];
  });
}

function normalize(addr: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
    ? (addr as ipaddr.IPv6).toIPv4Address()
    : addr;
}

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  let value = text.trim();
  // "[2001:db8::1]:443" and "192.0.2.1:443" forms some proxies write
  if (value.startsWith('['))
    value = value.slice(1, value.indexOf(']') === -1 ? undefined : value.indexOf(']'));
  else if (value.indexOf(':') !== -1 && value.indexOf(':') === value.lastIndexOf(':'))
    value = value.slice(0, value.indexOf(':'));
  if (!ipaddr.isValid(value)) return null;
  return normalize(ipaddr.parse(value));
}

/**
 * Resolves the client address of a request. `X-Forwarded-For` is believed only when the
 * direct peer is a trusted proxy; then the list is walked from the right and the first
 * address that is not itself a trusted proxy is the client (the left-most entries are
 * whatever the client chose to send). Anything unparsable stops the walk at the last trusted
 * hop.
 */
export function createClientIpResolver(trusted: readonly Range[]) {
  const trustCache = new Map<string, boolean>();
  const isTrusted = (addr: ipaddr.IPv4 | ipaddr.IPv6): boolean =>
    trusted.some(
      ([range, bits]) => range.kind() === addr.kind() && addr.match(range as never, bits),
    );

  function peerTrusted(peer: string): boolean {
    if (trusted.length === 0) return false;
    let known = trustCache.get(peer);
    if (known === undefined) {
      const addr = parseAddress(peer);
      known = addr !== null && isTrusted(addr);
      if (trustCache.size > 10_000) trustCache.clear();
      trustCache.set(peer, known);
    }
    return known;
  }

  return {
    peerTrusted,
    resolve(peer: string, forwardedFor: string | string[] | undefined): string {
      if (forwardedFor === undefined || !peerTrusted(peer)) return peer;
      const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
      let client = peer;
      for (let i = hops.length - 1; i >= 0; i--) {
        const addr = parseAddress(hops[i]!);
        if (addr === null) break;
        client = addr.toString();
        if (!isTrusted(addr)) break;
      }
      return client;
    },
  };
}

export type ClientIpResolver = ReturnType<typeof createClientIpResolver>;

/**
 * The rate-limit key for a client address: the address itself for IPv4, its /64 for IPv6 (one
 * subscriber usually holds a whole /64 and can rotate through it at will).
 */
export function rateLimitKey(address: string): string {
  if (!address.includes(':')) return address;
  const addr = parseAddress(address);
  if (addr === null) return address;
  if (addr.kind() === 'ipv4') return addr.toString();
  const parts = (addr as ipaddr.IPv6).parts;
  return `${parts
    .slice(0, 4)
    .map((p) => p.toString(16))
    .join(':')}::/64`;
}
