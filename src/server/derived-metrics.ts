// Prometheus text for derived frames (dicomweb/derived.ts, progressive loading): lookups answered
// per cache layer (memory, shared Redis, disk, the bucket's derived prefix) and missed, encodes and
// their seconds per representation, frames that failed to decode or encode, requests that joined
// an encode in flight, and the caches' sizes. Written by /metrics (metrics.ts) at scrape time.

import { DECODE_BUCKETS_MS } from '../codecs/decode-stats.js';
import { DERIVED_CACHE_LAYERS } from '../dicomweb/derived-cache.js';
import { DERIVED_KINDS, type DerivedFrames, type DerivedKindStats } from '../dicomweb/derived.js';

/** What metrics.ts's Prometheus text writer offers. */
export interface MetricsWriter {
  family(name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string): void;
  sample(name: string, labels: Record<string, string>, value: number): void;
  buckets(
    name: string,
    labels: Record<string, string>,
    bounds: readonly number[],
    cumulative: readonly number[],
    count: number,
    sum: number,
    scale: number,
  ): void;
  counter(name: string, help: string, value: number): void;
  gauge(name: string, help: string, value: number): void;
}

const ZERO: DerivedKindStats = {
  encodes: 0,
  encodeCount: 0,
  encodeSumMs: 0,
  encodeCumulative: DECODE_BUCKETS_MS.map(() => 0),
  failures: { decode: 0, encode: 0 },
};

export function renderDerivedMetrics(out: MetricsWriter, derived: DerivedFrames): void {
  const { kinds, joined, cache } = derived.stats();
  out.family(
    'medstream_derived_cache_hits_total',
    'counter',
    'Derived-frame lookups answered, per cache layer (the nearest that had the frame)',
  );
  for (const layer of DERIVED_CACHE_LAYERS)
    out.sample('medstream_derived_cache_hits_total', { layer }, cache.hits[layer]);
  out.counter(
    'medstream_derived_cache_misses_total',
    'Derived-frame lookups no cache layer answered (an encode follows or is joined)',
    cache.misses,
  );
  out.counter(
    'medstream_derived_store_writes_total',
    'Derived frames written to the storage under --derived-store',
    cache.storeWrites,
  );
  out.gauge('medstream_derived_memory_bytes', 'Bytes of derived frames held in memory', cache.memoryBytes);
  out.gauge('medstream_derived_disk_bytes', 'Bytes of derived frames in the disk cache', cache.diskBytes);
  out.gauge('medstream_derived_disk_max_bytes', 'Bound of the derived-frame disk cache', cache.diskMaxBytes);
  out.gauge('medstream_derived_disk_files', 'Derived frames in the disk cache', cache.diskFiles);
  out.counter(
    'medstream_derived_joined_total',
    'Derived-frame requests that joined an encode already in flight',
    joined,
  );
  // Every representation, zero until asked for, so each series exists from the first scrape.
  const entries = DERIVED_KINDS.map((kind): [string, DerivedKindStats] => [kind, kinds[kind] ?? ZERO]);
  out.family(
    'medstream_derived_encodes_total',
    'counter',
    'Derived-frame encodes started, per representation',
  );
  for (const [kind, k] of entries) out.sample('medstream_derived_encodes_total', { kind }, k.encodes);
  const name = 'medstream_derived_encode_duration_seconds';
  out.family(
    name,
    'histogram',
    'Seconds per successful derived-frame encode (pool wait included), per representation',
  );
  for (const [kind, k] of entries)
    out.buckets(name, { kind }, DECODE_BUCKETS_MS, k.encodeCumulative, k.encodeCount, k.encodeSumMs, 1000);
  out.family(
    'medstream_derived_failures_total',
    'counter',
    'Derived frames that could not be made, per representation and stage (decode of the stored frame, encode)',
  );
  for (const [kind, k] of entries)
    for (const stage of ['decode', 'encode'] as const)
      out.sample('medstream_derived_failures_total', { kind, stage }, k.failures[stage]);
}
