// One execution shared by every caller that wants the same result at the same time
// ("singleflight"), with reference-counted cancellation: the execution has its own AbortSignal,
// fired only once *every* waiting caller has given up, while a caller that gives up is answered
// `Cancelled` at once. A client hanging up thus never breaks another client's read, and a read
// nobody wants any more stops costing bandwidth.
//
//   caller A --join(signalA)--\
//   caller B --join(signalB)---> SharedTask --fn(ownSignal)--> storage
//   caller C --join()---------/   (ownSignal fires when A, B and C have all aborted;
//                                  C has no signal, so here: never)

import { Cancelled, throwIfAborted } from '../errors.js';

/** One running execution of `fn` that any number of callers can wait on. */
export class SharedTask<T> {
  readonly promise: Promise<T>;
  private readonly controller = new AbortController();
  private waiters = 0;
  private settled = false;
  private ended = false;
  private readonly onEnd: (() => void) | undefined;

  /**
   * Starts `fn` at once. `onEnd` runs exactly once: synchronously when the last waiter aborts
   * (so the owner can forget the task before anyone else joins it), or else as soon as `fn`
   * settles, before any waiter sees the outcome.
   */
  constructor(fn: (signal: AbortSignal) => Promise<T>, onEnd?: () => void) {
    this.onEnd = onEnd;
    this.promise = this.execute(fn);
    // Waiters handle the outcome; this only keeps a task whose waiters all left from reporting
    // an unhandled rejection when its aborted fetch fails.
    this.promise.catch(noop);
  }

  /** Whether the shared execution was aborted because every waiter left. */
  get abandoned(): boolean {
    return this.controller.signal.aborted;
  }

  /** Number of callers still waiting (callers without a signal count forever). */
  get waiting(): number {
    return this.waiters;
  }

  /**
   * Waits for the shared result. Rejects with `Cancelled` as soon as `signal` fires, without
   * disturbing the other waiters. A caller without a signal can never leave, so it pins the
   * execution until it settles.
   */
  join(signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new Cancelled(undefined, { cause: signal.reason }));
    this.waiters++;
    if (signal === undefined || this.settled) return this.promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        reject(new Cancelled(undefined, { cause: signal.reason }));
        this.leave();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  private async execute(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    let running: Promise<T>;
    try {
      running = fn(this.controller.signal);
    } catch (e) {
      // A synchronous throw must still settle after the constructor returns, like any other
      // failure, so that `onEnd` never runs before the owner has registered the task.
      running = Promise.reject(e);
    }
    try {
      return await running;
    } finally {
      this.settled = true;
      this.end();
    }
  }

  private leave(): void {
    this.waiters--;
    if (this.waiters > 0 || this.settled) return;
    this.controller.abort(new Cancelled('every caller of a shared read cancelled'));
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd?.();
  }
}

export interface SharedFlightStats {
  /** Executions started. */
  started: number;
  /** Calls that waited on an execution another call had started. */
  joined: number;
  /** Executions running now. */
  inFlight: number;
}

/**
 * Keyed singleflight: concurrent `run`s with the same key share one execution of the first
 * caller's `fn`. The key is forgotten as soon as the execution settles or is abandoned, so
 * failures are shared with the callers waiting at that moment but never remembered.
 */
export class SharedFlight<K, T> {
  private readonly tasks = new Map<K, SharedTask<T>>();
  started = 0;
  joined = 0;

  run(key: K, fn: (signal: AbortSignal) => Promise<T>, callerSignal?: AbortSignal): Promise<T> {
    try {
      throwIfAborted(callerSignal);
    } catch (e) {
      return Promise.reject(e);
    }
    let task = this.tasks.get(key);
    if (task === undefined) {
      this.started++;
      const created: SharedTask<T> = new SharedTask(fn, () => {
        if (this.tasks.get(key) === created) this.tasks.delete(key);
      });
      task = created;
      this.tasks.set(key, task);
    } else {
      this.joined++;
    }
    return task.join(callerSignal);
  }

  /** Whether an execution for `key` is running. */
  has(key: K): boolean {
    return this.tasks.has(key);
  }

  get inFlight(): number {
    return this.tasks.size;
  }

  stats(): SharedFlightStats {
    return { started: this.started, joined: this.joined, inFlight: this.tasks.size };
  }
}

function noop(): void {}
