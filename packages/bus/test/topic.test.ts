import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topicMatches } from '../src/index.js';

/**
 * An independent oracle: dynamic programming over (pattern words, key words), the textbook
 * formulation of AMQP topic matching.
 */
function oracle(pattern: string, key: string): boolean {
  const p = pattern.split('.');
  const k = key.split('.');
  // can[i][j]: pattern words from i match key words from j.
  const can: boolean[][] = Array.from({ length: p.length + 1 }, () =>
    new Array<boolean>(k.length + 1).fill(false),
  );
  (can[p.length] as boolean[])[k.length] = true;
  for (let i = p.length - 1; i >= 0; i -= 1) {
    for (let j = k.length; j >= 0; j -= 1) {
      const word = p[i];
      const row = can[i] as boolean[];
      const next = can[i + 1] as boolean[];
      if (word === '#') row[j] = (next[j] as boolean) || (j < k.length && (row[j + 1] as boolean));
      else row[j] = j < k.length && (word === '*' || word === k[j]) && (next[j + 1] as boolean);
    }
  }
  return (can[0] as boolean[])[0] as boolean;
}

const patternWord = fc.constantFrom('a', 'b', '*', '#');
const keyWord = fc.constantFrom('a', 'b', 'c');

describe('topicMatches against a DP oracle', () => {
  it('agrees on random patterns and keys', () => {
    fc.assert(
      fc.property(
        fc.array(patternWord, { minLength: 1, maxLength: 7 }),
        fc.array(keyWord, { minLength: 1, maxLength: 7 }),
        (patternWords, keyWords) => {
          const pattern = patternWords.join('.');
          const key = keyWords.join('.');
          expect(topicMatches(pattern, key)).toBe(oracle(pattern, key));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a pattern without wildcards matches only itself', () => {
    fc.assert(
      fc.property(
        fc.array(keyWord, { minLength: 1, maxLength: 5 }),
        fc.array(keyWord, { minLength: 1, maxLength: 5 }),
        (a, b) => {
          expect(topicMatches(a.join('.'), b.join('.'))).toBe(a.join('.') === b.join('.'));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
