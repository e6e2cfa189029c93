import ipaddr from 'ipaddr.js';

/**
 * Client addresses and CIDR blocks in the numeric form the prefix lookup wants: an IPv4
 * address is one unsigned 32-bit number, an IPv6 address four. IPv4-mapped IPv6 addresses
 * (`::ffff:192.0.2.1`, what a dual-stack socket reports) count as IPv4.
 */
export type AddressFamily = 'ipv4' | 'ipv6';

export type ParsedAddress =
  | { readonly family: 'ipv4'; readonly v4: number; readonly text: string }
  | { readonly family: 'ipv6'; readonly v6: readonly [number, number, number, number]; readonly text: string };

export type ParsedCidr =
  | { readonly family: 'ipv4'; readonly v4: number; readonly prefix: number }
  | { readonly family: 'ipv6'; readonly v6: readonly [number, number, number, number]; readonly prefix: number };

/** Dotted quad without leading zeros games; `undefined` when not one. */
function parseDottedQuad(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      digits += 1;
      if (digits > 3 || octet > 255) return undefined;
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots += 1;
    } else {
      return undefined;
    }
  }
  if (digits === 0 || dots !== 3) return undefined;
  return value * 256 + octet;
}

function wordsOf(address: ipaddr.IPv6): [number, number, number, number] {
  const p = address.parts;
  return [
    ((p[0]! << 16) | p[1]!) >>> 0,
    ((p[2]! << 16) | p[3]!) >>> 0,
    ((p[4]! << 16) | p[5]!) >>> 0,
    ((p[6]! << 16) | p[7]!) >>> 0,
  ];
}

/** Parses a textual IPv4 or IPv6 address (zone ids are dropped); `undefined` when invalid. */
export function parseAddress(text: string): ParsedAddress | undefined {
  const v4 = parseDottedQuad(text);
  if (v4 !== undefined) return { family: 'ipv4', v4, text };
  if (!text.includes(':')) return undefined;
  const zone = text.indexOf('%');
  const bare = zone === -1 ? text : text.slice(0, zone);
  if (!ipaddr.IPv6.isValid(bare)) return undefined;
  const v6 = ipaddr.IPv6.parse(bare);
  if (v6.isIPv4MappedAddress()) {
    const mapped = v6.toIPv4Address().toString();
    return { family: 'ipv4', v4: parseDottedQuad(mapped)!, text: mapped };
  }
  return { family: 'ipv6', v6: wordsOf(v6), text: v6.toString() };
}

/** Parses `a.b.c.d/n` or `x::/n`; host bits are cleared. `undefined` when invalid. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) return undefined;
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const address = parseAddress(text.slice(0, slash));
  if (!address || text.slice(0, slash).includes('%')) return undefined;
  if (address.family === 'ipv4') {
    if (prefix > 32) return undefined;
    return { family: 'ipv4', v4: maskV4(address.v4, prefix), prefix };
  }
  if (prefix > 128) return undefined;
  return { family: 'ipv6', v6: maskV6(address.v6, prefix), prefix };
}

export function maskV4(value: number, prefix: number): number {
  if (prefix === 0) return 0;
  return (value & (0xffffffff << (32 - prefix))) >>> 0;
}

export function maskV6(words: readonly number[], prefix: number): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i += 1) {
    const bits = Math.min(32, Math.max(0, prefix - i * 32));
    out[i] = maskV4(words[i]!, bits);
  }
  return out;
}

/** A parsed address list of trusted proxies: `contains(address)`. */
export interface AddressSet {
  contains(address: ParsedAddress): boolean;
  readonly size: number;
}

export function createAddressSet(cidrs: readonly ParsedCidr[]): AddressSet {
  return {
    size: cidrs.length,
    contains(address) {
      for (const cidr of cidrs) {
        if (cidr.family !== address.family) continue;
        if (cidr.family === 'ipv4' && address.family === 'ipv4') {
          if (maskV4(address.v4, cidr.prefix) === cidr.v4) return true;
        } else if (cidr.family === 'ipv6' && address.family === 'ipv6') {
          const masked = maskV6(address.v6, cidr.prefix);
          if (masked.every((word, i) => word === cidr.v6[i])) return true;
        }
      }
      return false;
    },
  };
}
