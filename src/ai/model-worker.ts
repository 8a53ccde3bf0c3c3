// The host side of one model's session (inference-session.ts): in a worker thread, or — when the
// model has a batch time limit — in a child process, since a thread cannot be stopped inside
// onnxruntime-node's `run` without aborting the server. Loads the model there, runs batches and
// keeps count of ONNX Runtime `run` calls. A batch past the time limit fails with `model_timeout`
// and the process is killed and started again (the model reloaded) at once; a worker that dies
// fails its pending calls and is started again on the next batch.

import { fork } from 'node:child_process';
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

/** A batch that ran longer than its model's time limit (HTTP 504). */
export class ModelTimeout extends MedStreamError {
  constructor(message: string) {
    super('model_timeout', message);
  }
}

/** A worker thread or a child process, seen the same way. */
interface Endpoint {
  send(message: WorkerRequest, transfer: ArrayBuffer[]): void;
  ref(): void;
  unref(): void;
  /** Stops it now (a thread is terminated, a process killed). */
  stop(): Promise<void>;
  /** The process id (child processes only). */
  pid?: number;
}

export interface ModelWorkerOptions {
  /** Longest one batch may run, in ms; 0 = no limit (a worker thread). */
  timeoutMs?: number;
}

export class ModelWorker {
  private endpoint: Endpoint | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** `session.run` calls made, as counted by the worker itself (the last one's count). */
  runs = 0;
  private runsBefore = 0;
  /** Processes started again after a batch ran past the time limit. */
  restarts = 0;
  /** Resolves `close()` when the last pending call settles. */
  private idle: (() => void) | undefined;
  /** The latest model load (the first, or a restart's). */
  private loading: Promise<ModelGraph> | undefined;
  readonly timeoutMs: number;

  constructor(
    private readonly modelPath: string,
    private readonly intraOpThreads: number,
    private readonly label: string,
    options: ModelWorkerOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 0;
  }

  /** The child process's id (models with a time limit), for tests and logs. */
  get pid(): number | undefined {
    return this.endpoint?.pid;
  }

  /** Starts the worker and loads the model; resolves with the graph's inputs and outputs. */
  load(): Promise<ModelGraph> {
    const loading = this.call({
      kind: 'load',
      path: this.modelPath,
      intraOpThreads: this.intraOpThreads,
    }).then((reply) => {
      if (!reply.loaded) throw new Error('worker did not describe the model');
      return reply.loaded;
    });
    this.loading = loading;
    return loading;
  }

  /** One `session.run` over a whole batch. The input buffer moves to the worker. */
  async run(
    input: string,
    output: string,
    data: Float32Array,
    dims: number[],
  ): Promise<{ data: Float32Array; dims: number[] }> {
    // A batch's time starts once the model is loaded (a restarted process loads it first).
    if (!this.endpoint) await this.load();
    else await this.loading?.catch(() => undefined);
    const reply = await this.call(
      { kind: 'run', input, output, data, dims },
      [data.buffer as ArrayBuffer],
      true,
    );
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
    const endpoint = this.endpoint;
    this.endpoint = undefined;
    if (endpoint) await endpoint.stop();
  }

  private call(
    body: RequestBody,
    transfer: ArrayBuffer[] = [],
    limited = false,
  ): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.closed) return Promise.reject(new MedStreamError('cancelled', `model ${this.label} is closed`));
    const endpoint = this.endpoint ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = () => clearTimeout(timer);
      this.pending.set(id, {
        resolve: (r) => (settle(), resolve(r)),
        reject: (e) => (settle(), reject(e)),
      });
      if (limited && this.timeoutMs > 0) timer = setTimeout(() => this.timedOut(endpoint), this.timeoutMs);
      endpoint.ref();
      endpoint.send({ ...body, id } as WorkerRequest, transfer);
    });
  }

  /** A batch ran past the limit: fail what is pending, kill the process, start a fresh one. */
  private timedOut(endpoint: Endpoint): void {
    if (this.endpoint !== endpoint) return;
    this.failAll(
      endpoint,
      new ModelTimeout(`model ${this.label}: a batch ran longer than its limit of ${this.timeoutMs} ms`),
    );
    void endpoint.stop();
    this.restarts++;
    if (!this.closed) this.load().catch(() => undefined);
  }

  private failAll(endpoint: Endpoint, error: MedStreamError): void {
    // An endpoint already replaced (killed after a timeout) has nothing pending any more.
    if (this.endpoint !== endpoint) return;
    this.endpoint = undefined;
    this.runsBefore = this.runs;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.idle?.();
  }

  private start(): Endpoint {
    const onReply = (reply: WorkerReply) => {
      if ('ready' in reply) return;
      const pending = this.pending.get(reply.id);
      if (!pending) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) endpoint.unref();
      if (reply.ok) pending.resolve(reply);
      else pending.reject(new MedStreamError('internal_error', `model ${this.label}: ${reply.message}`));
      if (this.pending.size === 0) this.idle?.();
    };
    const onFail = (why: string) =>
      this.failAll(endpoint, new MedStreamError('internal_error', `model ${this.label}: ${why}`));
    const endpoint =
      this.timeoutMs > 0
        ? processEndpoint(this.label, onReply, onFail)
        : threadEndpoint(this.label, onReply, onFail);
    endpoint.unref();
    this.endpoint = endpoint;
    return endpoint;
  }
}

function threadEndpoint(
  label: string,
  onReply: (r: WorkerReply) => void,
  onFail: (why: string) => void,
): Endpoint {
  const script = script_('inference-worker');
  const worker = script.pathname.endsWith('.ts')
    ? new Worker(sourceBootstrap(script), { eval: true, name: `model ${label}` })
    : new Worker(script, { name: `model ${label}` });
  worker.on('message', onReply);
  worker.on('error', (e) => onFail(`worker failed: ${e.message}`));
  worker.on('exit', () => onFail('worker exited'));
  return {
    send: (message, transfer) => worker.postMessage(message, transfer),
    ref: () => worker.ref(),
    unref: () => worker.unref(),
    stop: async () => void (await worker.terminate()),
  };
}

function processEndpoint(
  label: string,
  onReply: (r: WorkerReply) => void,
  onFail: (why: string) => void,
): Endpoint {
  const script = script_('inference-process');
  const child = fork(script, [], {
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    // Sources under Vitest / tsx: load the .ts body through tsx.
    execArgv: script.pathname.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [],
  });
  child.on('message', (m) => onReply(m as WorkerReply));
  child.on('error', (e) => onFail(`model process failed: ${e.message}`));
  child.on('exit', (code, signal) => onFail(`model process ${label} exited (${signal ?? code})`));
  const channel = () => child.channel as unknown as { ref(): void; unref(): void } | undefined;
  return {
    send: (message) => {
      if (child.connected) child.send(message);
    },
    ref: () => (child.ref(), channel()?.ref()),
    unref: () => (child.unref(), channel()?.unref()),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
    pid: child.pid,
  };
}

function script_(name: string): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${extension}`, self);
}

/**
 * Worker code that loads the `.ts` worker through tsx (Vitest and tsx runs only; compiled workers
 * are `.js`): Node 20 does not apply `--import tsx` inside worker threads.
 */
function sourceBootstrap(script: URL): string {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`;
}
