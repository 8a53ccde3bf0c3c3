// Retries with exponential backoff and full jitter, bounded by a per-operation deadline, shared
// by every backend. Only errors marked `retryable` (5xx, throttling, resets, timeouts, truncated
// bodies) are retried; other 4xx and cancellation end the operation at once.
// Full jitter: sleep = random(0, min(maxDelay, baseDelay * 2^attempt)) — AWS Architecture Blog,
// "Exponential Backoff And Jitter".

import { Cancelled, MedStreamError, StorageUnavailable, throwIfAborted } from '../errors.js';

export interface RetryPolicy {
  /** Attempts in total, the first included. */
  maxAttempts: number;
  /** Give up (with `storage_timeout`) once this many ms have passed since the first attempt. */
  deadlineMs: number;
  /** Abort one attempt that has not finished after this many ms (slow first byte, slow body). */
  attemptTimeoutMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 6,
  deadlineMs: 20_000,
  attemptTimeoutMs: 10_000,
  baseDelayMs: 50,
  maxDelayMs: 2_000,
};

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, runs out of attempts or
 * passes the deadline. Each attempt gets its own signal, aborted when the caller's signal
 * fires, when the attempt times out, or when the deadline passes.
 * `describe` names the operation in error messages (e.g. `read slides/a.svs [0, 4096)`).
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  describe: string,
  attempt: (signal: AbortSignal, attemptNumber: number) => Promise<T>,
  signal?: AbortSignal,
  random: () => number = Math.random,
): Promise<T> {
  const started = Date.now();
  let lastError: unknown;
  for (let n = 1; n <= policy.maxAttempts; n++) {
    throwIfAborted(signal);
    const remaining = policy.deadlineMs - (Date.now() - started);
    if (remaining <= 0) break;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timeoutMs = Math.min(policy.attemptTimeoutMs, remaining);
    const timer = setTimeout(() => controller.abort(new AttemptTimeout(timeoutMs)), timeoutMs);
    try {
      return await attempt(controller.signal, n);
    } catch (e) {
      if (signal?.aborted) throw new Cancelled(`${describe}: cancelled`, { cause: signal.reason });
      const err = controller.signal.reason instanceof AttemptTimeout ? controller.signal.reason : e;
      if (!isRetryable(err)) throw err;
      lastError = err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (n === policy.maxAttempts) break;
    const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
    const delay = Math.min(random() * cap, policy.deadlineMs - (Date.now() - started));
    if (delay > 0) await sleep(delay, signal);
  }
  const elapsed = Date.now() - started;
  const last = lastError instanceof Error ? lastError.message : String(lastError ?? 'no attempt made');
  if (elapsed >= policy.deadlineMs || lastError instanceof AttemptTimeout) {
    throw new StorageUnavailable(
      `${describe}: gave up after ${elapsed} ms (deadline ${policy.deadlineMs} ms): ${last}`,
      {
        cause: lastError,
        code: 'storage_timeout',
        retryable: false,
      },
    );
  }
  const code =
    lastError instanceof MedStreamError && lastError.code === 'connection_error'
      ? 'connection_error'
      : 'storage_error';
  throw new StorageUnavailable(`${describe}: failed after ${policy.maxAttempts} attempts: ${last}`, {
    cause: lastError,
    code,
    retryable: false,
  });
}

/** An attempt that ran past `attemptTimeoutMs`. Retryable, like any other slow response. */
export class AttemptTimeout extends StorageUnavailable {
  constructor(ms: number) {
    super(`no complete response within ${ms} ms`, { code: 'storage_timeout', retryable: true });
  }
}

function isRetryable(e: unknown): boolean {
  return e instanceof MedStreamError && e.retryable;
}

/** Resolves after `ms`, or rejects with `Cancelled` as soon as the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Cancelled(undefined, { cause: signal.reason }));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Cancelled(undefined, { cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
