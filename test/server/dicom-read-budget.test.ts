// The DICOM WSI read budget on S3, counted at the S3 server. Opening a series costs, per
// instance, one range request (its header's first 64 KiB window) plus one per value too long
// to read inline (an Extended Offset Table and its lengths: 3 in all) — independent of the
// file's size and frame count: proved with a 1.07 GB instance of 100 000 frames whose Extended
// Offset Table (1.6 MB with its lengths) is never read whole, and a 100 000-frame instance
// without any offset table (a frame there costs one span of item headers; a folder costs no
// HEAD). A cold frame costs its two EOT entries (one block each) and its own bytes; the next
// frame nearby costs exactly one request of its own size.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { TransferSyntax } from '../../src/dicom/tags.js';
import { writeDicomFile, wsiInstance } from '../support/dicom-writer.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';

const TILE = 64;
const ACROSS = 400;
const DOWN = 250; // 100 000 frames
const HOLE = 2 ** 30;

let dir: string;
let s3: TestS3Server;
let server: RunningServer;
let frameBytes: number;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-dicom-budget-'));
  const jpeg = new Uint8Array(
    await sharp({ create: { width: TILE, height: TILE, channels: 3, background: '#c08040' } })
      .jpeg()
      .toBuffer(),
  );
  frameBytes = jpeg.length;
  const frames = Array.from({ length: ACROSS * DOWN }, () => jpeg);
  const common = {
    transferSyntax: TransferSyntax.JpegBaseline,
    width: ACROSS * TILE,
    height: DOWN * TILE,
    tileWidth: TILE,
    tileHeight: TILE,
    frames,
    photometric: 'YBR_FULL_422',
  };
  await mkdir(path.join(dir, 'big'));
  await mkdir(path.join(dir, 'walk'));
  const big = path.join(dir, 'big', 'instance.dcm');
  const size = await writeDicomFile(big, wsiInstance({ ...common, offsets: 'eot', holeBefore: HOLE }));
  expect(size).toBeGreaterThan(HOLE);
  const walk = path.join(dir, 'walk', 'instance.dcm');
  await writeDicomFile(walk, wsiInstance({ ...common, offsets: 'none' }));

  s3 = await startS3Server();
  await s3.createBucket('slides');
  await s3.upload('slides', 'lab/big/instance.dcm', big);
  await s3.upload('slides', 'lab/walk/instance.dcm', walk);
  server = await startTestServer('s3://slides/lab', s3.medstreamFlags());
}, 300_000);

afterAll(async () => {
  await server?.close();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('DICOM WSI read budget on S3 (100 000 frames, 1.07 GB)', () => {
  it('opening by an instance id (Extended Offset Table of 1.6 MB): ≤ 3 range requests of one block', async () => {
    const start = s3.requestLog.length;
    const meta = await request(server, '/slides/big%2Finstance.dcm');
    expect(meta.status).toBe(200);
    expect((meta.json() as { levels: { tiles_x: number; tiles_y: number }[] }).levels[0]).toMatchObject({
      tiles_x: ACROSS,
      tiles_y: DOWN,
    });
    // The header's first window, then a 4 KiB window after each of the two deferred tables,
    // each fetched as one 64 KiB block of the block cache.
    const open = s3.rangeReadsSince(start);
    expect(open.length).toBeLessThanOrEqual(3);
    expect(Math.max(...open)).toBeLessThanOrEqual(64 * 1024);
  });

  it('opening by a folder id (no offset table): 1 range request of ≤ 64 KiB', async () => {
    const start = s3.requestLog.length;
    const meta = await request(server, '/slides/walk%2F');
    expect(meta.status).toBe(200);
    expect((meta.json() as { levels: { tiles_x: number }[] }).levels[0].tiles_x).toBe(ACROSS);
    const open = s3.rangeReadsSince(start);
    expect(open.length).toBe(1);
    expect(open[0]).toBeLessThanOrEqual(64 * 1024);
    // The listing's ETag and size open the object: no HEAD before its header read.
    expect(s3.requestLog.slice(start).filter((r) => r.method === 'HEAD')).toEqual([]);
    // The same instance's header blocks are cached: its folder, opened next, costs nothing more.
    const again = s3.requestLog.length;
    expect((await request(server, '/slides/big%2F')).status).toBe(200);
    expect(s3.rangeReadsSince(again).length).toBe(0);
  });

  it('a cold frame: its two Extended Offset Table entries and its bytes; the next: one request', async () => {
    await request(server, '/slides/big%2F');
    const before = s3.requestLog.length;
    const first = await request(server, '/tiles/big%2F/0/123/200.jpg');
    expect(first.status).toBe(200);
    const cold = s3.rangeReadsSince(before);
    expect(cold.length).toBe(3);
    expect(cold.at(-1)).toBe(frameBytes);
    expect(cold.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * 64 * 1024 + frameBytes);

    const next = s3.requestLog.length;
    const second = await request(server, '/tiles/big%2F/0/124/200.jpg');
    expect(second.status).toBe(200);
    expect(s3.rangeReadsSince(next)).toEqual([frameBytes]);
  });

  it('without offset tables, a frame near the start costs one read of the item headers before it (the frame served from it); the next costs its own bytes', async () => {
    await request(server, '/slides/walk%2F');
    const before = s3.requestLog.length;
    const tile = await request(server, '/tiles/walk%2F/0/30/0.jpg');
    expect(tile.status).toBe(200);
    // 31 item headers and frames in ~20 KiB: one 64 KiB span from the first fragment holds them
    // all, and frame 31 with them.
    const reads = s3.rangeReadsSince(before);
    expect(reads).toEqual([64 * 1024]);

    const next = s3.requestLog.length;
    const second = await request(server, '/tiles/walk%2F/0/31/0.jpg');
    expect(second.status).toBe(200);
    expect(s3.rangeReadsSince(next)).toEqual([frameBytes]);
    // Frame 4 001, far past the span: one more span reaches it (sized from the mean frame size).
    const far = s3.requestLog.length;
    const third = await request(server, '/tiles/walk%2F/0/0/10.jpg');
    expect(third.status).toBe(200);
    expect(s3.rangeReadsSince(far).length).toBe(1);
  });
});
