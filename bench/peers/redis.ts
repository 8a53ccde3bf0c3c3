// A real Debian `redis-server` as the shared tile cache of the `replicas` suite: on a free
// 127.0.0.1 port, in a temp dir, without persistence (no RDB, no AOF) and with a bounded LRU
// memory (`--maxmemory`, `allkeys-lru`: the settings docs/deploy.md recommends). `flushAll()`
// empties it between runs that must compute every image; `close()` stops it and removes the
// dir. (test/support/redis-server.ts is the tests' own, with fault injection; bench code does
// not import from test/.)
//
//   apt-get install -y redis-server

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { findExecutable, freePort, rssMiB, stopChild, untilListening } from './procs.js';

export const REDIS_INSTALL = 'apt-get install -y redis-server';

export async function findRedisServer(): Promise<string | undefined> {
  return findExecutable('redis-server', '/usr/bin/redis-server');
}

export class RedisServer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly client: Redis,
    readonly url: string,
  ) {}

  static async start(binary: string, maxmemory = '256mb'): Promise<RedisServer> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-redis-'));
    let child: ChildProcess | undefined;
    try {
      const port = await freePort();
      child = spawn(
        binary,
        [
          ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
          ...['--save', '', '--appendonly', 'no'],
          ...['--maxmemory', maxmemory, '--maxmemory-policy', 'allkeys-lru'],
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      await untilListening(child, port, 'redis-server');
      const url = `redis://127.0.0.1:${port}/0`;
      return new RedisServer(child, dir, new Redis(url, { maxRetriesPerRequest: 1 }), url);
    } catch (e) {
      if (child) await stopChild(child);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  async flushAll(): Promise<void> {
    await this.client.flushall();
  }

  async rssMiB(): Promise<number> {
    return rssMiB(this.pid);
  }

  async close(): Promise<void> {
    this.client.disconnect();
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}
