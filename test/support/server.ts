// Starts a real MedStream server (the same `startServer` the CLI uses) on 127.0.0.1 with a
// free port, over any storage URL, for route tests: `const s = await startTestServer(dir)`,
// then `fetch(s.url + '/slides/...')`, and `await s.close()`.

import { parseConfig } from '../../src/cli/config.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';

export async function startTestServer(storage: string, flags: string[] = []): Promise<RunningServer> {
  const { config } = parseConfig(
    [storage, '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', ...flags],
    {},
  );
  return startServer(config);
}

/** GET (or another method) and read the body as bytes. */
export async function request(
  server: RunningServer,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; body: Buffer; json: () => unknown }> {
  const res = await fetch(server.url + path, init);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}
