// DICOM WSI through every route on local and S3 storage: a folder id (`cases/cmu/`, one slide
// of 12 instances), the id of one instance (its same-series siblings join it), the `boxes`
// pair; stored JPEG frames passed through; level 0 against OpenSlide's reference of the SVS;
// a replaced instance changes the slide's identity (ETags) at once for reads and on revalidation.
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { openSeries } from '../../src/formats/dicom-wsi.js';
import { BytesSource } from '../support/file-source.js';
import { FIXTURES, fixture } from '../support/fixtures.js';
import { compareRgb, loadRgb } from '../support/image-compare.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

const CMU_DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');
const CMU = encodeURIComponent('cases/cmu/');
const LEVEL3 = encodeURIComponent('cases/cmu/level-3-frames-0-1.dcm');
const BOXES = encodeURIComponent('boxes/');
const BOXES0 = encodeURIComponent('boxes/boxes_0.dcm');

const ROUTES: [string, number, string?][] = [
  [`/slides/${CMU}`, 200],
  [`/slides/${LEVEL3}`, 200],
  [`/slides/${BOXES0}`, 200],
  [`/tiles/${CMU}/0/1/2.jpg`, 200],
  [`/tiles/${CMU}/0/4/5.png`, 200],
  [`/tiles/${CMU}/2/1/1.webp?quality=70`, 200],
  [`/tiles/${LEVEL3}/0/2/3.jpg`, 200],
  [`/tiles/${BOXES0}/0/0/0.jpg`, 200],
  [`/slides/${CMU}/thumbnail?max_size=200`, 200],
  [`/slides/${BOXES}/thumbnail`, 200],
  [`/slides/${BOXES}/associated/thumbnail.png`, 200],
  [`/slides/${BOXES0}/associated/thumbnail.jpg`, 200],
  [`/slides/${CMU}/dzi`, 200],
  [`/slides/${CMU}/dzi_files/11/2_3.jpg`, 200],
  [`/slides/${CMU}/dzi_files/12/1_1.jpg?tile_size=500&overlap=0`, 200],
  [`/iiif/3/${CMU}/info.json`, 200],
  [`/iiif/3/${CMU}/1000,1000,1000,1000/250,/0/default.jpg`, 200],
  [`/iiif/3/${CMU}/full/!300,300/90/gray.png`, 200],
  [`/slides/${CMU}/region?x=900&y=1300&width=120&height=90&level=0&format=raw`, 200],
  [`/slides/${CMU}/region?x=710&y=1182&width=64&height=64&mpp=2`, 200],
  [`/slides/${CMU}/associated/label.png`, 404, 'not_found'],
  [`/slides/${encodeURIComponent('cases/none/')}`, 404, 'not_found'],
  [`/tiles/${CMU}/0/9/0.jpg`, 400, 'tile_out_of_bounds'],
  [`/tiles/${CMU}/12/0/0.jpg`, 400, 'invalid_level'],
];

type Answer = { status: number; body: Buffer };
const answers = new Map<string, Map<string, Answer>>();

describe.each(['local', 's3'] as const)('DICOM WSI routes on %s storage', (kind) => {
  let server: RunningServer;
  let s3: TestS3Server | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), `medstream-dicom-${kind}-`));
    await mkdir(path.join(dir, 'cases/cmu'), { recursive: true });
    await mkdir(path.join(dir, 'boxes'));
    for (const name of await readdir(CMU_DIR))
      await copyFile(path.join(CMU_DIR, name), path.join(dir, 'cases/cmu', name));
    for (const name of ['boxes_0.dcm', 'boxes_1.dcm']) {
      await copyFile(fixture(`wsi/openslide/${name}`), path.join(dir, 'boxes', name));
    }
    let storage = dir;
    const flags: string[] = [];
    if (kind === 's3') {
      s3 = await startS3Server();
      await s3.createBucket('slides');
      for (const name of await readdir(path.join(dir, 'cases/cmu'))) {
        await s3.upload('slides', `lab/cases/cmu/${name}`, path.join(dir, 'cases/cmu', name));
      }
      for (const name of ['boxes_0.dcm', 'boxes_1.dcm'])
        await s3.upload('slides', `lab/boxes/${name}`, path.join(dir, 'boxes', name));
      storage = 's3://slides/lab';
      flags.push(...s3.medstreamFlags());
    }
    server = await startTestServer(storage, flags);
    answers.set(kind, new Map());
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(ROUTES)('GET %s → %i', async (route, status, code) => {
    const res = await request(server, route);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(status);
    if (code) expect(res.json()).toMatchObject({ error: code, status });
    answers.get(kind)!.set(route, { status: res.status, body: res.body });
  });

  it('metadata: 12 levels, MPP, vendor; the instance id and the folder id are the same slide', async () => {
    const folder = (await request(server, `/slides/${CMU}`)).json() as Record<string, unknown>;
    expect(folder).toMatchObject({
      format: 'dicom-wsi',
      width: 2220,
      height: 2967,
      level_count: 12,
      mpp_x: 0.499,
    });
    const one = (await request(server, `/slides/${LEVEL3}`)).json() as Record<string, unknown>;
    expect(one.levels).toEqual(folder.levels);
    const boxes = (await request(server, `/slides/${BOXES}`)).json() as Record<string, unknown>;
    expect(boxes).toMatchObject({ objective_power: 20, has_icc_profile: true });
    expect(boxes.associated_images).toEqual([{ name: 'thumbnail', width: 16, height: 16 }]);
    expect(JSON.stringify(boxes.properties)).not.toMatch(/PatientName|StudyInstanceUID/);
  });

  it('stored JPEG frames pass through byte for byte (native, DZI 500/0 and IIIF)', async () => {
    const sources = await Promise.all(
      (await readdir(CMU_DIR)).map(
        async (n) => new BytesSource(new Uint8Array(await readFile(path.join(CMU_DIR, n))), n),
      ),
    );
    const slide = await openSeries(sources);
    const frame = Buffer.from((await slide.levels[0].grid!.readTile(1, 2))!);
    const tile = await request(server, `/tiles/${CMU}/0/1/2.jpg`);
    expect(tile.body.equals(frame)).toBe(true);
    const dzi = await request(server, `/slides/${CMU}/dzi_files/12/1_2.jpg?tile_size=500&overlap=0`);
    expect(dzi.body.equals(frame)).toBe(true);
    const iiif = await request(server, `/iiif/3/${CMU}/500,1000,500,500/500,/0/default.jpg`);
    expect(iiif.body.equals(frame)).toBe(true);
    expect(iiif.headers.get('etag')).toBe(tile.headers.get('etag'));
  });

  it('level 0 through the region route matches OpenSlide’s reference of the SVS', async () => {
    const ref = await loadRgb(
      path.join(FIXTURES, 'reference/CMU-1-Small-Region.svs.L0.1964_2711_256x256.png'),
    );
    const res = await request(
      server,
      `/slides/${CMU}/region?x=1964&y=2711&width=256&height=256&level=0&format=raw`,
    );
    expect(res.status).toBe(200);
    const diff = compareRgb({ data: res.body, width: 256, height: 256 }, ref);
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(4);
  });

  if (kind === 's3') {
    it('answers byte for byte what the local directory answers', () => {
      for (const [route, status] of ROUTES) {
        if (status !== 200 || route.endsWith('info.json')) continue; // info.json names the server's own URL
        expect(
          answers.get('s3')!.get(route)!.body.equals(answers.get('local')!.get(route)!.body),
          route,
        ).toBe(true);
      }
    });
  }
});

describe('a replaced instance changes the identity of its series', () => {
  let dir: string;
  let server: RunningServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-dicom-replace-'));
    await mkdir(path.join(dir, 'cmu'));
    for (const name of await readdir(CMU_DIR))
      await copyFile(path.join(CMU_DIR, name), path.join(dir, 'cmu', name));
    server = await startTestServer(dir, ['--slide-revalidate', '0']);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('new ETags for the folder slide and for an instance id once a sibling is replaced', async () => {
    const folder = `/tiles/${encodeURIComponent('cmu/')}/3/0/0.jpg`;
    const single = `/tiles/${encodeURIComponent('cmu/level-0-frames-0-30.dcm')}/3/0/0.jpg`;
    const before = [await request(server, folder), await request(server, single)];
    expect(before.map((r) => r.status)).toEqual([200, 200]);
    // Replace level 3's instance with level 4's bytes (a different object, same name).
    await new Promise((r) => setTimeout(r, 20));
    await copyFile(
      path.join(CMU_DIR, 'level-4-frames-0-1.dcm'),
      path.join(dir, 'cmu', 'level-3-frames-0-1.dcm'),
    );
    const after = [await request(server, folder), await request(server, single)];
    expect(after.map((r) => r.status)).toEqual([200, 200]);
    expect(after[0].headers.get('etag')).not.toBe(before[0].headers.get('etag'));
    expect(after[1].headers.get('etag')).not.toBe(before[1].headers.get('etag'));
  });
});
