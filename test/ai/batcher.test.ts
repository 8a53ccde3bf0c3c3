// The batcher on its own, with a runner that records its batches: when a batch leaves (full,
// max wait, eager when nothing else is arriving), the queue bound counting requests still being
// prepared, cancellation of queued requests, a failing batch, and close.

import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/ai/batcher.js';
import { Cancelled, MedStreamError } from '../../src/errors.js';

function recorder(delayMs = 0) {
  const batches: number[][] = [];
  const run = async (data: Float32Array, count: number) => {
    batches.push([...data]);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    return Array.from({ length: count }, (_, i) => data[i] * 10);
  };
  return { batches, run };
}

const input = (v: number) => Float32Array.of(v);

describe('Batcher', () => {
  it('sends a full batch at once and splits the answers per request', async () => {
    const { batches, run } = recorder();
    const b = new Batcher('m', { maxBatch: 3, maxWaitMs: 10_000, maxQueue: 10, eager: false }, run);
    const answers = await Promise.all([1, 2, 3].map((v) => b.submit(input(v))));
    expect(answers).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('sends a partial batch after maxWait, not before', async () => {
    const { batches, run } = recorder();
    const b = new Batcher('m', { maxBatch: 8, maxWaitMs: 400, maxQueue: 10, eager: false }, run);
    const started = performance.now();
    const answers = Promise.all([b.submit(input(1)), b.submit(input(2))]);
    await new Promise((r) => setTimeout(r, 50));
    expect(batches).toEqual([]);
    expect(await answers).toEqual([10, 20]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    expect(batches).toEqual([[1, 2]]);
  });

  it('eager: sends at once when nothing is arriving, waits while something is', async () => {
    const { batches, run } = recorder();
    let arriving = 1;
    const b = new Batcher('m', { maxBatch: 8, maxWaitMs: 10_000, maxQueue: 10 }, run, () => arriving);
    const first = b.submit(input(1));
    await new Promise((r) => setTimeout(r, 30));
    expect(batches).toEqual([]); // one more request is on its way
    arriving = 0;
    const second = b.submit(input(2));
    expect(await Promise.all([first, second])).toEqual([10, 20]);
    expect(batches).toEqual([[1, 2]]);
  });

  it('gathers the next batch while one runs', async () => {
    const { batches, run } = recorder(60);
    const b = new Batcher('m', { maxBatch: 4, maxWaitMs: 0, maxQueue: 10 }, run);
    const all = [b.submit(input(1))];
    await new Promise((r) => setTimeout(r, 10));
    for (const v of [2, 3, 4]) all.push(b.submit(input(v)));
    await Promise.all(all);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    expect(b.stats().batchSize.count).toBe(2);
    expect(b.stats().batchSize.sum).toBe(4);
  });

  it('counts requests being prepared against the queue bound', () => {
    const b = new Batcher('m', { maxBatch: 8, maxWaitMs: 10_000, maxQueue: 3, eager: false }, recorder().run);
    void b.submit(input(1)).catch(() => {});
    expect(() => b.admit(1)).not.toThrow();
    let error: unknown;
    try {
      b.admit(2);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MedStreamError);
    expect((error as MedStreamError).code).toBe('overloaded');
    expect(b.stats().rejected).toBe(1);
    b.close();
  });

  it('drops a cancelled request from the queue; it never reaches the runner', async () => {
    const { batches, run } = recorder();
    const b = new Batcher('m', { maxBatch: 8, maxWaitMs: 100, maxQueue: 10, eager: false }, run);
    const controller = new AbortController();
    const gone = b.submit(input(1), controller.signal);
    const stays = b.submit(input(2));
    controller.abort();
    await expect(gone).rejects.toBeInstanceOf(Cancelled);
    expect(b.stats().queued).toBe(1);
    expect(await stays).toBe(20);
    expect(batches).toEqual([[2]]);
    expect(b.stats().cancelled).toBe(1);
  });

  it('fails every request of a failing batch and keeps serving', async () => {
    let fail = true;
    const b = new Batcher(
      'm',
      { maxBatch: 2, maxWaitMs: 50, maxQueue: 10, eager: false },
      async (data, count) => {
        if (fail) throw new Error('boom');
        return Array.from({ length: count }, (_, i) => data[i]);
      },
    );
    const results = await Promise.allSettled([b.submit(input(1)), b.submit(input(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(b.stats().errors).toBe(1);
    fail = false;
    expect(await b.submit(input(5))).toBe(5);
  });

  it('close rejects what waits and refuses new work', async () => {
    const b = new Batcher(
      'm',
      { maxBatch: 8, maxWaitMs: 10_000, maxQueue: 10, eager: false },
      recorder().run,
    );
    const waiting = b.submit(input(1));
    b.close();
    await expect(waiting).rejects.toBeInstanceOf(Cancelled);
    await expect(b.submit(input(2))).rejects.toBeInstanceOf(Cancelled);
  });
});
