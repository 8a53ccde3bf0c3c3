// Prometheus `/metrics`: HTTP latency per route (prom-client histogram, observed on every
// response), process metrics, and the counters the lower layers keep themselves (storage
// requests, bytes, latency, errors and retries; block cache hits; range coalescing). Those are
// read from their snapshots at scrape time, so the hot paths only bump plain numbers.

import { DECODE_BUCKETS_MS } from '../codecs/decode-stats.js';
import type { FastifyInstance } from 'fastify';
import type { AiService } from '../ai/service.js';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { BlockCache } from '../io/block-cache.js';
import type { CoalescerStats } from '../io/coalesce.js';
import type { ReadStats } from '../io/stats.js';
import type { BucketHistogram } from '../ai/histogram.js';
import type { TileService } from '../tiles/tile-service.js';
import type { SegmentationService } from '../segment/service.js';
import { JOB_STATES } from '../jobs/queue.js';
import type { DerivedFrames } from '../dicomweb/derived.js';
import { renderDerivedMetrics } from './derived-metrics.js';

export interface MetricSources {
  readStats?: ReadStats;
  blockCache?: BlockCache;
  coalescerStats?: CoalescerStats;
  tiles?: TileService;
  ai?: AiService;
  /** Segmentation jobs (queue counts, seconds per slice per engine). */
  segmentation?: SegmentationService;
  /** Derived frames of progressive loading (cache hits per layer, encodes, failures). */
  derived?: DerivedFrames;
}

export interface Metrics {
  contentType: string;
  render(): Promise<string>;
  /** Records a response answered outside Fastify (server/fast-path.ts), as the hook does. */
  observeFast(route: string, method: string, status: number, seconds: number): void;
}

export function createMetrics(app: FastifyInstance, sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'medstream_' });
  const httpDuration = new Histogram({
    name: 'medstream_http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  // One child per label set, looked up route → method → status in nested maps: prom-client would
  // otherwise hash the label object on every observation, and a joined string key would be built
  // and hashed per response. Route and method strings are the same objects each time, so their
  // hashes are computed once. Bounded by routes x methods x statuses.
  type Child = { observe(value: number): void };
  const children = new Map<string, Map<string, Map<number, Child>>>();
  const observe = (route: string, method: string, status: number, seconds: number) => {
    let byMethod = children.get(route);
    if (!byMethod) children.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let child = byStatus.get(status);
    if (!child) {
      child = httpDuration.labels({ route, method, status: String(status) });
      byStatus.set(status, child);
    }
    child.observe(seconds);
  };
  // Callback style: no promise per response.
  app.addHook('onResponse', (request, reply, done) => {
    // The route pattern, not the URL, so slide ids do not explode the label set.
    observe(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });

  const fastAnswers = new Counter({
    name: 'medstream_http_fast_path_responses_total',
    help: 'Responses answered from the image cache before routing (also counted in the latency histogram)',
    registers: [registry],
  });

  return {
    contentType: registry.contentType,
    observeFast(route, method, status, seconds) {
      observe(route, method, status, seconds);
      fastAnswers.inc();
    },
    async render() {
      return (
        (await registry.metrics()) +
        renderLayerMetrics(sources) +
        (sources.segmentation ? await renderSegmentationMetrics(sources.segmentation) : '')
      );
    },
  };
}

/** Prometheus text for the counters kept by storage and io/. */
function renderLayerMetrics(sources: MetricSources): string {
  const out = new PrometheusText();
  if (sources.readStats) {
    const snap = sources.readStats.snapshot();
    const kinds = ['read', 'stat', 'list', 'write'] as const;
    out.family('medstream_storage_requests_total', 'counter', 'Requests sent to storage, retries included');
    for (const kind of kinds) out.sample('medstream_storage_requests_total', { kind }, snap[kind].requests);
    out.family('medstream_storage_errors_total', 'counter', 'Storage request attempts that failed');
    for (const kind of kinds) out.sample('medstream_storage_errors_total', { kind }, snap[kind].errors);
    out.family('medstream_storage_retries_total', 'counter', 'Storage request attempts after the first');
    for (const kind of kinds) out.sample('medstream_storage_retries_total', { kind }, snap[kind].retries);
    out.family('medstream_storage_bytes_total', 'counter', 'Bytes received from storage');
    for (const kind of kinds) out.sample('medstream_storage_bytes_total', { kind }, snap[kind].bytes);
    const name = 'medstream_storage_request_duration_seconds';
    out.family(name, 'histogram', 'Storage request latency, send to last byte');
    for (const kind of kinds) {
      const { boundsMs, cumulative, count, sumMs } = snap[kind].latency;
      out.buckets(name, { kind }, boundsMs, cumulative, count, sumMs, 1000);
    }
  }
  if (sources.blockCache) {
    const s = sources.blockCache.stats();
    out.counter('medstream_block_cache_hits_total', 'Metadata blocks answered from the block cache', s.hits);
    out.counter('medstream_block_cache_misses_total', 'Metadata blocks not in the block cache', s.misses);
    out.counter('medstream_block_cache_joined_total', 'Missing blocks joined to a fetch in flight', s.joined);
    out.counter('medstream_block_cache_requests_total', 'Range requests sent by the block cache', s.requests);
    out.counter(
      'medstream_block_cache_shared_hits_total',
      'Blocks answered by the shared Redis cache instead of storage',
      s.sharedHits,
    );
    out.counter('medstream_block_cache_evictions_total', 'Blocks evicted', s.evictions);
    out.gauge('medstream_block_cache_bytes', 'Bytes held by the block cache', s.bytes);
    out.gauge('medstream_block_cache_max_bytes', 'Bound of the block cache', s.maxBytes);
  }
  if (sources.coalescerStats) {
    const s = sources.coalescerStats;
    out.counter('medstream_coalescer_reads_total', 'Tile-data reads asked for', s.reads);
    out.counter(
      'medstream_coalescer_requests_total',
      'Range requests sent for tile data after merging',
      s.requests,
    );
    out.counter('medstream_coalescer_bytes_requested_total', 'Tile-data bytes asked for', s.bytesRequested);
    out.counter(
      'medstream_coalescer_bytes_fetched_total',
      'Tile-data bytes fetched (gaps included)',
      s.bytesFetched,
    );
  }
  if (sources.tiles) {
    const { tiles, flight, rendered, slides, codecs, shared } = sources.tiles.stats();
    const decode = 'medstream_decode_duration_seconds';
    out.family(decode, 'histogram', 'Time to decode one stored tile, per codec');
    for (const [codec, t] of Object.entries(codecs.decodes)) {
      out.buckets(decode, { codec }, DECODE_BUCKETS_MS, t.cumulative, t.count, t.sumMs, 1000);
    }
    out.family(
      'medstream_decode_errors_total',
      'counter',
      'Tile decodes that failed (corrupt data), per codec',
    );
    for (const [codec, t] of Object.entries(codecs.decodes))
      out.sample('medstream_decode_errors_total', { codec }, t.errors);
    out.family('medstream_decode_pool_workers', 'gauge', 'Worker threads started, per decoder pool');
    for (const p of codecs.pools) out.sample('medstream_decode_pool_workers', { pool: p.name }, p.workers);
    out.family('medstream_decode_pool_busy', 'gauge', 'Worker threads decoding now, per decoder pool');
    for (const p of codecs.pools) out.sample('medstream_decode_pool_busy', { pool: p.name }, p.busy);
    out.family('medstream_decode_queue_depth', 'gauge', 'Decodes waiting for a worker, per decoder pool');
    for (const p of codecs.pools) out.sample('medstream_decode_queue_depth', { pool: p.name }, p.queued);
    out.counter(
      'medstream_tile_cache_hits_total',
      'Images answered from the encoded-image cache',
      tiles.hits,
    );
    out.counter('medstream_tile_cache_misses_total', 'Images not in the encoded-image cache', tiles.misses);
    out.counter(
      'medstream_tile_cache_evictions_total',
      'Images evicted from the encoded-image cache',
      tiles.evictions,
    );
    out.gauge('medstream_tile_cache_bytes', 'Bytes held by the encoded-image cache', tiles.bytes);
    out.gauge('medstream_tile_cache_max_bytes', 'Bound of the encoded-image cache', tiles.maxBytes);
    out.counter(
      'medstream_images_rendered_total',
      'Images computed (cache misses not joined to another, not found in Redis)',
      rendered,
    );
    out.counter(
      'medstream_images_joined_total',
      'Requests that shared an identical computation in flight',
      flight.joined,
    );
    out.counter(
      'medstream_slide_cache_hits_total',
      'Slide lookups answered by the open-slide cache',
      slides.hits,
    );
    out.counter(
      'medstream_slide_cache_misses_total',
      'Slide lookups not in the open-slide cache',
      slides.misses,
    );
    out.counter('medstream_slide_opens_total', 'Slides parsed from storage', slides.opens);
    out.counter(
      'medstream_slide_revalidations_total',
      'Open slides re-checked against storage',
      slides.revalidations,
    );
    out.gauge('medstream_slides_open', 'Slides held open', slides.entries);
    if (shared) {
      out.counter('medstream_redis_hits_total', 'Images answered by the shared Redis cache', shared.hits);
      out.counter('medstream_redis_misses_total', 'Images looked up in Redis and not found', shared.misses);
      out.counter(
        'medstream_redis_errors_total',
        'Redis commands that failed or timed out (served from storage instead)',
        shared.errors,
      );
      out.counter(
        'medstream_redis_skipped_total',
        'Redis commands not sent because the circuit was open',
        shared.skipped,
      );
      out.counter('medstream_redis_sets_total', 'Images stored in Redis', shared.sets);
      out.gauge(
        'medstream_redis_writes_in_flight',
        'Redis writes sent and not yet answered (they are fire and forget)',
        shared.writesInFlight,
      );
      out.counter('medstream_redis_block_hits_total', 'Metadata blocks found in Redis', shared.blockHits);
      out.counter(
        'medstream_redis_block_misses_total',
        'Metadata blocks looked up in Redis and not found',
        shared.blockMisses,
      );
      out.counter(
        'medstream_redis_block_sets_total',
        'Metadata blocks offered to Redis after a storage read',
        shared.blockSets,
      );
      out.counter(
        'medstream_redis_circuit_opens_total',
        'Times the Redis circuit breaker opened',
        shared.circuitOpens,
      );
      out.gauge(
        'medstream_redis_connected',
        '1 while the connection to Redis is up',
        shared.connected ? 1 : 0,
      );
      out.gauge(
        'medstream_redis_circuit_open',
        '1 while the Redis circuit breaker is open (Redis unused)',
        shared.circuitOpen ? 1 : 0,
      );
      for (const [op, count, sumMs] of [
        ['get', shared.getCount, shared.getSumMs],
        ['set', shared.setCount, shared.setSumMs],
      ] as const) {
        const name = `medstream_redis_${op}_duration_seconds`;
        out.family(name, 'summary', `Latency of successful Redis ${op.toUpperCase()} commands`);
        out.sample(`${name}_sum`, {}, sumMs / 1000);
        out.sample(`${name}_count`, {}, count);
      }
    }
  }
  if (sources.ai) renderAiMetrics(out, sources.ai);
  if (sources.derived) renderDerivedMetrics(out, sources.derived);
  return out.toString();
}

/** Per-model inference metrics: latency and batch-size histograms, queue depth, runs, errors. */
function renderAiMetrics(out: PrometheusText, ai: AiService): void {
  const models = ai.registry
    .list()
    .map((m) => ({ model: m.name, s: m.batcher.stats(), runs: m.worker.runs, restarts: m.worker.restarts }));
  const histogram = (
    name: string,
    help: string,
    pick: (s: (typeof models)[number]['s']) => BucketHistogram,
    scale: number,
  ) => {
    out.family(name, 'histogram', help);
    for (const { model, s } of models) {
      const h = pick(s);
      out.buckets(name, { model }, h.bounds, h.cumulative(), h.count, h.sum, scale);
    }
  };
  histogram(
    'medstream_ai_request_duration_seconds',
    'Queue wait plus inference per image, per model',
    (s) => s.latency,
    1000,
  );
  histogram('medstream_ai_batch_size', 'Images per ONNX Runtime run, per model', (s) => s.batchSize, 1);
  histogram(
    'medstream_ai_batch_duration_seconds',
    'Time of one batch in the model worker (hand-over, ONNX Runtime run, reply), per model',
    (s) => s.runTime,
    1000,
  );
  const each = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
    value: (m: (typeof models)[number]) => number,
  ) => {
    out.family(name, type, help);
    for (const m of models) out.sample(name, { model: m.model }, value(m));
  };
  each('medstream_ai_queue_depth', 'gauge', 'Images waiting for their batch, per model', (m) => m.s.queued);
  each(
    'medstream_ai_runs_total',
    'counter',
    'ONNX Runtime run calls (one per batch), per model',
    (m) => m.runs,
  );
  each('medstream_ai_errors_total', 'counter', 'Batches that failed, per model', (m) => m.s.errors);
  each(
    'medstream_ai_timeouts_total',
    'counter',
    'Batches that ran past the time limit (the model process killed and restarted), per model',
    (m) => m.restarts,
  );
  each(
    'medstream_ai_rejected_total',
    'counter',
    'Requests refused because the queue was full, per model',
    (m) => m.s.rejected,
  );
  each(
    'medstream_ai_cancelled_total',
    'counter',
    'Requests whose client went away before their result, per model',
    (m) => m.s.cancelled,
  );
}

/** Segmentation jobs by state, queue depth, refusals, and seconds per slice per engine. */
async function renderSegmentationMetrics(service: SegmentationService): Promise<string> {
  const out = new PrometheusText();
  // The queue may live in Redis: a Redis that is down or slow must not hold /metrics up.
  let timer: NodeJS.Timeout | undefined;
  const stats = await Promise.race([
    service.queue.stats().catch(() => undefined),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 1000))),
  ]);
  clearTimeout(timer);
  out.gauge('medstream_segmentation_queue_up', '1 when the job queue answered this scrape', stats ? 1 : 0);
  if (!stats) return out.toString();
  out.family('medstream_segmentation_jobs', 'gauge', 'Segmentation jobs known to the queue, by state');
  for (const state of JOB_STATES) out.sample('medstream_segmentation_jobs', { state }, stats.byState[state]);
  out.gauge('medstream_segmentation_queue_depth', 'Segmentation jobs waiting for a worker', stats.depth);
  out.counter(
    'medstream_segmentation_rejected_total',
    'Segmentation requests refused because the queue was full',
    stats.rejected,
  );
  out.counter(
    'medstream_segmentation_deduplicated_total',
    'Segmentation requests answered with an identical job',
    stats.deduplicated,
  );
  const name = 'medstream_segmentation_slice_seconds';
  out.family(
    name,
    'summary',
    'Seconds per slice segmented (sum) over slices (count), per engine, jobs run here',
  );
  for (const [engine, t] of service.engineTimes) {
    out.sample(`${name}_sum`, { engine }, t.seconds);
    out.sample(`${name}_count`, { engine }, t.slices);
  }
  return out.toString();
}

/** Minimal writer for the Prometheus text exposition format (version 0.0.4). */
class PrometheusText {
  private lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`)
      .join(',');
    this.lines.push(`${name}${l ? `{${l}}` : ''} ${value}`);
  }

  /**
   * One labelled series of a histogram family: a `_bucket` per bound (cumulative counts) and
   * +Inf, `_sum` and `_count`; bounds and sum are divided by `scale` (1000: ms to seconds).
   */
  buckets(
    name: string,
    labels: Record<string, string>,
    bounds: readonly number[],
    cumulative: readonly number[],
    count: number,
    sum: number,
    scale: number,
  ): void {
    bounds.forEach((b, i) =>
      this.sample(`${name}_bucket`, { ...labels, le: String(b / scale) }, cumulative[i]),
    );
    this.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, count);
    this.sample(`${name}_sum`, labels, sum / scale);
    this.sample(`${name}_count`, labels, count);
  }

  counter(name: string, help: string, value: number): void {
    this.family(name, 'counter', help);
    this.sample(name, {}, value);
  }

  gauge(name: string, help: string, value: number): void {
    this.family(name, 'gauge', help);
    this.sample(name, {}, value);
  }

  toString(): string {
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }
}
