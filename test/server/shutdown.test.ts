// Graceful shutdown: closing the server finishes the requests in flight, closes idle and
// never-used connections at once (a pre-connected socket must not hold the drain for the 60 s
// headers timeout), and cuts everything off at --shutdown-timeout.
import { copyFile, mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture } from '../support/fixtures.js';
import { startTestServer } from '../support/server.js';

async function slideDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-shutdown-'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'CMU.svs'));
  return dir;
}

function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('shutdown', () => {
  it('closes at once despite an idle, never-used connection', async () => {
    const server = await startTestServer(await slideDir(), ['--shutdown-timeout', '30s']);
    const idle = await connect(server.url);
    const closed = new Promise((resolve) => idle.once('close', resolve));
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(3000);
    await closed;
  });

  it('finishes a request in flight before closing', async () => {
    const server = await startTestServer(await slideDir(), [
      '--shutdown-timeout',
      '30s',
      '--cache-tiles',
      '0',
    ]);
    // A large region (decode + PNG encode of ~2 Mpx) is still running when close() is called.
    const inFlight = fetch(`${server.url}/slides/CMU.svs/region?x=0&y=0&width=2000&height=1000&level=0`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const closing = server.close();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    await closing;
  });
});
