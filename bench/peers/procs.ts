// Small process helpers for the peers: find an executable, a free TCP port, a child's RSS and
// CPU time, the machine's busy CPU time, waiting for a TCP port to accept connections (or the
// child to die first), and stopping a child.

import { spawnSync, type ChildProcess } from 'node:child_process';
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

/** Resolves once `child` listens on 127.0.0.1:`port`; rejects if it exits first. */
export async function untilListening(child: ChildProcess, port: number, what: string): Promise<void> {
  let onExit: (code: number | null, signal: string | null) => void = () => {};
  const died = new Promise<never>((_, reject) => {
    onExit = (code, signal) => reject(new Error(`${what} exited (${code ?? signal}) before listening`));
    child.once('exit', onExit);
  });
  try {
    // 30 s: a tsx-compiled server on a loaded 2-core machine can take over 10 s to listen.
    await Promise.race([waitForPort(port, 30_000), died]);
  } finally {
    child.off('exit', onExit);
  }
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the child has exited (at once if it has). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
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

/** The ids of a process's children (Linux /proc), none when it is gone. */
export async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Linux reports CPU times in USER_HZ ticks, 100 per second on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system, all threads) a process has used so far (Linux /proc), NaN when it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has been busy (every core, every process; not idle, iowait or steal). */
export async function machineBusySeconds(): Promise<number> {
  const [cpu] = (await readFile('/proc/stat', 'utf8')).split('\n');
  const [user, nice, system, , , irq, softirq] = cpu.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) / TICKS_PER_SECOND;
}
