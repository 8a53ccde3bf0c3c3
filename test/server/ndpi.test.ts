// NDPI through the server, on local storage and on S3 (s3rver): metadata, native tiles (passed
// through as cut), Deep Zoom, IIIF, regions, the thumbnail and the macro image answer the same
// bytes on both; and the read budget of a large generated NDPI on S3, counted at the S3 server.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { NdpiWriter, writeLevel, type SynthLevelSpec } from '../formats/ndpi-synth.js';
import { fixture } from '../support/fixtures.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

const SLIDE = 'test3-DAPI-2.ndpi';
const ROUTES: [string, string][] = [
  ['metadata', `/slides/${SLIDE}`],
  ['native tile', `/tiles/${SLIDE}/0/0/3.jpg`],
  ['native tile, png', `/tiles/${SLIDE}/2/0/1.png`],
  ['synthesised level tile', `/tiles/${SLIDE}/5/0/0.jpg`],
  ['dzi', `/slides/${SLIDE}/dzi`],
  ['dzi tile', `/slides/${SLIDE}/dzi_files/11/3_4.jpg`],
  ['iiif info', `/iiif/3/${SLIDE}/info.json`],
  ['iiif tile', `/iiif/3/${SLIDE}/1024,1024,1024,1024/256,/0/default.jpg`],
  ['region', `/slides/${SLIDE}/region?x=1784&y=2282&width=400&height=300&level=0`],
  ['region by mpp', `/slides/${SLIDE}/region?x=0&y=0&width=512&height=512&mpp=1&format=jpg`],
  ['thumbnail', `/slides/${SLIDE}/thumbnail?max_size=256`],
  ['macro', `/slides/${SLIDE}/associated/macro.jpg`],
];

const bodies = new Map<string, Map<string, Buffer>>();
let s3: TestS3Server;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-ndpi-server-'));
  await copyFile(fixture(`wsi/ndpi/${SLIDE}`), path.join(dir, SLIDE));
  s3 = await startS3Server();
  await s3.createBucket('slides');
  await s3.upload('slides', `lab/${SLIDE}`, path.join(dir, SLIDE));
}, 120_000);

afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each(['local', 's3'] as const)('NDPI routes on %s storage', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server =
      kind === 'local'
        ? await startTestServer(dir)
        : await startTestServer('s3://slides/lab', s3.medstreamFlags());
  });
  afterAll(() => server?.close());

  it.each(ROUTES)('%s', async (name, route) => {
    const answer = await request(server, route);
    expect(answer.status, answer.body.toString().slice(0, 200)).toBe(200);
    const answers = bodies.get(name) ?? new Map<string, Buffer>();
    answers.set(kind, answer.body);
    bodies.set(name, answers);
    if (name === 'metadata') {
      const meta = answer.json() as {
        format: string;
        level_count: number;
        levels: { width: number; native: boolean; tile_width: number }[];
        objective_power: number;
        mpp_x: number;
        associated_images: { name: string }[];
      };
      expect(meta.format).toBe('hamamatsu');
      expect(meta.level_count).toBe(7);
      expect(meta.levels.map((l) => l.width)).toEqual([3968, 1984, 992, 496, 248, 124, 62]);
      expect(meta.objective_power).toBe(40);
      expect(meta.mpp_x).toBeCloseTo(0.228175, 5);
      expect(meta.associated_images.map((a) => a.name)).toEqual(['macro']);
    }
    if (name === 'native tile') {
      // Passed through as cut from the level's JPEG: a JPEG of the tile's own size.
      expect(answer.headers.get('content-type')).toBe('image/jpeg');
      const info = await sharp(answer.body).metadata();
      expect([info.width, info.height]).toEqual([3968, 64]);
    }
    if (name === 'macro') expect((await sharp(answer.body).metadata()).width).toBe(1188);
    if (name === 'iiif tile') expect((await sharp(answer.body).metadata()).width).toBe(256);
    // Same bytes on both (info.json names its own server's URL, so it differs by the port).
    if (kind === 's3' && name !== 'iiif info') {
      expect(answer.body.equals(bodies.get(name)?.get('local') as Buffer)).toBe(true);
    }
  });
});

describe('NDPI read budget on S3 (generated, 4 MiB of McuStarts)', () => {
  let server: RunningServer;

  beforeAll(async () => {
    const writer = new NdpiWriter();
    writer.hole(256 * 2 ** 20);
    const level0: SynthLevelSpec = {
      width: 65_536,
      height: 16_384,
      components: 1,
      restartInterval: 16,
      lens: 40,
      rows: [1024, 1088],
    };
    writeLevel(writer, level0, 40_000);
    writeLevel(writer, { ...level0, width: 4096, height: 1024, rows: undefined, lens: 2.5 }, 2500);
    writeLevel(writer, { width: 300, height: 100, restartInterval: 0, lens: -1 }, 1000);
    const file = path.join(dir, 'big.ndpi');
    await writer.writeFile(file);
    await s3.upload('slides', 'budget/big.ndpi', file);
    server = await startTestServer('s3://slides/budget', s3.medstreamFlags());
  }, 180_000);
  afterAll(() => server?.close());

  it('open: ≤ 4 range requests and ≤ 512 KiB; a cold tile: a few McuStarts blocks and its bytes; the next: 1 request', async () => {
    const start = s3.requestLog.length;
    const meta = await request(server, '/slides/big.ndpi');
    expect(meta.status).toBe(200);
    const open = s3.rangeReadsSince(start);
    console.log(
      `generated NDPI on S3: open = ${open.length} range requests, ${(open.reduce((a, b) => a + b, 0) / 1024).toFixed(0)} KiB`,
    );
    expect(open.length).toBeLessThanOrEqual(4);
    expect(open.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(512 * 1024); // never the 4 MiB McuStarts

    const before = s3.requestLog.length;
    const first = await request(server, '/tiles/big.ndpi/0/64/16.jpg');
    expect(first.status).toBe(200);
    expect((await sharp(first.body).metadata()).width).toBe(512);
    const cold = s3.rangeReadsSince(before);
    expect(cold.length).toBeLessThanOrEqual(4); // ≤ 3 blocks of McuStarts (64 rows, 2 KiB apart), the tile

    const next = s3.requestLog.length;
    expect((await request(server, '/tiles/big.ndpi/0/65/16.jpg')).status).toBe(200);
    expect(s3.rangeReadsSince(next).length).toBe(1);
  });
});
