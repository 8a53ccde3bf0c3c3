import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS_MS, ReadStats } from '../../src/io/stats.js';
import type { StorageRequestEvent } from '../../src/storage/types.js';

function event(overrides: Partial<StorageRequestEvent> = {}): StorageRequestEvent {
  return { kind: 'read', key: 'a.svs', bytes: 100, ms: 3, outcome: 'ok', attempt: 1, ...overrides };
}

describe('ReadStats', () => {
  it('totals requests, errors, retries and bytes per kind', () => {
    const stats = new ReadStats();
    stats.onRequest(event({ bytes: 1000 }));
    stats.onRequest(event({ bytes: 0, outcome: 'storage_error' }));
    stats.onRequest(event({ bytes: 500, attempt: 2 }));
    stats.onRequest(event({ kind: 'stat', bytes: 0 }));
    stats.onRequest(event({ kind: 'list', bytes: 2000, attempt: 3, outcome: 'storage_timeout' }));
    const snap = stats.snapshot();
    expect(snap.read).toMatchObject({ requests: 3, errors: 1, retries: 1, bytes: 1500 });
    expect(snap.stat).toMatchObject({ requests: 1, errors: 0, retries: 0, bytes: 0 });
    expect(snap.list).toMatchObject({ requests: 1, errors: 1, retries: 1, bytes: 2000 });
  });

  it('keeps a cumulative latency histogram with inclusive upper bounds', () => {
    const stats = new ReadStats();
    for (const ms of [0.2, 1, 1.5, 7, 5000, 5001, 60_000]) stats.onRequest(event({ ms }));
    const { latency } = stats.snapshot().read;
    expect(latency.boundsMs).toEqual(LATENCY_BUCKETS_MS);
    expect(latency.cumulative).toHaveLength(LATENCY_BUCKETS_MS.length + 1);
    const le = (bound: number) => latency.cumulative[LATENCY_BUCKETS_MS.indexOf(bound)];
    expect(le(1)).toBe(2); // 0.2 and exactly 1
    expect(le(2)).toBe(3);
    expect(le(5)).toBe(3);
    expect(le(10)).toBe(4);
    expect(le(2500)).toBe(4);
    expect(le(5000)).toBe(5);
    expect(latency.cumulative.at(-1)).toBe(7); // +Inf
    expect(latency.count).toBe(7);
    expect(latency.sumMs).toBeCloseTo(0.2 + 1 + 1.5 + 7 + 5000 + 5001 + 60_000);
    for (let i = 1; i < latency.cumulative.length; i++) {
      expect(latency.cumulative[i]).toBeGreaterThanOrEqual(latency.cumulative[i - 1]);
    }
  });

  it('counts per key and forgets the least recently seen keys beyond maxKeys', () => {
    const stats = new ReadStats({ maxKeys: 2 });
    stats.onRequest(event({ key: 'a', bytes: 10, ms: 4 }));
    stats.onRequest(event({ key: 'a', kind: 'stat', bytes: 0, ms: 1, outcome: 'not_found' }));
    stats.onRequest(event({ key: 'b' }));
    stats.onRequest(event({ key: 'a', attempt: 2, bytes: 5 }));
    stats.onRequest(event({ key: 'c' })); // b is the least recently seen
    expect(stats.forKey('a')).toEqual({
      key: 'a',
      requests: 3,
      reads: 2,
      errors: 1,
      retries: 1,
      bytes: 15,
      ms: 8,
    });
    expect(stats.forKey('b')).toBeUndefined();
    expect(stats.forKey('c')?.requests).toBe(1);
    expect(stats.snapshot().keysTracked).toBe(2);
    // Totals do not forget.
    expect(stats.snapshot().read.requests).toBe(4);
  });

  it('maxKeys 0 keeps totals only', () => {
    const stats = new ReadStats({ maxKeys: 0 });
    stats.onRequest(event());
    expect(stats.forKey('a.svs')).toBeUndefined();
    expect(stats.snapshot().read.requests).toBe(1);
  });

  it('a scope counts only its own events and forwards them to its parent', () => {
    const parent = new ReadStats();
    parent.onRequest(event({ key: 'other' }));
    const scope = parent.scope();
    scope.onRequest(event({ bytes: 7 }));
    scope.onRequest(event({ kind: 'stat', bytes: 0 }));
    const nested = scope.scope();
    nested.onRequest(event({ bytes: 1 }));
    expect(nested.snapshot().read.requests).toBe(1);
    expect(scope.snapshot().read).toMatchObject({ requests: 2, bytes: 8 });
    expect(scope.snapshot().stat.requests).toBe(1);
    expect(scope.forKey('other')).toBeUndefined();
    expect(parent.snapshot().read).toMatchObject({ requests: 3, bytes: 108 });
    expect(parent.forKey('a.svs')?.requests).toBe(3);
  });

  it('reset zeroes this object only', () => {
    const parent = new ReadStats();
    const scope = parent.scope();
    scope.onRequest(event());
    scope.reset();
    expect(scope.snapshot().read.requests).toBe(0);
    expect(scope.snapshot().read.latency.count).toBe(0);
    expect(scope.forKey('a.svs')).toBeUndefined();
    expect(parent.snapshot().read.requests).toBe(1);
  });

  it('snapshots are copies that later events do not change', () => {
    const stats = new ReadStats();
    stats.onRequest(event());
    const before = stats.snapshot();
    stats.onRequest(event());
    expect(before.read.requests).toBe(1);
    expect(before.read.latency.cumulative.at(-1)).toBe(1);
  });
});
