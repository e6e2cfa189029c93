import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createAddressSet,
  forwardedClient,
  forwardedForHeader,
  loadConfig,
  parseAddress,
  parseCidr,
  trustedProxies,
} from '../src/index.js';

const schema = z.object({ FLOTILLA_TRUSTED_PROXIES: trustedProxies().default([]) });
const trusted = (value: string) =>
  createAddressSet(
    loadConfig(schema, { FLOTILLA_TRUSTED_PROXIES: value }).FLOTILLA_TRUSTED_PROXIES,
  );
const address = (text: string) => {
  const parsed = parseAddress(text);
  if (!parsed) throw new Error(`test address ${text} does not parse`);
  return parsed;
};

describe('parseAddress', () => {
  it('reads dotted decimal IPv4 and IPv6, IPv4-mapped IPv6 as IPv4', () => {
    expect(parseAddress('192.0.2.1')).toEqual({
      family: 'ipv4',
      v4: 0xc0000201,
      text: '192.0.2.1',
    });
    expect(parseAddress('::ffff:192.0.2.1')).toEqual({
      family: 'ipv4',
      v4: 0xc0000201,
      text: '192.0.2.1',
    });
    expect(parseAddress('::ffff:c000:201')).toEqual({
      family: 'ipv4',
      v4: 0xc0000201,
      text: '192.0.2.1',
    });
    expect(parseAddress('2001:db8::1')).toMatchObject({
      family: 'ipv6',
      v6: [0x20010db8, 0, 0, 1],
    });
    expect(parseAddress('fe80::1%eth0')).toMatchObject({ family: 'ipv6', text: 'fe80::1' });
  });

  it('rejects octal, hex and shorthand IPv4 that other parsers read differently', () => {
    for (const text of [
      '010.0.0.1',
      '0x7f.0.0.1',
      '0177.0.0.1',
      '127.1',
      '2130706433',
      '10.0.0',
      '192.0.2.256',
      '1.2.3.4.5',
      '',
    ]) {
      expect(parseAddress(text), text).toBeUndefined();
    }
  });
});

describe('parseCidr', () => {
  it('clears host bits, takes bare addresses, maps IPv4-mapped blocks to IPv4', () => {
    expect(parseCidr('198.51.100.77/24')).toEqual({ family: 'ipv4', v4: 0xc6336400, prefix: 24 });
    expect(parseCidr('192.0.2.7')).toEqual({ family: 'ipv4', v4: 0xc0000207, prefix: 32 });
    expect(parseCidr('::ffff:10.0.0.0/104')).toEqual({ family: 'ipv4', v4: 0x0a000000, prefix: 8 });
    expect(parseCidr('2001:db8:1::/48')).toMatchObject({ family: 'ipv6', prefix: 48 });
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseCidr('010.0.0.0/8')).toBeUndefined();
    expect(parseCidr('10.0.0.0/08')).toBeUndefined();
    expect(parseCidr('::ffff:10.0.0.0/64')).toBeUndefined();
  });
});

describe('FLOTILLA_TRUSTED_PROXIES', () => {
  it('takes CIDRs and bare addresses of both families', () => {
    const set = trusted('10.0.0.0/8, 192.0.2.7 ,2001:db8::/32, ::1');
    expect(set.contains(address('10.9.8.7'))).toBe(true);
    expect(set.contains(address('::ffff:10.9.8.7'))).toBe(true);
    expect(set.contains(address('192.0.2.7'))).toBe(true);
    expect(set.contains(address('192.0.2.8'))).toBe(false);
    expect(set.contains(address('2001:db8:ffff::1'))).toBe(true);
    expect(set.contains(address('::2'))).toBe(false);
  });

  it.each(['010.0.0.1', '0x7f.0.0.1', '10.1/16', 'nonsense'])(
    'refuses %s with an error naming the variable',
    (entry) => {
      expect(() => trusted(`192.0.2.0/24,${entry}`)).toThrow(/FLOTILLA_TRUSTED_PROXIES.*item 2/);
    },
  );
});

describe('forwardedClient', () => {
  const proxies = trusted('10.0.0.0/8, 2001:db8:ffff::/48');
  const peer = address('10.0.0.1');

  it('walks X-Forwarded-For from the right to the first untrusted hop', () => {
    expect(forwardedClient(peer, '203.0.113.9, 10.1.1.1', proxies).text).toBe('203.0.113.9');
    expect(forwardedClient(peer, '198.51.100.1, 203.0.113.9, 10.1.1.1', proxies).text).toBe(
      '203.0.113.9',
    );
    expect(forwardedClient(peer, '[2001:db8::5]:443, 2001:db8:ffff::1', proxies).text).toBe(
      '2001:db8::5',
    );
    expect(forwardedClient(peer, '203.0.113.9:5555', proxies).text).toBe('203.0.113.9');
    expect(forwardedClient(peer, '::ffff:203.0.113.9', proxies).text).toBe('203.0.113.9');
  });

  it('stops at a garbage entry: nothing left of it is believed', () => {
    expect(forwardedClient(peer, '203.0.113.9, garbage, 10.1.1.1', proxies).text).toBe('10.1.1.1');
    expect(forwardedClient(peer, '203.0.113.9, 010.1.1.1', proxies).text).toBe('10.0.0.1');
    expect(forwardedClient(peer, '203.0.113.9, 0x0a.1.1.1', proxies).text).toBe('10.0.0.1');
    expect(forwardedClient(peer, '', proxies).text).toBe('10.0.0.1');
  });

  it('joins repeated X-Forwarded-For headers in order', () => {
    expect(
      forwardedForHeader(['Host', 'x', 'X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2']),
    ).toBe('1.1.1.1,2.2.2.2');
    expect(forwardedForHeader(['Host', 'x'])).toBeUndefined();
  });
});
