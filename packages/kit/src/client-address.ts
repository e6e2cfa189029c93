import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { csv } from './config.js';

/**
 * Client addresses and trusted proxies, parsed once and strictly, for every service that
 * faces clients. IPv4 is dotted decimal only: `010.0.0.1` (octal to some parsers) and
 * `0x7f.0.0.1` (hex) are rejected rather than read one way here and another there. IPv4-mapped
 * IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) counts as IPv4. Addresses are
 * numeric so prefix lookups need no further parsing: IPv4 as one unsigned 32-bit number, IPv6
 * as four.
 */
export type AddressFamily = 'ipv4' | 'ipv6';

export type ParsedAddress =
  | { readonly family: 'ipv4'; readonly v4: number; readonly text: string }
  | {
      readonly family: 'ipv6';
      readonly v6: readonly [number, number, number, number];
      readonly text: string;
    };

export type ParsedCidr =
  | { readonly family: 'ipv4'; readonly v4: number; readonly prefix: number }
  | {
      readonly family: 'ipv6';
      readonly v6: readonly [number, number, number, number];
      readonly prefix: number;
    };

function v4Of(address: ipaddr.IPv4, text: string): ParsedAddress {
  const [a, b, c, d] = address.octets as [number, number, number, number];
  return { family: 'ipv4', v4: ((a << 24) | (b << 16) | (c << 8) | d) >>> 0, text };
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

/** A textual IPv4 (dotted decimal) or IPv6 address (a zone id is dropped); `undefined` when not one. */
export function parseAddress(text: string): ParsedAddress | undefined {
  if (!text.includes(':')) {
    // Four decimal parts without leading zeros: ipaddr.parse alone would take octal and hex.
    if (!ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
    return v4Of(ipaddr.IPv4.parse(text), text);
  }
  const zone = text.indexOf('%');
  const bare = zone === -1 ? text : text.slice(0, zone);
  if (!ipaddr.IPv6.isValid(bare)) return undefined;
  const v6 = ipaddr.IPv6.parse(bare);
  if (v6.isIPv4MappedAddress()) {
    const v4 = v6.toIPv4Address();
    return v4Of(v4, v4.toString());
  }
  return { family: 'ipv6', v6: wordsOf(v6), text: v6.toString() };
}

/**
 * `a.b.c.d/n` or `x::/n`, host bits cleared; a bare address means /32 or /128. An IPv4-mapped
 * IPv6 block (`::ffff:10.0.0.0/104`) is the IPv4 block it maps. `undefined` when invalid.
 */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  if (addressText.includes('%')) return undefined;
  const address = parseAddress(addressText);
  if (!address) return undefined;
  const mapped = address.family === 'ipv4' && addressText.includes(':');
  let prefix: number;
  if (slash === -1) {
    prefix = address.family === 'ipv4' ? 32 : 128;
  } else {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (mapped) {
      if (prefix < 96) return undefined;
      prefix -= 96;
    }
  }
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

/** A set of CIDR blocks (the trusted proxies): `contains(address)`. */
export interface AddressSet {
  contains(address: ParsedAddress): boolean;
  readonly size: number;
}

export function createAddressSet(cidrs: readonly ParsedCidr[]): AddressSet {
  return {
    size: cidrs.length,
    contains(address) {
      for (const cidr of cidrs) {
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

/**
 * The config field for `FLOTILLA_TRUSTED_PROXIES`: comma-separated CIDRs or bare addresses.
 * An entry the strict parser rejects (octal, hex, shorthand IPv4) is a config error naming
 * the variable and the entry.
 */
export function trustedProxies() {
  return csv(
    z.string().transform((raw, ctx): ParsedCidr => {
      const cidr = parseCidr(raw);
      if (!cidr) {
        ctx.addIssue({
          code: 'custom',
          message: 'is not an IPv4 (dotted decimal) or IPv6 address or CIDR',
        });
        return z.NEVER;
      }
      return cidr;
    }),
  );
}

/** One X-Forwarded-For hop: an address, or `[v6]:port` / `v4:port` as some proxies write. */
export function parseForwardedHop(entry: string): ParsedAddress | undefined {
  const direct = parseAddress(entry);
  if (direct) return direct;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(entry);
  if (bracketed) return parseAddress(bracketed[1]!);
  const v4WithPort = /^([\d.]+):\d{1,5}$/.exec(entry);
  if (v4WithPort) return parseAddress(v4WithPort[1]!);
  return undefined;
}

/**
 * The client behind a trusted `peer`: X-Forwarded-For walked from the right, the first hop
 * that is not itself a trusted proxy. A garbage entry ends the walk at the last trusted hop:
 * nothing left of it can be believed. Call only when the peer is trusted.
 */
export function forwardedClient(
  peer: ParsedAddress,
  header: string,
  trusted: AddressSet,
): ParsedAddress {
  const entries = header.split(',');
  let client = peer;
  for (let i = entries.length - 1; i >= 0; i -= 1) {
    const hop = parseForwardedHop(entries[i]!.trim());
    if (!hop) break;
    client = hop;
    if (!trusted.contains(hop)) break;
  }
  return client;
}

/**
 * The X-Forwarded-For value (several headers joined with `,`) from the raw header list:
 * reading `req.headers` would build the whole header object for one field.
 */
export function forwardedForHeader(raw: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 15 && name.toLowerCase() === 'x-forwarded-for') {
      value = value === undefined ? raw[i + 1]! : `${value},${raw[i + 1]!}`;
    }
  }
  return value;
}
