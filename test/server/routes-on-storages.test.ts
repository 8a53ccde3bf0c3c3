// Every image and metadata route on each real storage backend — a local directory, S3 (s3rver on
// 127.0.0.1) and an HTTP server honouring Range — answers the same status and the same bytes,
// and the typed errors are the same everywhere.
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { RangeServer } from '../support/range-server.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

const FILES: Record<string, string> = {
  'cases/CMU-1-Small-Region.svs': 'wsi/svs/CMU-1-Small-Region.svs',
  'pyramid-jpeg.tif': 'wsi/generated/pyramid-jpeg.tif',
  'tcga.svs': 'wsi/svs/tcga-cr-7395-01a-01-ts1.svs',
  'unopenable.tiff': 'wsi/openslide/unopenable.tiff',
  'unreadable.svs': 'wsi/openslide/unreadable.svs',
};
const CMU = encodeURIComponent('cases/CMU-1-Small-Region.svs');

/** [path, expected status, expected error code for non-2xx]. */
const ROUTES: [string, number, string?][] = [
  [`/slides/${CMU}`, 200],
  [`/tiles/${CMU}/0/3/4.jpg`, 200],
  [`/tiles/${CMU}/0/3/4.png`, 200],
  [`/tiles/${CMU}/2/1/1.webp?quality=70`, 200],
  ['/tiles/pyramid-jpeg.tif/1/2/2.jpg', 200],
  ['/tiles/tcga.svs/1/3/2.jpg', 200],
  [`/slides/${CMU}/thumbnail?max_size=200`, 200],
  [`/slides/${CMU}/associated/label.png`, 200],
  [`/slides/${CMU}/dzi`, 200],
  [`/slides/${CMU}/dzi_files/11/2_3.jpg`, 200],
  ['/slides/pyramid-jpeg.tif/dzi_files/12/1_1.jpg?tile_size=256&overlap=0', 200],
  [`/iiif/3/${CMU}/info.json`, 200],
  ['/iiif/3/pyramid-jpeg.tif/1024,1024,1024,1024/256,/0/default.jpg', 200],
  ['/iiif/3/tcga.svs/full/!300,300/90/gray.png', 200],
  [`/slides/${CMU}/region?x=900&y=1300&width=120&height=90&level=0&format=raw`, 200],
  ['/slides/pyramid-jpeg.tif/region?x=710&y=1182&width=64&height=64&level=1', 200],
  ['/slides/nope.svs', 404, 'not_found'],
  ['/tiles/nope.svs/0/0/0.jpg', 404, 'not_found'],
  ['/iiif/3/nope.svs/info.json', 404, 'not_found'],
  ['/slides/unopenable.tiff', 415, 'unsupported_format'],
  ['/tiles/unreadable.svs/0/0/0.png', 500, 'decode_error'],
  [`/tiles/${CMU}/9/0/0.jpg`, 400, 'invalid_level'],
  [`/tiles/${CMU}/0/99/0.jpg`, 400, 'tile_out_of_bounds'],
  [`/tiles/${CMU}/0/0/0.jpg?quality=101`, 400, 'invalid_quality'],
  [`/slides/${CMU}/dzi_files/99/0_0.jpg`, 400, 'invalid_level'],
  [`/iiif/3/${CMU}/full/max/0/default.gif`, 400, 'invalid_format'],
  [`/slides/${encodeURIComponent('../etc/passwd')}`, 400, 'invalid_id'],
];

type Answer = { status: number; body: Buffer; type: string | null };

describe.each(['local', 's3', 'http'] as const)('routes on %s storage', (kind) => {
  let server: RunningServer;
  /** For S3 and HTTP: a server on the same files in a local directory, the answers to match. */
  let reference: RunningServer | undefined;
  let s3: TestS3Server | undefined;
  let http: RangeServer | undefined;

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), `medstream-routes-${kind}-`));
    await mkdir(path.join(dir, 'cases'));
    for (const [key, file] of Object.entries(FILES)) await copyFile(fixture(file), path.join(dir, key));
    await writeFile(path.join(dir, 'notes.txt'), 'not a slide');
    let storage = dir;
    const flags: string[] = [];
    if (kind === 's3') {
      s3 = await startS3Server();
      await s3.createBucket('slides');
      for (const key of Object.keys(FILES)) await s3.upload('slides', `lab/${key}`, path.join(dir, key));
      storage = 's3://slides/lab';
      flags.push(...s3.medstreamFlags());
    } else if (kind === 'http') {
      http = await RangeServer.start({ root: dir });
      storage = http.url;
    }
    server = await startTestServer(storage, flags);
    if (kind !== 'local') reference = await startTestServer(dir);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await reference?.close();
    await s3?.close();
    await http?.close();
  });

  it.each(ROUTES)('GET %s → %i', async (route, status, code) => {
    const res = await request(server, route);
    expect(res.status).toBe(status);
    if (code) {
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.json()).toMatchObject({ error: code, status, message: expect.any(String) });
    }
  });

  it('HEAD answers the headers of GET without a body', async () => {
    const res = await request(server, `/tiles/${CMU}/0/1/1.jpg`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('etag')).toMatch(/^"/);
    expect(res.body.length).toBe(0);
  });

  if (kind !== 'local') {
    it('answers byte for byte what the local directory answers', async () => {
      const answer = async (from: RunningServer, route: string): Promise<Answer> => {
        const res = await request(from, route);
        return { status: res.status, body: res.body, type: res.headers.get('content-type') };
      };
      for (const [route, status] of ROUTES) {
        if (status !== 200) continue;
        const a = await answer(reference!, route);
        const b = await answer(server, route);
        expect([b.status, a.status], route).toEqual([200, 200]);
        expect(b.type, route).toBe(a.type);
        // Metadata is the same document (IIIF ids name each server's own port); images the same bytes.
        if (a.type?.startsWith('application/json')) {
          const json = (answer: Answer) => ({
            ...(JSON.parse(answer.body.toString()) as object),
            id: undefined,
          });
          expect(json(b), route).toEqual(json(a));
        } else expect(b.body.equals(a.body), route).toBe(true);
      }
    });
  }
});
