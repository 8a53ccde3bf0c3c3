// The jobs layer's one interface: long work (a 3D segmentation, a heat map over a slide) submitted
// as a JSON payload, run later by a handler with progress and cancellation, its record and result
// files kept until a TTL passes. Two implementations: in this process (memory-queue.ts) and in
// Redis across replicas (redis-queue.ts). The layer knows nothing of what a job does.

import { MedStreamError } from '../errors.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'done', 'failed', 'cancelled'];

/** States a job does not leave. */
export function isFinal(state: JobState): boolean {
  return state === 'done' || state === 'failed' || state === 'cancelled';
}

/** Why a job failed, as clients see it: a typed error code and a message without internals. */
export interface JobError {
  code: string;
  message: string;
}

export interface JobRecord<P = unknown, S = unknown> {
  id: string;
  state: JobState;
  payload: P;
  /** What the handler last reported (numbers only: counts, fractions). */
  progress: Record<string, number>;
  /** Milliseconds since the epoch. */
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** When the record and its files are forgotten (set once the job is final). */
  expiresAt?: number;
  /** Runs started (more than 1 after a worker died mid-job and the job was retried). */
  attempts: number;
  /** The worker (replica) that ran it last. */
  worker?: string;
  /** A cancellation was asked for and the handler has not stopped yet. */
  cancelRequested?: boolean;
  error?: JobError;
  /** The handler's JSON summary, once done. */
  summary?: S;
  /** Names of the result files, once done. */
  files: string[];
}

export interface JobContext {
  id: string;
  attempt: number;
  /** Fires when the job is cancelled (DELETE) or the queue closes. */
  signal: AbortSignal;
  /** Reports progress; cheap, may be called per step. */
  progress(values: Record<string, number>): void;
}

export interface JobOutput<S> {
  summary: S;
  files: Record<string, Uint8Array>;
}

export type JobHandler<P, S> = (payload: P, context: JobContext) => Promise<JobOutput<S>>;

export interface SubmitOptions {
  /**
   * Jobs with the same key are one job: while one is queued, running or done (and not expired),
   * a submission returns it instead of queueing another. A failed or cancelled one is replaced.
   */
  dedupKey?: string;
}

export interface Submitted<P, S> {
  job: JobRecord<P, S>;
  /** false when an identical job already existed. */
  created: boolean;
}

export interface JobStats {
  /** Jobs this queue knows of, by state (Redis: every replica's; memory: this process's). */
  byState: Record<JobState, number>;
  /** Jobs waiting for a worker. */
  depth: number;
  /** Submissions refused because the queue was full (this process). */
  rejected: number;
  /** Submissions answered with an existing identical job (this process). */
  deduplicated: number;
}

export interface JobQueue<P, S> {
  readonly kind: 'memory' | 'redis';
  /** Queues a job; throws `overloaded` (503 + Retry-After) when the queue is full. */
  submit(payload: P, options?: SubmitOptions): Promise<Submitted<P, S>>;
  get(id: string): Promise<JobRecord<P, S> | undefined>;
  /** A result file of a done job. */
  file(id: string, name: string): Promise<Uint8Array | undefined>;
  /** Cancels a queued job at once, a running one between the handler's steps; a final job stays. */
  cancel(id: string): Promise<JobRecord<P, S> | undefined>;
  stats(): Promise<JobStats>;
  /** Stops taking jobs, aborts running ones (they end cancelled), releases connections. */
  close(): Promise<void>;
}

/** What a handler's failure becomes in the job record: typed errors keep code and message. */
export function jobErrorOf(e: unknown): JobError {
  if (e instanceof MedStreamError) return { code: e.code, message: e.message };
  return { code: 'internal_error', message: 'the job failed with an internal error (see the server log)' };
}

export function emptyCounts(): Record<JobState, number> {
  return { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
}

/** The overloaded error of a full queue. */
export function queueFull(limit: number): MedStreamError {
  return new MedStreamError('overloaded', `the job queue is full (${limit} jobs waiting); retry later`, {
    retryable: true,
  });
}
