// The job handler of the queue tests: `steps` ticks of `stepMs`, checking its signal and reporting
// progress between them, then a small file; payloads named "bad" fail with a typed error.
import { BadRequest, throwIfAborted } from '../../src/errors.js';
import type { JobContext } from '../../src/jobs/queue.js';

export interface StepPayload {
  name: string;
  steps: number;
  stepMs: number;
}

/** Queue settings the in-process queues and the child worker (redis-worker-child.ts) share. */
export const STEP_QUEUE_SETTINGS = {
  concurrency: 1,
  maxQueued: 10,
  ttlMs: 60_000,
  lockMs: 1000,
  stalledCheckMs: 500,
};

export function stepHandler(onStart: (id: string) => void = () => undefined) {
  return async (payload: StepPayload, context: JobContext) => {
    onStart(context.id);
    for (let i = 0; i < payload.steps; i++) {
      throwIfAborted(context.signal);
      await new Promise((r) => setTimeout(r, payload.stepMs));
      context.progress({ done: i + 1, total: payload.steps });
    }
    if (payload.name === 'bad') throw new BadRequest('this payload is bad');
    return { summary: { name: payload.name }, files: { 'out.txt': new TextEncoder().encode(payload.name) } };
  };
}
