// Starts a real MedStream server (the same `startServer` the CLI uses) on 127.0.0.1 with a
// free port, over any storage URL, for route tests: `const s = await startTestServer(dir)`,
// then `fetch(s.url + '/slides/...')`, and `await s.close()`. Its local state (the catalog)
// lives in a temporary --data-dir, and it does not index the storage at start unless the test
// says so (`--index-at-start`): the background scan would add storage reads to what tests count.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/cli/config.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';

/** The flags every test server gets unless the test gives its own. */
export async function testServerDefaults(
  flags: readonly string[],
): Promise<{ flags: string[]; cleanup(): Promise<void> }> {
  const extra: string[] = [];
  let dataDir: string | undefined;
  if (!flags.includes('--data-dir')) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-data-'));
    extra.push('--data-dir', dataDir);
  }
  if (!flags.some((f) => f.endsWith('index-at-start'))) extra.push('--no-index-at-start');
  return {
    flags: [...extra, ...flags],
    cleanup: async () => {
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function startTestServer(storage: string, flags: string[] = []): Promise<RunningServer> {
  const defaults = await testServerDefaults(flags);
  const { config } = parseConfig(
    [storage, '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', ...defaults.flags],
    {},
  );
  let server: RunningServer;
  try {
    server = await startServer(config);
  } catch (e) {
    await defaults.cleanup();
    throw e;
  }
  return {
    ...server,
    async close() {
      await server.close();
      await defaults.cleanup();
    },
  };
}

/** A test server whose storage is indexed into its catalog before it is handed out. */
export async function startIndexedServer(storage: string, flags: string[] = []): Promise<RunningServer> {
  const server = await startTestServer(storage, ['--index-interval', '0', ...flags]);
  const res = await request(server, '/admin/reindex?wait=true', { method: 'POST' });
  if (res.status !== 200) {
    await server.close();
    throw new Error(`indexing failed: ${res.status} ${res.body.toString()}`);
  }
  return server;
}

/** GET (or another method) and read the body as bytes. */
export async function request(
  server: { url: string },
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; body: Buffer; json: () => unknown }> {
  const res = await fetch(server.url + path, init);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

/** The value of one sample in `/metrics`, e.g. `medstream_redis_hits_total` or `name{kind="read"}`. */
export async function metric(
  server: { url: string },
  sample: string,
  init: RequestInit = {},
): Promise<number> {
  const text = (await request(server, '/metrics', init)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`no metric ${sample}`);
  return Number(line.slice(sample.length + 1));
}

/** Polls `condition` every 20 ms until it holds; throws after `ms`. */
export async function until(condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
