import { describe, expect, it } from 'vitest';
import { ByteLru } from '../../src/io/lru.js';

function lru(maxBytes: number, evicted: string[] = []) {
  return new ByteLru<string, Uint8Array>({
    maxBytes,
    sizeOf: (v) => v.byteLength,
    onEvict: (key) => evicted.push(key),
  });
}

describe('ByteLru', () => {
  it('evicts the least recently used entry first, where get() refreshes recency', () => {
    const evicted: string[] = [];
    const cache = lru(30, evicted);
    cache.set('a', new Uint8Array(10));
    cache.set('b', new Uint8Array(10));
    cache.set('c', new Uint8Array(10));
    expect(cache.get('a')).toBeDefined(); // a becomes most recent: order b, c, a
    cache.set('d', new Uint8Array(10));
    expect(evicted).toEqual(['b']);
    expect([...cache.keys()]).toEqual(['c', 'a', 'd']);
    cache.set('e', new Uint8Array(20));
    expect(evicted).toEqual(['b', 'c', 'a']);
    expect([...cache.keys()]).toEqual(['d', 'e']);
    expect(cache.evictions).toBe(3);
  });

  it('never holds more than maxBytes, whatever the mix of sizes', () => {
    const cache = lru(1000);
    for (let i = 0; i < 500; i++) {
      cache.set(`k${i}`, new Uint8Array((i * 37) % 400));
      expect(cache.bytes).toBeLessThanOrEqual(1000);
    }
    let sum = 0;
    for (const key of cache.keys()) sum += cache.peek(key)!.byteLength;
    expect(sum).toBe(cache.bytes);
  });

  it('does not store an entry larger than maxBytes, and drops the value it would replace', () => {
    const cache = lru(100);
    cache.set('x', new Uint8Array(50));
    cache.set('keep', new Uint8Array(10));
    expect(cache.set('x', new Uint8Array(101))).toBe(false);
    expect(cache.has('x')).toBe(false);
    expect(cache.has('keep')).toBe(true);
    expect(cache.bytes).toBe(10);
    expect(cache.evictions).toBe(0);
  });

  it('replacing a key updates the byte count instead of adding to it', () => {
    const cache = lru(100);
    cache.set('x', new Uint8Array(60));
    cache.set('x', new Uint8Array(30));
    expect(cache.bytes).toBe(30);
    expect(cache.size).toBe(1);
  });

  it('maxBytes 0 disables the cache', () => {
    const cache = lru(0);
    expect(cache.set('x', new Uint8Array(0))).toBe(false);
    expect(cache.set('y', new Uint8Array(1))).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.get('x')).toBeUndefined();
  });

  it('counts hits and misses on get, not on peek or has', () => {
    const cache = lru(100);
    cache.set('a', new Uint8Array(1));
    cache.get('a');
    cache.get('a');
    cache.get('zz');
    cache.peek('a');
    cache.has('a');
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, entries: 1, bytes: 1, maxBytes: 100 });
  });

  it('peek does not refresh recency', () => {
    const evicted: string[] = [];
    const cache = lru(2, evicted);
    cache.set('a', new Uint8Array(1));
    cache.set('b', new Uint8Array(1));
    cache.peek('a');
    cache.set('c', new Uint8Array(1));
    expect(evicted).toEqual(['a']);
  });

  it('delete and clear release bytes without counting evictions', () => {
    const cache = lru(100);
    cache.set('a', new Uint8Array(10));
    cache.set('b', new Uint8Array(20));
    expect(cache.delete('a')).toBe(true);
    expect(cache.delete('a')).toBe(false);
    expect(cache.bytes).toBe(20);
    cache.clear();
    expect(cache.bytes).toBe(0);
    expect(cache.size).toBe(0);
    expect(cache.evictions).toBe(0);
  });

  it('rejects a negative bound and a bad size', () => {
    expect(() => lru(-1)).toThrow(RangeError);
    const bad = new ByteLru<string, number>({ maxBytes: 10, sizeOf: () => Number.NaN });
    expect(() => bad.set('a', 1)).toThrow(RangeError);
  });

  it('agrees with a simple reference model over a long random sequence of operations', () => {
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const cache = lru(100);
    const model: [string, number][] = []; // least recently used first
    for (let step = 0; step < 5000; step++) {
      const key = `k${random(30)}`;
      const op = random(4);
      const at = model.findIndex(([k]) => k === key);
      if (op === 0) {
        const size = random(40);
        cache.set(key, new Uint8Array(size));
        if (at >= 0) model.splice(at, 1);
        model.push([key, size]);
        while (model.reduce((sum, [, s]) => sum + s, 0) > 100) model.shift();
      } else if (op === 1) {
        expect(cache.get(key)?.byteLength).toBe(at >= 0 ? model[at][1] : undefined);
        if (at >= 0) model.push(...model.splice(at, 1));
      } else if (op === 2) {
        expect(cache.delete(key)).toBe(at >= 0);
        if (at >= 0) model.splice(at, 1);
      } else {
        expect(cache.has(key)).toBe(at >= 0);
      }
      expect([...cache.keys()]).toEqual(model.map(([k]) => k));
      expect(cache.bytes).toBe(model.reduce((sum, [, s]) => sum + s, 0));
    }
  });
});
