// DICOM WSI without ImageType served end to end on local storage: the CMU-1-Small-Region series
// with ImageType cut out of every instance (a folder id) and one such instance alone in its
// folder (a single-instance series) answer metadata, stored tiles byte for byte as the original
// series does, Deep Zoom, IIIF and regions.
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { withoutImageType } from '../formats/dicom-strip.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';

const CMU_DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');
const ORIGINAL = encodeURIComponent('original/');
const STRIPPED = encodeURIComponent('stripped/');
const SINGLE = encodeURIComponent('single/level-0.dcm');

let dir: string;
let server: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-dicom-noimagetype-'));
  for (const sub of ['original', 'stripped', 'single']) await mkdir(path.join(dir, sub));
  for (const name of await readdir(CMU_DIR)) {
    const bytes = new Uint8Array(await readFile(path.join(CMU_DIR, name)));
    await copyFile(path.join(CMU_DIR, name), path.join(dir, 'original', name));
    const stripped = await withoutImageType(bytes, name);
    await writeFile(path.join(dir, 'stripped', name), stripped);
    if (name.startsWith('level-0-')) await writeFile(path.join(dir, 'single', 'level-0.dcm'), stripped);
  }
  server = await startTestServer(dir, []);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Meta {
  format: string;
  width: number;
  height: number;
  levels: { width: number }[];
}

describe('DICOM WSI without ImageType over HTTP', () => {
  it('the stripped series has the original’s metadata', async () => {
    const original = (await request(server, `/slides/${ORIGINAL}`)).json() as Meta;
    const res = await request(server, `/slides/${STRIPPED}`);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    const stripped = res.json() as Meta;
    expect(stripped.format).toBe('dicom-wsi');
    expect(stripped.levels.map((l) => l.width)).toEqual(original.levels.map((l) => l.width));
  });

  it.each([
    '/tiles/{id}/0/1/2.jpg',
    '/tiles/{id}/2/1/0.jpg',
    '/slides/{id}/dzi_files/12/1_1.jpg?tile_size=500&overlap=0',
  ])('%s is the original series’ stored frame, byte for byte', async (route) => {
    const a = await request(server, route.replace('{id}', ORIGINAL));
    const b = await request(server, route.replace('{id}', STRIPPED));
    expect(b.status).toBe(200);
    expect(b.body.equals(a.body)).toBe(true);
  });

  it('a single stripped instance opens as a one-level slide and serves tiles, IIIF and regions', async () => {
    const meta = await request(server, `/slides/${SINGLE}`);
    expect(meta.status, meta.body.toString().slice(0, 200)).toBe(200);
    expect((meta.json() as Meta).width).toBe(2220);
    const tile = await request(server, `/tiles/${SINGLE}/0/1/2.jpg`);
    const original = await request(server, `/tiles/${ORIGINAL}/0/1/2.jpg`);
    expect(tile.body.equals(original.body)).toBe(true);
    expect((await request(server, `/iiif/3/${SINGLE}/1000,1000,500,500/250,/0/gray.png`)).status).toBe(200);
    const raw = await request(server, `/slides/${SINGLE}/region?x=900&y=1300&width=40&height=30&format=raw`);
    expect(raw.status).toBe(200);
    expect(raw.body.length).toBe(40 * 30 * 3);
  });
});
