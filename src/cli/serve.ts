// `medstream serve`: builds the process-wide objects from the configuration (read statistics,
// storage, block cache, range coalescing), starts the HTTP server and drains it on SIGTERM/SIGINT.
// With --workers above 1 the process becomes the primary of a cluster (cli/cluster.ts) and each
// worker runs this same server with its share of the caches.

import type { FastifyInstance } from 'fastify';
import os from 'node:os';
import { pino } from 'pino';
import { ModelRegistry } from '../ai/registry.js';
import { ResultStore } from '../ai/results.js';
import { RedisResultBackend } from '../ai/shared-results.js';
import { AiService } from '../ai/service.js';
import { RadiologySource } from '../ai/radiology-source.js';
import { DerivedSlides } from '../ai/derived-slides.js';
import { heatmapQueue } from './heatmap-queue.js';
import { createCodecs } from '../codecs/index.js';
import { openSlide, openSlideLazily, openSlideSeries } from '../formats/detect.js';
import { BlockCache } from '../io/block-cache.js';
import { CoalescerStats } from '../io/coalesce.js';
import { createReaderFactory } from '../io/reader.js';
import { ReadStats } from '../io/stats.js';
import { buildServer } from '../server/app.js';
import { resolveOhifDist } from '../server/routes/ohif.js';
import { ViewerTokenIssuer } from '../server/auth.js';
import { trackConnections } from '../server/drain.js';
import { createStorage } from '../storage/index.js';
import type { RetryPolicy } from '../storage/retry.js';
import { DEFAULT_RETRY_POLICY } from '../storage/retry.js';
import type { Storage } from '../storage/types.js';
import { RedisSharedCache, redactUrl } from '../tiles/shared-cache.js';
import { SlideRegistry } from '../tiles/slide-registry.js';
import { TileService } from '../tiles/tile-service.js';
import { Catalog } from '../catalog/catalog.js';
import { IndexService } from '../catalog/index-service.js';
import { Indexer } from '../catalog/indexer.js';
import { NiftiSliceReader } from '../volumes/nifti-slices.js';
import { DerivedFrames } from '../dicomweb/derived.js';
import { DerivedCache } from '../dicomweb/derived-cache.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import { catalogLocation } from './catalog-location.js';
import type { Config } from './config.js';
import {
  announceListening,
  isClusterPrimary,
  isClusterWorker,
  receiveSlot,
  runPrimary,
  workerCount,
  workerShare,
} from './cluster.js';
import { join } from 'node:path';
import { StowService } from '../dicomweb/stow.js';
import { createSegmentationService, type SegmentationParts } from './segment-service.js';

export interface RunningServer {
  app: FastifyInstance;
  storage: Storage;
  /** `http://host:port` actually bound (port 0 resolves to the chosen one). */
  url: string;
  close(): Promise<void>;
}

export function retryPolicyOf(config: Config): RetryPolicy {
  return {
    ...DEFAULT_RETRY_POLICY,
    maxAttempts: config.storageMaxAttempts,
    deadlineMs: config.storageDeadlineMs,
    attemptTimeoutMs: config.storageAttemptTimeoutMs,
  };
}

export interface StartOptions {
  /** The NIfTI cache folder; default `<data-dir>/nifti-cache`. */
  niftiCacheDir?: string;
  /** The derived-frame disk cache folder; default `<data-dir>/derived-cache`. */
  derivedCacheDir?: string;
  /** HTTP worker processes sharing the port (cli/cluster.ts); default 1. */
  workers?: number;
}

/** Builds everything and listens; used by the CLI and by tests that start a real server. */
export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const readStats = new ReadStats();
  const storage = await createStorage(config.storage, {
    s3Endpoint: config.s3Endpoint,
    s3Region: config.s3Region,
    s3ForcePathStyle: config.s3ForcePathStyle,
    retry: retryPolicyOf(config),
    observer: readStats,
  });
  const coalescerStats = new CoalescerStats();
  const codecs = createCodecs({
    workers: config.decodeWorkers || undefined,
    maxQueue: config.decodeQueue,
    taskTimeoutMs: config.decodeTimeoutMs,
  });
  const logger =
    config.redisUrl === undefined
      ? undefined
      : pino({ level: config.logLevel }).child({ component: 'redis-cache' });
  const sharedCache =
    config.redisUrl === undefined
      ? undefined
      : new RedisSharedCache({
          url: config.redisUrl,
          ttlMs: config.redisTtlMs,
          timeoutMs: config.redisTimeoutMs,
          cooldownMs: config.redisCircuitCooldownMs,
          logger,
        });
  if (sharedCache && !(await sharedCache.ready(2000))) {
    // Not fatal: tiles are served from storage, and the client keeps reconnecting.
    logger?.warn({ redis: redactUrl(config.redisUrl!) }, 'redis cache not reachable at start');
  }
  const blockCache = new BlockCache({
    maxBytes: config.cacheBlocksBytes,
    blockSize: config.blockSizeBytes,
    shared: sharedCache,
  });
  const wrap = createReaderFactory({ blockCache, gapBytes: config.coalesceGapBytes, coalescerStats });
  // Heat-map pyramids the AI layer derives are slides too (ai/derived-slides.ts).
  const derivedSlides = new DerivedSlides();
  const registry = new SlideRegistry({
    storage: derivedSlides.overlay(storage),
    wrap,
    open: (source, signal, context) =>
      openSlide(source, { signal, exposePhi: config.exposePhi, siblings: context?.siblings }),
    openLazily: (source, signal, context) =>
      openSlideLazily(source, { signal, exposePhi: config.exposePhi, siblings: context?.siblings }),
    openMany: (sources, signal) => openSlideSeries(sources, { signal, exposePhi: config.exposePhi }),
    maxSlides: config.cacheSlides,
    revalidateMs: config.slideRevalidateMs,
  });
  const tiles = new TileService({
    registry,
    codecs,
    cacheBytes: config.cacheTilesBytes,
    defaultQuality: config.jpegQuality,
    maxRegionPixels: config.maxRegionPixels,
    sharedCache,
  });
  let catalog: Catalog;
  try {
    catalog = await Catalog.open(catalogLocation(config, storage.description));
  } catch (e) {
    await sharedCache?.close();
    await codecs.close();
    await storage.close();
    throw e;
  }
  const index = new IndexService(new Indexer(storage, catalog, { niftiModality: config.niftiModality }), {
    intervalMs: config.indexIntervalMs,
    concurrency: config.indexConcurrency,
    logger: pino({ level: config.logLevel }).child({ component: 'indexer' }),
  });
  let ai: AiService | undefined;
  let segmentation: SegmentationParts | undefined;
  // Derived frames (progressive loading): encoded on first request, kept on disk and, with
  // --derived-store, in the storage for every replica.
  const derived = new DerivedFrames({
    workers: config.decodeWorkers || undefined,
    waitTimeoutMs: config.derivedTimeoutMs,
    cache: new DerivedCache({
      dir: options.derivedCacheDir ?? join(config.dataDir, 'derived-cache'),
      maxBytes: config.derivedCacheBytes,
      memoryBytes: config.derivedMemoryBytes,
      shared: sharedCache,
      store: config.derivedStore === undefined ? undefined : { storage, prefix: config.derivedStore },
      tmpDir: join(config.dataDir, 'tmp'),
    }),
  });
  // Radiology frames decoded for inference (worker threads start on first use).
  const aiDecoder = new FrameSampleDecoder();
  const closeAll = async () => {
    await segmentation?.close();
    await derived.close();
    await ai?.close();
    await aiDecoder.close();
    await index.close();
    await catalog.close();
    await sharedCache?.close();
    await codecs.close();
    await storage.close();
  };
  let app: FastifyInstance;
  try {
    // Models load (and are checked against their graphs) before the server listens.
    ai = new AiService({
      registry: await ModelRegistry.load({
        modelsDir: config.modelsDir,
        batching: { maxBatch: config.aiMaxBatch, maxWaitMs: config.aiMaxWaitMs, maxQueue: config.aiQueue },
        intraOpThreads: config.aiThreads || os.availableParallelism(),
        batchTimeoutMs: config.aiBatchTimeoutMs,
      }),
      tiles,
      results: new ResultStore({
        maxBytes: config.aiResultsBytes,
        ttlMs: config.aiResultsTtlMs,
        maxSharedBytes: config.aiResultsSharedMaxBytes,
        shared:
          config.redisUrl === undefined
            ? undefined
            : new RedisResultBackend({ url: config.redisUrl, ttlMs: config.aiResultsTtlMs }),
      }),
      maxPixels: config.maxRegionPixels,
      derived: derivedSlides,
      radiology: new RadiologySource({ catalog, storage, decoder: aiDecoder, maxVoxels: config.aiMaxVoxels }),
      heatmapQueue: heatmapQueue(config, (id, err) =>
        pino({ level: config.logLevel }).error({ err, job: id }, 'heatmap job failed'),
      ),
    });
    const stow = {
      storage,
      prefix: config.stowPrefix,
      maxBytes: config.stowMaxBytes,
      tmpDir: join(config.dataDir, 'tmp'),
    };
    const jobLog = pino({ level: config.logLevel }).child({ component: 'segmentation' });
    segmentation = await createSegmentationService(config, {
      catalog,
      storage,
      stow: new StowService({ ...stow, catalog }),
      onInternalError: (id, err) => jobLog.error({ err, job: id }, 'segmentation job failed'),
    });
    app = await buildServer({
      storage,
      tiles,
      readStats,
      blockCache,
      coalescerStats,
      logLevel: config.logLevel,
      cacheMaxAgeSeconds: Math.round(config.cacheMaxAgeMs / 1000),
      maxRegionPixels: config.maxRegionPixels,
      corsOrigins: config.corsOrigins,
      auth: {
        enabled: config.authEnabled,
        secrets: config.authSecrets,
        clockSkewSeconds: Math.round(config.authClockSkewMs / 1000),
      },
      viewerTokens: config.authEnabled
        ? new ViewerTokenIssuer({
            secrets: config.authSecrets,
            ttlSeconds: Math.round(config.viewerTokenTtlMs / 1000),
          })
        : undefined,
      radiology: {
        catalog,
        index,
        qidoMaxResults: config.qidoMaxResults,
        wrap,
        nifti: new NiftiSliceReader({
          dir: options.niftiCacheDir ?? join(config.dataDir, 'nifti-cache'),
          maxBytes: config.niftiCacheBytes,
        }),
        transcode: {
          workers: config.decodeWorkers || undefined,
          maxQueue: config.transcodeQueue,
          taskTimeoutMs: config.decodeTimeoutMs,
        },
        derived,
        stow,
      },
      ai,
      segmentation: segmentation.service,
      derived,
      aiMaxUploadBytes: config.aiMaxUploadBytes,
      ohif: config.ohif ? { distDir: resolveOhifDist(config.ohifDir) } : undefined,
      accessLog: config.accessLog,
      logAsync: config.logAsync,
      accessLogSample: config.accessLogSample,
      processLocal: { workers: options.workers ?? 1, sharedJobs: config.redisUrl !== undefined },
    });
    await app.listen({ host: config.host, port: config.port });
    // In the background: the server answers (from what the catalog already holds) meanwhile.
    index.start(config.indexAtStart);
  } catch (e) {
    await closeAll();
    throw e;
  }
  const drainer = trackConnections(app.server);
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return {
    app,
    storage,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    async close() {
      const closing = app.close();
      drainer.drain(config.shutdownTimeoutMs);
      await closing;
      drainer.done();
      await closeAll();
    },
  };
}

export async function runServe(config: Config): Promise<void> {
  const count = workerCount(config);
  if (count > 1 && isClusterPrimary()) return runPrimary(config, count);
  const worker = isClusterWorker();
  const share = worker ? workerShare(config, await receiveSlot()) : undefined;
  const server = await startServer(share?.config ?? config, {
    niftiCacheDir: share?.niftiCacheDir,
    derivedCacheDir: share?.derivedCacheDir,
    workers: count,
  });
  server.app.log.info({ storage: server.storage.description, url: server.url }, 'medstream listening');
  if (worker) announceListening(server.url);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'draining requests in flight');
    // Requests still running after the timeout are cut off: the process must stop in bounded time.
    const timer = setTimeout(() => {
      server.app.log.warn('shutdown timeout passed, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.app.log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  // `on`, not `once`: in a cluster a Ctrl-C reaches a worker twice (from the terminal and from
  // the primary), and a second signal must not kill it mid-drain.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A worker whose primary is gone (killed) drains and exits too.
  if (worker) process.once('disconnect', () => stop('disconnect'));
}
