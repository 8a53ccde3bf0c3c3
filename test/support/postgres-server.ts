// Starts a real Debian PostgreSQL 15 on a free 127.0.0.1 port in a temp directory for tests:
// `const pg = await startPostgres()`, then `pg.url` (a fresh database); `await pg.stop()` kills
// it and removes the directory. Tuned for a fast start (fsync off, no WAL archiving, small
// buffers); the unix socket lives in the temp directory, not in /var/run.
//
// PostgreSQL refuses to run as root, and the tests run as root in CI: initdb and postgres then
// run as the `postgres` OS user (setpriv), with the temp directory handed over to it.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp, rm, chmod } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** Debian's postgresql-15 package (.ci/run installs `postgresql`). */
export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';

const run = promisify(execFile);

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/medstream` */
  url: string;
  port: number;
  /** A URL for another, fresh database on the same server. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The command line, run as the `postgres` user when we are root. */
function asServerUser(command: string, args: string[]): [string, string[]] {
  // setpriv execs (no intermediate process), so signals reach postgres itself.
  return process.getuid?.() === 0
    ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args]]
    : [command, args];
}

async function ownerIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-postgres-'));
  const data = path.join(dir, 'data');
  const owner = await ownerIds();
  if (owner) await chown(dir, owner.uid, owner.gid);
  await chmod(dir, 0o700);
  const port = await freePort();
  try {
    const [initdb, initArgs] = asServerUser(path.join(POSTGRES_BIN, 'initdb'), [
      '-D',
      data,
      '--auth=trust',
      '--username=postgres',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    await run(initdb, initArgs, { timeout: 60_000 });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const [postgres, args] = asServerUser(path.join(POSTGRES_BIN, 'postgres'), [
    '-D',
    data,
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'shared_buffers=16MB',
    '-c',
    'max_connections=40',
    '-c',
    'logging_collector=off',
  ]);
  const child = spawn(postgres, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`postgres did not start within 30 s:\n${output}`)),
      30_000,
    );
    const check = () => {
      if (output.includes('ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`postgres exited (${code}) before it was ready:\n${output}`));
    });
  });
  const stop = async () => {
    // SIGINT: fast shutdown (SIGTERM's smart shutdown would wait for clients to leave).
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited(child);
    clearTimeout(timer);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await ready;
  } catch (e) {
    child.kill('SIGKILL');
    await exited(child);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const createDatabase = async (name: string): Promise<string> => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
    await run(path.join(POSTGRES_BIN, 'psql'), [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-U',
      'postgres',
      '-d',
      'postgres',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `CREATE DATABASE ${name}`,
    ]);
    return `postgres://postgres@127.0.0.1:${port}/${name}`;
  };
  try {
    const url = await createDatabase('medstream');
    return { url, port, createDatabase, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
