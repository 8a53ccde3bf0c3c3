// Builds the queue of heat-map jobs for `medstream serve`: in this process by default, or BullMQ
// on Redis with --redis-url (queue "heatmaps"), so a job posted to any replica runs on one that
// consumes the queue (--ai-heatmap-workers, one job at a time by default) and every replica
// answers its status, map and pyramid (the grid is the job's result file; docs/ai.md).

import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { HeatmapPayload, HeatmapQueue, HeatmapSummary } from '../ai/heatmap-jobs.js';
import { MemoryJobQueue } from '../jobs/memory-queue.js';
import type { JobHandler } from '../jobs/queue.js';
import { RedisJobQueue } from '../jobs/redis-queue.js';
import type { Config } from './config.js';

/** Finished heat-map jobs (and their grids) are kept this long. */
const TTL_MS = 24 * 3600 * 1000;
/** Jobs waiting at most before POST answers 503. */
const MAX_QUEUED = 64;

export function heatmapQueue(
  config: Config,
  onInternalError?: (id: string, error: unknown) => void,
): (handler: JobHandler<HeatmapPayload, HeatmapSummary>) => HeatmapQueue {
  // Unique per server object (tests run several replicas in one process).
  const workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  return (handler) =>
    config.redisUrl === undefined
      ? new MemoryJobQueue({
          handler,
          concurrency: Math.max(1, config.aiHeatmapWorkers),
          maxQueued: MAX_QUEUED,
          ttlMs: TTL_MS,
          maxFinished: 100,
          workerId,
          onInternalError,
        })
      : new RedisJobQueue({
          url: config.redisUrl,
          name: 'heatmaps',
          handler,
          concurrency: config.aiHeatmapWorkers,
          maxQueued: MAX_QUEUED,
          ttlMs: TTL_MS,
          workerId,
          onInternalError,
        });
}
