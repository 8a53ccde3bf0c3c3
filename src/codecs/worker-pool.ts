// A small pool of worker threads for decoders that would otherwise block the event loop (the
// OpenJPEG WASM build runs synchronously). Workers start on first use, one task each at a time;
// the queue is bounded (excess work fails fast as `overloaded`), a task that runs too long gets
// its worker killed and replaced, and a crashed worker fails only its own task.
//
//   run(request) -> queue -> idle worker -> postMessage -> 'message' -> resolve
//
// A worker script posts `{ ready: true }` once it has loaded (WASM compiled, listener attached);
// a task's time limit runs from then, so a slow worker start is never mistaken for a stuck decode.

import { Worker } from 'node:worker_threads';
import { Cancelled, DecodeError, MedStreamError, UnsupportedFormat, throwIfAborted } from '../errors.js';

export interface WorkerPoolOptions {
  /** Worker script: compiled `.js`, or `.ts` source (then run through tsx, for tests and tsx). */
  script: URL;
  /** Workers at most. */
  size: number;
  /** Tasks waiting for a worker at most; beyond this `run` rejects with code `overloaded`. */
  maxQueue: number;
  /** A task running longer than this kills its worker and fails with `DecodeError`. */
  taskTimeoutMs: number;
  /** Thread name (shows in diagnostics). */
  name: string;
}

/** A pool's size and backlog, for /metrics. */
export interface WorkerPoolStats {
  name: string;
  workers: number;
  busy: number;
  queued: number;
}

/** What a worker posts back for one task. */
export type WorkerReply<Result> =
  | { ready: true }
  | { id: number; ok: true; result: Result }
  | { id: number; ok: false; error: { code: 'decode_error' | 'unsupported_format'; message: string } };

interface Task<Result> {
  id: number;
  request: unknown;
  transfer: ArrayBuffer[];
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

interface Slot<Result> {
  worker: Worker;
  task: Task<Result> | undefined;
  /** The worker script has posted `{ ready: true }`. */
  ready: boolean;
}

export class WorkerPool<Request, Result> {
  private readonly options: WorkerPoolOptions;
  private readonly slots = new Set<Slot<Result>>();
  private readonly queue: Task<Result>[] = [];
  private nextId = 1;
  private closed = false;

  constructor(options: WorkerPoolOptions) {
    if (!(options.size >= 1)) throw new RangeError('worker pool size must be at least 1');
    this.options = options;
  }

  /** Workers currently started (for tests and metrics). */
  get workerCount(): number {
    return this.slots.size;
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  stats(): WorkerPoolStats {
    const busy = [...this.slots].filter((slot) => slot.task !== undefined).length;
    return { name: this.options.name, workers: this.slots.size, busy, queued: this.queue.length };
  }

  /** Runs one task; `transfer` buffers move to the worker (the caller must not use them again). */
  run(request: Request, transfer: ArrayBuffer[] = [], signal?: AbortSignal): Promise<Result> {
    if (this.closed) return Promise.reject(new Cancelled('codec worker pool is closed'));
    try {
      throwIfAborted(signal);
    } catch (e) {
      return Promise.reject(e);
    }
    // The queue only ever holds tasks that found every worker busy (dispatch is synchronous).
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(
        new MedStreamError(
          'overloaded',
          `${this.options.name}: ${this.queue.length} decodes already queued`,
          {
            retryable: true,
          },
        ),
      );
    }
    return new Promise<Result>((resolve, reject) => {
      const task: Task<Result> = {
        id: this.nextId++,
        request,
        transfer,
        resolve,
        reject,
        signal,
        onAbort: undefined,
        timer: undefined,
        settled: false,
      };
      if (signal) {
        task.onAbort = () => {
          const index = this.queue.indexOf(task);
          if (index >= 0) this.queue.splice(index, 1);
          // A running WASM decode cannot be interrupted; its result is dropped when it arrives.
          // Its time limit still holds its worker, so a stuck one is replaced, not kept busy forever.
          this.settle(task, new Cancelled(undefined, { cause: signal.reason }), undefined, index < 0);
        };
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.dispatch();
    });
  }

  /** Stops every worker; queued and running tasks reject with `Cancelled`. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) this.settle(task, new Cancelled('codec worker pool is closed'));
    const exits: Promise<number>[] = [];
    for (const slot of this.slots) {
      if (slot.task) this.settle(slot.task, new Cancelled('codec worker pool is closed'));
      exits.push(slot.worker.terminate());
    }
    this.slots.clear();
    await Promise.all(exits);
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = [...this.slots].find((s) => s.task === undefined);
      if (!slot) {
        if (this.slots.size >= this.options.size) return;
        slot = this.startWorker();
      }
      const task = this.queue.shift() as Task<Result>;
      slot.task = task;
      slot.worker.ref();
      if (slot.ready) this.armTimer(slot);
      try {
        slot.worker.postMessage({ id: task.id, request: task.request }, task.transfer);
      } catch (e) {
        this.settle(
          task,
          new DecodeError(`${this.options.name}: could not hand the task over`, { cause: e }),
        );
        this.release(slot);
      }
    }
  }

  /** Starts the running task's time limit; on expiry the worker may be stuck, so it is replaced. */
  private armTimer(slot: Slot<Result>): void {
    const task = slot.task;
    if (!task || task.timer) return;
    task.timer = setTimeout(() => {
      this.settle(
        task,
        new DecodeError(`${this.options.name}: decode took longer than ${this.options.taskTimeoutMs} ms`),
      );
      void slot.worker.terminate();
    }, this.options.taskTimeoutMs);
  }

  private startWorker(): Slot<Result> {
    const { script, name } = this.options;
    const worker = script.pathname.endsWith('.ts')
      ? new Worker(sourceBootstrap(script), { name, eval: true })
      : new Worker(script, { name });
    worker.unref();
    const slot: Slot<Result> = { worker, task: undefined, ready: false };
    this.slots.add(slot);
    worker.on('message', (reply: WorkerReply<Result>) => {
      if ('ready' in reply) {
        slot.ready = true;
        this.armTimer(slot);
        return;
      }
      const task = slot.task;
      if (!task || task.id !== reply.id) return;
      if (task.timer) clearTimeout(task.timer);
      if (reply.ok) this.settle(task, undefined, reply.result);
      else if (reply.error.code === 'unsupported_format')
        this.settle(task, new UnsupportedFormat(reply.error.message));
      else this.settle(task, new DecodeError(reply.error.message));
      this.release(slot);
    });
    worker.on('error', (error) => {
      if (slot.task)
        this.settle(slot.task, new DecodeError(`${name}: worker failed: ${error.message}`, { cause: error }));
    });
    worker.on('exit', () => {
      this.slots.delete(slot);
      if (slot.task?.timer) clearTimeout(slot.task.timer);
      if (slot.task) this.settle(slot.task, new DecodeError(`${name}: worker exited during a decode`));
      slot.task = undefined;
      this.dispatch();
    });
    return slot;
  }

  private release(slot: Slot<Result>): void {
    slot.task = undefined;
    slot.worker.unref();
    this.dispatch();
  }

  /** `keepTimer`: the task was given up on while its worker still runs it (see `run`). */
  private settle(task: Task<Result>, error: unknown, result?: Result, keepTimer = false): void {
    if (task.settled) return;
    task.settled = true;
    if (task.timer && !keepTimer) clearTimeout(task.timer);
    if (task.signal && task.onAbort) task.signal.removeEventListener('abort', task.onAbort);
    if (error === undefined) task.resolve(result as Result);
    else task.reject(error);
  }
}

/**
 * Worker code that loads a `.ts` worker script through tsx. Only Vitest and `tsx` runs get here
 * (compiled workers are `.js`); Node 20 does not apply `--import tsx` inside worker threads, so
 * the loader is registered from within the worker before the script is imported.
 */
function sourceBootstrap(script: URL): string {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`;
}
