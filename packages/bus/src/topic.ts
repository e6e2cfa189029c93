/**
 * AMQP topic-exchange matching: a routing key and a binding pattern are split into words on
 * '.'; `*` matches exactly one word and `#` matches zero or more words.
 */
export function topicMatches(pattern: string, routingKey: string): boolean {
  return matchWords(pattern.split('.'), 0, routingKey.split('.'), 0);
}

function matchWords(pattern: string[], p: number, key: string[], k: number): boolean {
  // Iterative over plain words, recursive only at `#` (bounded by pattern and key lengths).
  while (p < pattern.length) {
    const word = pattern[p];
    if (word === '#') {
      // Collapse consecutive `#`s: they match the same thing as one.
      while (pattern[p + 1] === '#') p += 1;
      if (p === pattern.length - 1) return true;
      for (let skip = k; skip <= key.length; skip += 1) {
        if (matchWords(pattern, p + 1, key, skip)) return true;
      }
      return false;
    }
    if (k >= key.length) return false;
    if (word !== '*' && word !== key[k]) return false;
    p += 1;
    k += 1;
  }
  return k === key.length;
}
