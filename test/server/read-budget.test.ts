// The read budget on S3, counted at the S3 server: opening a ≥ 1 GiB BigTIFF with a
// 160 000-tile level costs at most 3 range requests and 512 KiB; a cold tile costs one block of
// each tile table plus its own bytes; a second tile nearby costs exactly one request of its size.
// An Aperio-layout SVS the size of the compare bench's (60000x45000, 240-px tiles, every
// directory and its tile tables at the end of the file): open + first level-0 tile in at most
// 4 GETs and 512 KiB plus the tile, the next tile in one GET of its size.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';
import { T, TiffWriter, tiledImageTags, type TagSpec } from '../support/tiff-writer.js';

const TILE = 256;
const ACROSS = 400; // 160 000 tiles at level 0: 1.25 MiB of LONG8 offsets that must not be read whole

let dir: string;
let s3: TestS3Server;
let server: RunningServer;
let tileBytes: number;
let svsTileBytes: number;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-budget-'));
  const jpeg = new Uint8Array(
    await sharp({ create: { width: TILE, height: TILE, channels: 3, background: '#c08040' } })
      .jpeg()
      .toBuffer(),
  );
  tileBytes = jpeg.byteLength;
  // Tile data first (a sparse GiB, then the one stored tile every entry points at), then each
  // level's offset and byte-count arrays, then the directories — a layout scanners write.
  const writer = new TiffWriter({ bigTiff: true });
  writer.hole(Math.ceil(1.05 * 2 ** 30));
  const tileOffset = writer.blob(jpeg);
  const levels: TagSpec[][] = [];
  for (let across = ACROSS, index = 0; across >= 1; across = Math.ceil(across / 2), index++) {
    const n = across * across;
    const tags = tiledImageTags({
      width: across * TILE - 5,
      height: across * TILE - 9,
      tile: TILE,
      tileOffset,
      tileBytes,
      bigTiff: true,
      subfileType: index === 0 ? undefined : 1,
    }).filter((t) => t.tag !== 324 && t.tag !== 325);
    const offsets = writer.blob(
      writer.encode({ tag: 324, type: T.LONG8, values: Array<number>(n).fill(tileOffset) }).bytes,
    );
    const counts = writer.blob(
      writer.encode({ tag: 325, type: T.LONG, values: Array<number>(n).fill(tileBytes) }).bytes,
    );
    tags.push({
      tag: 324,
      type: T.LONG8,
      values: n > 1 ? [] : [tileOffset],
      count: n,
      at: n > 1 ? offsets : undefined,
    });
    tags.push({
      tag: 325,
      type: T.LONG,
      values: n > 1 ? [] : [tileBytes],
      count: n,
      at: n > 1 ? counts : undefined,
    });
    levels.push(tags);
    if (across === 1) break;
  }
  for (const tags of levels) writer.ifd({ tags });
  const file = path.join(dir, 'big.tif');
  const size = await writer.writeFile(file);
  expect(size).toBeGreaterThanOrEqual(2 ** 30);

  const svs = path.join(dir, 'aperio.svs');
  svsTileBytes = await writeAperioLayout(svs);

  s3 = await startS3Server();
  await s3.createBucket('slides');
  await s3.upload('slides', 'lab/big.tif', file);
  await s3.upload('slides', 'lab/aperio.svs', svs);
  await s3.upload('slides', 'lab/aperio-tile-first.svs', svs);
  server = await startTestServer('s3://slides/lab', s3.medstreamFlags());
}, 180_000);

/**
 * The compare bench's SVS layout (bench/slides.ts): tile data first (a sparse 8 MiB here, then
 * the one stored tile every entry points at), then each directory followed by its values — level
 * 0 (60000x45000, 47 000 tiles: 376 KB of tile tables), the stripped thumbnail, levels 4x, 16x, 64x.
 */
async function writeAperioLayout(file: string): Promise<number> {
  const jpeg = new Uint8Array(
    await sharp({ create: { width: 240, height: 240, channels: 3, background: '#b07050' } })
      .jpeg()
      .toBuffer(),
  );
  const writer = new TiffWriter({ bigTiff: false });
  writer.hole(8 * 2 ** 20);
  const tileOffset = writer.blob(jpeg);
  const head = 'Aperio Image Library v11.2.1 \r\n60000x45000 [0,0 60000x45000] (240x240)';
  const level = (d: number, description: string): TagSpec[] =>
    tiledImageTags({
      width: Math.floor(60000 / d),
      height: Math.floor(45000 / d),
      tile: 240,
      tileOffset,
      tileBytes: jpeg.byteLength,
      bigTiff: false,
      extra: [{ tag: 270, type: T.ASCII, values: description }],
    });
  writer.ifd({ tags: level(1, `${head} JPEG/RGB Q=70|AppMag = 20|MPP = 0.4990`) });
  writer.ifd({
    tags: [
      { tag: 256, type: T.LONG, values: [1024] },
      { tag: 257, type: T.LONG, values: [768] },
      { tag: 258, type: T.SHORT, values: [8, 8, 8] },
      { tag: 259, type: T.SHORT, values: [1] },
      { tag: 262, type: T.SHORT, values: [2] },
      { tag: 270, type: T.ASCII, values: `${head} -> 1024x768 - |AppMag = 20` },
      { tag: 273, type: T.LONG, values: [1024] },
      { tag: 277, type: T.SHORT, values: [3] },
      { tag: 278, type: T.LONG, values: [768] },
      { tag: 279, type: T.LONG, values: [1024 * 768 * 3] },
    ],
  });
  for (const d of [4, 16, 64])
    writer.ifd({ tags: level(d, `${head} -> ${60000 / d}x${45000 / d} JPEG/RGB Q=70`) });
  await writer.writeFile(file);
  return jpeg.byteLength;
}

afterAll(async () => {
  await server?.close();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('read budget on S3 (≥ 1 GiB BigTIFF, 160 000-tile level)', () => {
  it('open: ≤ 3 range requests and ≤ 512 KiB; a cold tile: its two table entries and its bytes; the next: 1 request', async () => {
    const start = s3.requestLog.length;
    const meta = await request(server, '/slides/big.tif');
    expect(meta.status).toBe(200);
    expect((meta.json() as { levels: { tiles_x: number }[] }).levels[0].tiles_x).toBe(ACROSS);
    const open = s3.rangeReadsSince(start);
    expect(open.length).toBeLessThanOrEqual(3);
    expect(open.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(512 * 1024); // never the 1.25 MiB array

    // The first tile of a level reads one block of TileOffsets and one of TileByteCounts (in
    // parallel), then exactly its own bytes.
    const before = s3.requestLog.length;
    const first = await request(server, '/tiles/big.tif/0/123/321.jpg');
    expect(first.status).toBe(200);
    const cold = s3.rangeReadsSince(before);
    expect(cold.length).toBe(3);
    expect(cold.at(-1)).toBe(tileBytes);
    expect(cold.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * 64 * 1024 + tileBytes);

    // Its neighbour's table entries are in the cached blocks: one request, of the tile's size.
    const next = s3.requestLog.length;
    const second = await request(server, '/tiles/big.tif/0/124/321.jpg');
    expect(second.status).toBe(200);
    expect(s3.rangeReadsSince(next)).toEqual([tileBytes]);
  });
});

describe('read budget on S3 (60000x45000 Aperio-layout SVS, directories at the end)', () => {
  it('open + first level-0 tile: ≤ 4 GETs and ≤ 512 KiB plus the tile; the next tile: 1 GET of its size', async () => {
    const start = s3.requestLog.length;
    const meta = await request(server, '/slides/aperio.svs');
    expect(meta.status).toBe(200);
    expect((meta.json() as { levels: { width: number }[] }).levels.map((l) => l.width)).toEqual([
      60000, 15000, 3750, 937,
    ]);
    const first = await request(server, '/tiles/aperio.svs/0/123/97.jpg');
    expect(first.status).toBe(200);
    const reads = s3.rangeReadsSince(start);
    console.log(`aperio layout: open + first tile = ${reads.length} GETs: ${reads.join(', ')} bytes`);
    expect(reads.length).toBeLessThanOrEqual(4);
    expect(reads.at(-1)).toBe(svsTileBytes);
    expect(reads.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(512 * 1024 + svsTileBytes);

    const next = s3.requestLog.length;
    const second = await request(server, '/tiles/aperio.svs/0/124/97.jpg');
    expect(second.status).toBe(200);
    expect(s3.rangeReadsSince(next)).toEqual([svsTileBytes]);
  });
});

describe('read budget on S3 (the Aperio-layout SVS, a level-0 tile asked first)', () => {
  it('open + first level-0 tile: exactly 1 HEAD + 3 GETs (header, every directory, the tile), ≤ 512 KiB plus the tile', async () => {
    const start = s3.requestLog.length;
    const first = await request(server, '/tiles/aperio-tile-first.svs/0/123/97.jpg');
    expect(first.status).toBe(200);
    expect(s3.requestLog.slice(start).filter((r) => r.method === 'HEAD')).toHaveLength(1);
    const reads = s3.rangeReadsSince(start);
    expect(reads).toHaveLength(3);
    expect(reads.at(-1)).toBe(svsTileBytes);
    expect(reads.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(512 * 1024 + svsTileBytes);
    // Its directories all came with the first windows: the metadata costs no read.
    const meta = s3.requestLog.length;
    expect((await request(server, '/slides/aperio-tile-first.svs')).status).toBe(200);
    expect(s3.rangeReadsSince(meta)).toEqual([]);
  });
});
