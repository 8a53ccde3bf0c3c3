// Routes whose state lives in one process: with `--workers N` (cli/cluster.ts) the next request
// may reach another worker, which does not know the job or result. Such routes answer a typed
// 409 in every worker instead of a 404 one time in N: AI inference results, heat-map jobs and
// their pyramids and segmentation jobs, unless --redis-url shares them.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Conflict } from '../errors.js';

export interface ProcessLocalOptions {
  /** HTTP worker processes sharing the port. */
  workers: number;
  /** Segmentation and heat-map jobs and AI inference results are shared through Redis (--redis-url). */
  sharedJobs: boolean;
}

const AI_RESULTS = /^\/ai\/results\//;
const AI_JOBS = /^\/ai\/jobs\/|^\/ai\/models\/[^/]+\/slides\/[^/]+\/heatmap$/;
// Heat-map pyramids are slides under ai/derived-slides.ts' reserved key prefix (rebuilt from the
// job's grid by any process once jobs are shared).
const DERIVED_SLIDE = /_derived(\/|%2F)ai(\/|%2F)/i;

/** The reason a request cannot be answered consistently in this process, or undefined. */
export function processLocalRefusal(path: string, options: ProcessLocalOptions): string | undefined {
  if (options.workers <= 1) return undefined;
  if (!options.sharedJobs && AI_RESULTS.test(path))
    return `AI inference results are kept in one process's memory unless Redis shares them, and this server runs ${options.workers} HTTP workers: add --redis-url, or serve with --workers 1`;
  if (!options.sharedJobs && (AI_JOBS.test(path) || DERIVED_SLIDE.test(path)))
    return `heat-map jobs are kept in one process's memory unless Redis shares them, and this server runs ${options.workers} HTTP workers: add --redis-url, or serve with --workers 1`;
  if (!options.sharedJobs && path.startsWith('/segmentations'))
    return `segmentation jobs are shared between the ${options.workers} HTTP workers through Redis: add --redis-url, or serve with --workers 1`;
  return undefined;
}

export function registerProcessLocalGuard(app: FastifyInstance, options: ProcessLocalOptions): void {
  if (options.workers <= 1) return;
  app.addHook('onRequest', (request: FastifyRequest, _reply, done) => {
    const reason = processLocalRefusal(request.url.split('?')[0], options);
    done(reason === undefined ? undefined : new Conflict(reason));
  });
}
