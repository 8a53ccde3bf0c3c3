// `medstream serve --workers N`: N HTTP server processes sharing one port through node:cluster
// (the primary accepts connections and hands them out round-robin). The primary only supervises:
// it forks the workers, gives each its slot, replaces one that dies after start-up, stops them
// all when one fails to start, and forwards SIGTERM/SIGINT so every worker drains on its own.
//
// Caches are per process; a worker gets 1/N of --cache-tiles, --cache-blocks and --nifti-cache
// and the derived-frame caches (the configured sizes stay the total memory / disk), and with
// --redis-url they share Redis as the second level. Jobs and results kept per process (AI
// heat-map jobs and inference results, segmentation jobs: all of them without Redis) are refused
// with 409 (server/process-local.ts). Decode and ONNX threads at their per-core default are
// divided among the workers, and only the first slot indexes the storage in the background.

import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Config } from './config.js';

/** The worker processes `--workers` asks for (0 = one per core). */
export function workerCount(config: Config): number {
  return config.workers === 0 ? os.availableParallelism() : config.workers;
}

/** Where one server process sits among `count`. */
export interface WorkerSlot {
  index: number;
  count: number;
}

/** What one worker process runs with: its share of the caches, threads and duties. */
export function workerShare(
  config: Config,
  slot: WorkerSlot,
): { config: Config; niftiCacheDir: string; derivedCacheDir: string } {
  const { index, count } = slot;
  const perCore = Math.max(1, Math.floor(os.availableParallelism() / count));
  return {
    config: {
      ...config,
      cacheTilesBytes: Math.floor(config.cacheTilesBytes / count),
      cacheBlocksBytes: Math.floor(config.cacheBlocksBytes / count),
      niftiCacheBytes: Math.floor(config.niftiCacheBytes / count),
      derivedCacheBytes: Math.floor(config.derivedCacheBytes / count),
      derivedMemoryBytes: Math.floor(config.derivedMemoryBytes / count),
      decodeWorkers: config.decodeWorkers || perCore,
      aiThreads: config.aiThreads || perCore,
      indexAtStart: index === 0 && config.indexAtStart,
      indexIntervalMs: index === 0 ? config.indexIntervalMs : 0,
    },
    // The NIfTI cache clears its folder at start, and each derived-frame disk cache evicts to its
    // own bound: one folder per slot.
    niftiCacheDir: join(config.dataDir, `nifti-cache-${index}`),
    derivedCacheDir: join(config.dataDir, `derived-cache-${index}`),
  };
}

interface SlotMessage {
  medstreamSlot: WorkerSlot;
}
interface ListeningMessage {
  medstreamListening: string;
}

/**
 * In a worker: asks the primary for its slot and waits for the answer (asked, not pushed at
 * fork: a message that arrives before the worker listens for it would be lost).
 */
export function receiveSlot(): Promise<WorkerSlot> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (typeof message === 'object' && message !== null && 'medstreamSlot' in message) {
        process.off('message', onMessage);
        resolve((message as SlotMessage).medstreamSlot);
      }
    };
    process.on('message', onMessage);
    process.send?.({ medstreamSlotWanted: true });
  });
}

/** In a worker: tells the primary it is listening. */
export function announceListening(url: string): void {
  process.send?.({ medstreamListening: url } satisfies ListeningMessage);
}

/**
 * The primary: forks `count` workers (the same command line runs in each) and supervises them
 * until SIGTERM/SIGINT, when it forwards the signal, waits for every worker to drain and exits
 * with the worst exit code (0 when all drained).
 */
export async function runPrimary(config: Config, count: number): Promise<void> {
  const log = pino({ level: config.logLevel }).child({ component: 'cluster' });
  const slots = new Map<Worker, WorkerSlot>();
  const listening = new Set<Worker>();
  let stopping = false;
  let worstCode = 0;

  const stopAll = (signal: NodeJS.Signals, exitCode?: number) => {
    if (exitCode !== undefined) worstCode = Math.max(worstCode, exitCode);
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: slots.size }, 'stopping workers');
    for (const worker of slots.keys()) worker.process.kill(signal);
    if (slots.size === 0) process.exit(worstCode);
    // Each worker bounds its own drain by --shutdown-timeout; this bounds the whole.
    const timer = setTimeout(() => {
      log.warn('workers still running after the shutdown timeout, killing them');
      for (const worker of slots.keys()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5000);
    timer.unref();
  };

  const fork = (slot: WorkerSlot) => {
    const worker = cluster.fork();
    slots.set(worker, slot);
    worker.on('message', (message: unknown) => {
      if (typeof message !== 'object' || message === null) return;
      if ('medstreamSlotWanted' in message) worker.send({ medstreamSlot: slot } satisfies SlotMessage);
      if (!('medstreamListening' in message)) return;
      listening.add(worker);
      if (listening.size === count && !stopping)
        log.info(
          { url: (message as ListeningMessage).medstreamListening, workers: count, pid: process.pid },
          'medstream cluster listening',
        );
    });
    worker.on('exit', (code, signal) => {
      slots.delete(worker);
      const started = listening.delete(worker);
      if (stopping) {
        worstCode = Math.max(worstCode, code ?? 1);
        if (slots.size === 0) process.exit(worstCode);
      } else if (!started) {
        // A worker that cannot start (bad storage, catalog, models) would fail again: stop.
        log.error({ slot: slot.index, code, signal }, 'worker failed to start, stopping');
        stopAll('SIGTERM', code || 1);
      } else {
        log.error({ slot: slot.index, code, signal }, 'worker exited, starting a replacement');
        fork(slot);
      }
    });
  };

  process.once('SIGTERM', () => stopAll('SIGTERM'));
  process.once('SIGINT', () => stopAll('SIGINT'));
  for (let index = 0; index < count; index++) fork({ index, count });
}

export const isClusterWorker = (): boolean => cluster.isWorker;
export const isClusterPrimary = (): boolean => cluster.isPrimary;
