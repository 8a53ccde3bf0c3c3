import { describe, expect, it } from 'vitest';
import { Cancelled, StorageUnavailable } from '../../src/errors.js';
import { SharedFlight, SharedTask } from '../../src/io/shared-flight.js';

/** A promise the test settles by hand, plus the signal the shared execution was given. */
function controllable<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const seen: { signal?: AbortSignal; calls: number } = { calls: 0 };
  const fn = (signal: AbortSignal) => {
    seen.calls++;
    seen.signal = signal;
    return promise;
  };
  return { fn, resolve, reject, seen };
}

/** Settles every pending promise reaction (several rounds of microtasks). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SharedFlight', () => {
  it('runs 10 concurrent identical calls as one execution', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    const results = Array.from({ length: 10 }, () => flight.run('k', work.fn));
    work.resolve('value');
    expect(await Promise.all(results)).toEqual(Array(10).fill('value'));
    expect(work.seen.calls).toBe(1);
    expect(flight.stats()).toEqual({ started: 1, joined: 9, inFlight: 0 });
  });

  it('runs different keys separately', async () => {
    const flight = new SharedFlight<string, number>();
    let calls = 0;
    const fn = async () => ++calls;
    expect(await Promise.all([flight.run('a', fn), flight.run('b', fn)])).toEqual([1, 2]);
    expect(flight.started).toBe(2);
  });

  it('answers a caller that aborts at once, while the other caller still gets the data', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    const a = new AbortController();
    const b = new AbortController();
    const first = flight.run('k', work.fn, a.signal);
    const second = flight.run('k', work.fn, b.signal);
    a.abort();
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    expect(work.seen.signal!.aborted).toBe(false);
    work.resolve('data');
    await expect(second).resolves.toBe('data');
    expect(work.seen.signal!.aborted).toBe(false);
  });

  it('aborts the shared execution once every caller has aborted, and forgets it', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    const a = new AbortController();
    const b = new AbortController();
    const first = flight.run('k', work.fn, a.signal);
    const second = flight.run('k', work.fn, b.signal);
    a.abort();
    expect(work.seen.signal!.aborted).toBe(false);
    b.abort();
    expect(work.seen.signal!.aborted).toBe(true);
    expect(work.seen.signal!.reason).toBeInstanceOf(Cancelled);
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    await expect(second).rejects.toBeInstanceOf(Cancelled);
    expect(flight.has('k')).toBe(false);

    // A new caller must not join the abandoned execution.
    const fresh = controllable<string>();
    const third = flight.run('k', fresh.fn);
    fresh.resolve('again');
    await expect(third).resolves.toBe('again');
    expect(fresh.seen.calls).toBe(1);
    work.reject(new Cancelled()); // the abandoned fetch failing later must not surface anywhere
    await settle();
  });

  it('a caller without a signal keeps the execution alive', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    const a = new AbortController();
    const aborting = flight.run('k', work.fn, a.signal);
    const pinned = flight.run('k', work.fn);
    a.abort();
    await expect(aborting).rejects.toBeInstanceOf(Cancelled);
    expect(work.seen.signal!.aborted).toBe(false);
    work.resolve('kept');
    await expect(pinned).resolves.toBe('kept');
  });

  it('shares a failure with the waiting callers but does not cache it', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    const first = flight.run('k', work.fn);
    const second = flight.run('k', work.fn);
    const error = new StorageUnavailable('boom');
    work.reject(error);
    await expect(first).rejects.toBe(error);
    await expect(second).rejects.toBe(error);
    expect(flight.has('k')).toBe(false);
    let calls = 0;
    await expect(flight.run('k', async () => `ok ${++calls}`)).resolves.toBe('ok 1');
  });

  it('refuses a caller whose signal has already fired without running anything', async () => {
    const flight = new SharedFlight<string, string>();
    const work = controllable<string>();
    await expect(flight.run('k', work.fn, AbortSignal.abort())).rejects.toBeInstanceOf(Cancelled);
    expect(work.seen.calls).toBe(0);
    expect(flight.inFlight).toBe(0);
  });

  it('treats a synchronous throw like a failure and forgets the key', async () => {
    const flight = new SharedFlight<string, string>();
    const error = new StorageUnavailable('sync');
    await expect(
      flight.run('k', () => {
        throw error;
      }),
    ).rejects.toBe(error);
    expect(flight.has('k')).toBe(false);
  });

  it('forgets the key before any waiter sees the result', async () => {
    const flight = new SharedFlight<string, string>();
    const value = await flight.run('k', async () => 'v');
    expect(value).toBe('v');
    expect(flight.has('k')).toBe(false);
  });
});

describe('SharedTask', () => {
  it('counts its waiters and runs onEnd exactly once', async () => {
    let ended = 0;
    const work = controllable<number>();
    const task = new SharedTask(work.fn, () => ended++);
    const a = new AbortController();
    const joined = task.join(a.signal);
    expect(task.waiting).toBe(1);
    a.abort();
    await expect(joined).rejects.toBeInstanceOf(Cancelled);
    expect(task.abandoned).toBe(true);
    expect(ended).toBe(1);
    work.resolve(1);
    await settle();
    expect(ended).toBe(1);
  });
});
