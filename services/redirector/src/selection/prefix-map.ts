import { maskV4, maskV6, type ParsedAddress, type ParsedCidr } from '@flotilla/kit';

/**
 * Longest-prefix lookup for netblocks: per family, one hash map per prefix length present,
 * probed from the longest length down. With the few distinct lengths real netblock lists
 * use, a lookup is a handful of mask-and-get operations, independent of how many blocks
 * there are (20,000 blocks cost the same as 20).
 */
export class PrefixMap<T> {
  private readonly v4 = new Map<number, Map<number, T>>();
  private readonly v6 = new Map<number, Map<string, T>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];

  /** Returns the value stored for exactly this block, creating it with `create` when absent. */
  upsert(cidr: ParsedCidr, create: () => T): T {
    if (cidr.family === 'ipv4') {
      let byKey = this.v4.get(cidr.prefix);
      if (!byKey) {
        byKey = new Map();
        this.v4.set(cidr.prefix, byKey);
        this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
      }
      let value = byKey.get(cidr.v4);
      if (value === undefined) {
        value = create();
        byKey.set(cidr.v4, value);
      }
      return value;
    }
    let byKey = this.v6.get(cidr.prefix);
    if (!byKey) {
      byKey = new Map();
      this.v6.set(cidr.prefix, byKey);
      this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
    }
    const key = cidr.v6.join(':');
    let value = byKey.get(key);
    if (value === undefined) {
      value = create();
      byKey.set(key, value);
    }
    return value;
  }

  /** Every value whose block contains `address`, most specific first. */
  *matches(address: ParsedAddress): Generator<T> {
    if (address.family === 'ipv4') {
      for (const length of this.v4Lengths) {
        const value = this.v4.get(length)!.get(maskV4(address.v4, length));
        if (value !== undefined) yield value;
      }
      return;
    }
    for (const length of this.v6Lengths) {
      const value = this.v6.get(length)!.get(maskV6(address.v6, length).join(':'));
      if (value !== undefined) yield value;
    }
  }

  /** The first value, most specific first, for which `accept` returns something defined. */
  firstMatch<R>(address: ParsedAddress, accept: (value: T) => R | undefined): R | undefined {
    if (address.family === 'ipv4') {
      for (const length of this.v4Lengths) {
        const value = this.v4.get(length)!.get(maskV4(address.v4, length));
        if (value !== undefined) {
          const result = accept(value);
          if (result !== undefined) return result;
        }
      }
      return undefined;
    }
    for (const length of this.v6Lengths) {
      const value = this.v6.get(length)!.get(maskV6(address.v6, length).join(':'));
      if (value !== undefined) {
        const result = accept(value);
        if (result !== undefined) return result;
      }
    }
    return undefined;
  }
}
