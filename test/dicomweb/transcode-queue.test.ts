// The bounded transcode queue: with one decoder worker and a queue of 2, a burst of concurrent
// JPEG 2000 transcodes (the fixture CT, 512x512) answers each request either with the right
// pixels or with 503 overloaded + Retry-After — never a crash — and the server serves on after.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startIndexedServer } from '../support/server.js';
import { dicomwebClient, value } from './client.js';

let server: RunningServer;
let urls: string[];

beforeAll(async () => {
  server = await startIndexedServer(fixture('volumes/ct-dicom-j2k'), [
    '--decode-workers',
    '1',
    '--transcode-queue',
    '2',
  ]);
  const client = dicomwebClient(server.url + '/dicomweb');
  const instances = await client.searchForInstances({ queryParams: { Modality: 'CT' } });
  urls = instances.map(
    (i) =>
      `/dicomweb/studies/${value(i, '0020000D')}/series/${value(i, '0020000E')}/instances/${value(i, '00080018')}/frames/1`,
  );
});

afterAll(async () => {
  await server?.close();
});

describe('transcode queue', () => {
  it('answers a burst of concurrent transcodes with pixels or 503 + Retry-After, and serves on', async () => {
    expect(urls).toHaveLength(20);
    const accept = { headers: { Accept: 'application/octet-stream' } };
    const burst = await Promise.all([...urls, ...urls].map((u) => request(server, u, accept)));
    const ok = burst.filter((r) => r.status === 200);
    const refused = burst.filter((r) => r.status === 503);
    expect(ok.length + refused.length).toBe(40);
    expect(ok.length).toBeGreaterThanOrEqual(3); // one decoding, two queued at least
    expect(refused.length).toBeGreaterThan(0);
    for (const r of ok) expect(r.body.length).toBe(512 * 512 * 2);
    for (const r of refused) {
      expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
      expect((r.json() as { error: string }).error).toBe('overloaded');
    }
    // The process is alive and transcodes again once the burst is over.
    const after = await request(server, urls[0], accept);
    expect(after.status).toBe(200);
    expect(after.body.length).toBe(512 * 512 * 2);
    if (burst[0].status === 200) expect(after.body.equals(burst[0].body)).toBe(true);
  });
});
