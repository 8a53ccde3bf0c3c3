// The benchmarks' side of the stores: forks bench/store-process.ts (s3rver, fault proxy, range
// server on 127.0.0.1), and builds our real storage backends over them and over the local file,
// each reporting to a `ReadStats` so every benchmark can count the requests and bytes it caused.

import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReadStats } from '../src/io/stats.js';
import { HttpStorage } from '../src/storage/http.js';
import { LocalStorage } from '../src/storage/local.js';
import { S3Storage } from '../src/storage/s3.js';
import type { ByteSource, Storage } from '../src/storage/types.js';

export const BENCH_BUCKET = 'bench';
/** s3rver's fixed credentials (test/support/s3-server.ts). */
const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface StoreEndpoints {
  /** s3rver itself, no added latency. */
  s3Direct: string;
  /** The fault proxy in front of s3rver; its per-request delay is set with `setLatency`. */
  s3Proxied: string;
  /** The range server over the directory of the benchmarked file, `http://127.0.0.1:PORT/`. */
  http: string;
}

/** Requests each store has received since it started (every method, setup included). */
export interface StoreCounts {
  s3: number;
  proxy: number;
  http: number;
}

export type StoreRequest = { op: 'latency'; ms: number } | { op: 'counts' } | { op: 'close' };
export type StoreCommand = StoreRequest & { id: number };

type StoreReply = { ready: StoreEndpoints } | { id: number; result?: unknown; error?: string };

export type BackendName = 'local' | 's3' | 's3+latency' | 'http';

/** One opened object on one backend, with the statistics of every request its storage sent. */
export interface OpenedObject {
  backend: BackendName;
  storage: Storage;
  source: ByteSource;
  stats: ReadStats;
}

export class BenchStores {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly opened: Storage[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly endpoints: StoreEndpoints,
    /** Absolute path of the benchmarked file; its key is its base name on every backend. */
    readonly file: string,
  ) {
    child.on('message', (reply: StoreReply) => {
      if (!('id' in reply)) return;
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.error !== undefined) waiter?.reject(new Error(`store process: ${reply.error}`));
      else waiter?.resolve(reply.result);
    });
    child.on('exit', (code, signal) => {
      for (const waiter of this.waiting.values())
        waiter.reject(new Error(`store process ended (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  /** Starts the store process with `file` uploaded to s3rver and served by the range server. */
  static async start(file: string): Promise<BenchStores> {
    const script = fileURLToPath(new URL('./store-process.ts', import.meta.url));
    const child = fork(script, [file, BENCH_BUCKET], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const endpoints = await new Promise<StoreEndpoints>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) =>
        reject(new Error(`store process exited with ${code} before it was ready`)),
      );
      child.once('message', (reply: StoreReply) => {
        if ('ready' in reply) resolve(reply.ready);
        else reject(new Error('store process answered before it was ready'));
      });
    });
    child.removeAllListeners('exit');
    return new BenchStores(child, endpoints, file);
  }

  get key(): string {
    return path.basename(this.file);
  }

  /** Per-request delay the fault proxy adds before forwarding to s3rver (the `s3+latency` backend). */
  async setLatency(ms: number): Promise<void> {
    await this.command({ op: 'latency', ms });
  }

  async counts(): Promise<StoreCounts> {
    return (await this.command({ op: 'counts' })) as StoreCounts;
  }

  /** Requests the store behind `backend` has received so far; undefined for local disk. */
  async requestsSeen(backend: BackendName): Promise<number | undefined> {
    if (backend === 'local') return undefined;
    const counts = await this.counts();
    return backend === 's3' ? counts.s3 : backend === 's3+latency' ? counts.proxy : counts.http;
  }

  /** Opens the benchmarked file on `backend` through a fresh storage that reports to its own stats. */
  async open(backend: BackendName): Promise<OpenedObject> {
    const stats = new ReadStats({ maxKeys: 0 });
    const storage = this.storage(backend, stats);
    this.opened.push(storage);
    const source = await storage.open(this.key);
    return { backend, storage, source, stats };
  }

  async close(): Promise<void> {
    await Promise.all(this.opened.map((storage) => storage.close()));
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    // A store that does not exit within 5 s of being asked to is stopped.
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 5000);
    if (this.child.connected) await this.command({ op: 'close' }).catch(() => undefined);
    await exited;
    clearTimeout(timer);
  }

  private storage(backend: BackendName, observer: ReadStats): Storage {
    switch (backend) {
      case 'local':
        return new LocalStorage({ root: path.dirname(this.file), observer });
      case 'http':
        return new HttpStorage({ baseUrl: this.endpoints.http, observer });
      case 's3':
      case 's3+latency':
        return new S3Storage({
          bucket: BENCH_BUCKET,
          endpoint: backend === 's3' ? this.endpoints.s3Direct : this.endpoints.s3Proxied,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: S3RVER_CREDENTIALS,
          observer,
        });
    }
  }

  private command(command: StoreRequest): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ ...command, id });
    });
  }
}
