// The host side of one model's worker thread (inference-worker.ts): loads the model there, runs
// batches and keeps count of ONNX Runtime `run` calls. A worker that dies fails its pending calls
// and is started again (and the model reloaded) on the next batch.

import { Worker } from 'node:worker_threads';
import { MedStreamError } from '../errors.js';
import type { TensorInfo, WorkerReply, WorkerRequest } from './worker-protocol.js';

export interface ModelGraph {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
}

interface Pending {
  resolve: (reply: Extract<WorkerReply, { ok: true }>) => void;
  reject: (e: unknown) => void;
}

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

export class ModelWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** `session.run` calls made, as counted by the worker itself (the last one's count). */
  runs = 0;
  private runsBefore = 0;
  /** Resolves `close()` when the last pending call settles. */
  private idle: (() => void) | undefined;

  constructor(
    private readonly modelPath: string,
    private readonly intraOpThreads: number,
    private readonly label: string,
  ) {}

  /** Starts the worker and loads the model; resolves with the graph's inputs and outputs. */
  async load(): Promise<ModelGraph> {
    const reply = await this.call({
      kind: 'load',
      path: this.modelPath,
      intraOpThreads: this.intraOpThreads,
    });
    if (!reply.loaded) throw new Error('worker did not describe the model');
    return reply.loaded;
  }

  /** One `session.run` over a whole batch. The input buffer moves to the worker. */
  async run(
    input: string,
    output: string,
    data: Float32Array,
    dims: number[],
  ): Promise<{ data: Float32Array; dims: number[] }> {
    if (!this.worker) await this.load();
    const reply = await this.call({ kind: 'run', input, output, data, dims }, [data.buffer as ArrayBuffer]);
    if (reply.runs !== undefined) this.runs = this.runsBefore + reply.runs;
    if (!reply.output) throw new Error('worker returned no output');
    return reply.output;
  }

  /**
   * Stops the worker once its running batch (if any) has finished: terminating a thread while
   * onnxruntime-node runs a session aborts the whole process ("terminate called after throwing
   * an instance of 'Napi::Error'"), so a batch is never cut short. New calls are refused at once.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending.size > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private call(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.closed) return Promise.reject(new MedStreamError('cancelled', `model ${this.label} is closed`));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...body, id }, transfer);
    });
  }

  private start(): Worker {
    const script = workerScript();
    const worker = script.pathname.endsWith('.ts')
      ? new Worker(sourceBootstrap(script), { eval: true, name: `model ${this.label}` })
      : new Worker(script, { name: `model ${this.label}` });
    worker.unref();
    this.worker = worker;
    worker.on('message', (reply: WorkerReply) => {
      if ('ready' in reply) return;
      const pending = this.pending.get(reply.id);
      if (!pending) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) pending.resolve(reply);
      else pending.reject(new MedStreamError('internal_error', `model ${this.label}: ${reply.message}`));
      if (this.pending.size === 0) this.idle?.();
    });
    const fail = (why: string) => {
      if (this.worker === worker) {
        this.worker = undefined;
        this.runsBefore = this.runs;
      }
      for (const p of this.pending.values())
        p.reject(new MedStreamError('internal_error', `model ${this.label}: ${why}`));
      this.pending.clear();
      this.idle?.();
    };
    worker.on('error', (e) => fail(`worker failed: ${e.message}`));
    worker.on('exit', () => fail('worker exited'));
    return worker;
  }
}

function workerScript(): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./inference-worker${extension}`, self);
}

/**
 * Worker code that loads the `.ts` worker through tsx (Vitest and tsx runs only; compiled workers
 * are `.js`): Node 20 does not apply `--import tsx` inside worker threads.
 */
function sourceBootstrap(script: URL): string {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`;
}
