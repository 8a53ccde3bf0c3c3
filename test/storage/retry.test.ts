import { describe, expect, it } from 'vitest';
import { Cancelled, NotFound, StorageUnavailable } from '../../src/errors.js';
import { withRetry, type RetryPolicy } from '../../src/storage/retry.js';

const policy: RetryPolicy = {
  maxAttempts: 5,
  deadlineMs: 2000,
  attemptTimeoutMs: 200,
  baseDelayMs: 5,
  maxDelayMs: 20,
};

describe('withRetry', () => {
  it('retries retryable errors until success', async () => {
    let calls = 0;
    const result = await withRetry(policy, 'op', async () => {
      if (++calls < 3) throw new StorageUnavailable('503');
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('does not retry non-retryable errors', async () => {
    let calls = 0;
    await expect(
      withRetry(policy, 'op', async () => {
        calls++;
        throw new NotFound('gone');
      }),
    ).rejects.toBeInstanceOf(NotFound);
    expect(calls).toBe(1);
  });

  it('gives up after maxAttempts with a non-retryable StorageUnavailable', async () => {
    let calls = 0;
    const err = await withRetry(policy, 'read x', async () => {
      calls++;
      throw new StorageUnavailable('boom', { code: 'connection_error' });
    }).catch((e: unknown) => e);
    expect(calls).toBe(5);
    expect(err).toBeInstanceOf(StorageUnavailable);
    expect((err as StorageUnavailable).code).toBe('connection_error');
    expect((err as StorageUnavailable).retryable).toBe(false);
    expect((err as Error).message).toMatch(/read x: failed after 5 attempts: boom/);
  });

  it('aborts an attempt that runs past the attempt timeout and reports storage_timeout at the deadline', async () => {
    const started = Date.now();
    let calls = 0;
    const err = await withRetry({ ...policy, deadlineMs: 500, maxAttempts: 100 }, 'slow', (signal) => {
      calls++;
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
    }).catch((e: unknown) => e);
    expect((err as StorageUnavailable).code).toBe('storage_timeout');
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('stops at once with Cancelled when the caller aborts, aborting the attempt in flight', async () => {
    const controller = new AbortController();
    let attemptSignal: AbortSignal | undefined;
    const pending = withRetry(
      { ...policy, attemptTimeoutMs: 10_000 },
      'op',
      (signal) => {
        attemptSignal = signal;
        return new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      },
      controller.signal,
    );
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toBeInstanceOf(Cancelled);
    expect(attemptSignal?.aborted).toBe(true);
  });

  it('uses full jitter: delays are drawn between 0 and the exponential cap', async () => {
    const draws: number[] = [];
    let calls = 0;
    await withRetry(
      { ...policy, baseDelayMs: 1, maxDelayMs: 1 },
      'op',
      async () => {
        if (++calls < 4) throw new StorageUnavailable('503');
      },
      undefined,
      () => {
        const r = 0.5;
        draws.push(r);
        return r;
      },
    );
    expect(draws).toHaveLength(3);
  });
});
