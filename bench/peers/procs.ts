// Small process helpers for the peers: find an executable, a free TCP port, a child's RSS, and
// waiting for a TCP port to accept connections.

import { spawnSync } from 'node:child_process';
import { access, constants, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/** The first of `candidates` that is an executable file (absolute, or found on PATH). */
export async function findExecutable(...candidates: string[]): Promise<string | undefined> {
  for (const candidate of candidates) {
    const dirs = candidate.includes('/') ? [''] : (process.env.PATH ?? '').split(':');
    for (const dir of dirs) {
      const file = dir === '' ? candidate : path.join(dir, candidate);
      if (
        await access(file, constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return file;
    }
  }
  return undefined;
}

/** True when `python -c code` exits 0 (e.g. `import openslide`). */
export function pythonCan(python: string, code: string): boolean {
  return spawnSync(python, ['-c', code], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:`port` accepts a connection; throws after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resident set size of a process in MiB (Linux /proc), NaN when it is gone. */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}
