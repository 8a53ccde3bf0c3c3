// `codec-floor` (compare suite): what one libvips call through sharp costs for the small images a
// 256×256 region read is made of, against libjpeg-turbo through PIL (the codec OpenSlide and the
// `compare-regions` peer use) on the same bytes: stored 256² JPEG tiles of the bench pyramid.
// It separates the codec's own work from sharp's fixed cost per call (option marshalling, thread
// hand-offs), which is why the 256² rows of `compare-regions` stay under OpenSlide.
//
//   npm run bench -- codec-floor        (BENCH_SHORT=1: fewer calls)

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { prepareJpeg } from '../src/codecs/index.js';
import { openSlide } from '../src/formats/detect.js';
import { LocalStorage } from '../src/storage/local.js';
import type { Benchmark, BenchmarkResult } from './harness.js';
import { findOpenSlide } from './peers/openslide.js';
import { benchPyramid, SLIDE_CACHE } from './slides.js';

const CALLS = process.env.BENCH_SHORT === '1' ? 200 : 1000;

const PIL_SCRIPT = `
import io, sys, time, glob
from PIL import Image
files = [open(f, 'rb').read() for f in sorted(glob.glob(sys.argv[1] + '/*.jpg'))]
calls = int(sys.argv[2])
def timed(fn):
    for i in range(50): fn(i)
    t = time.perf_counter()
    for i in range(calls): fn(i)
    return (time.perf_counter() - t) / calls * 1000
def decode(i):
    im = Image.open(io.BytesIO(files[i % len(files)])); im.load(); return im
pixels = decode(0).convert('RGB')
print(timed(decode))
print(timed(lambda i: pixels.save(io.BytesIO(), 'JPEG', quality=80, subsampling=2)))
print(timed(lambda i: pixels.save(io.BytesIO(), 'PNG', compress_level=3)))
`;

/** Mean milliseconds per call, one call at a time after 50 warm-up calls. */
async function timed(fn: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 50; i++) await fn(i);
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) await fn(i);
  return (performance.now() - t0) / CALLS;
}

export const codecFloor: Benchmark = {
  name: 'codec-floor',
  title: 'The codec floor of a 256x256 region: sharp (libvips) per call vs libjpeg-turbo through PIL',
  async run(): Promise<BenchmarkResult> {
    const slide = await benchPyramid();
    const storage = await LocalStorage.create(SLIDE_CACHE);
    const opened = await openSlide(await storage.open(slide.id));
    const grid = opened.levels[0].grid!;
    const tiles: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      const bytes = await grid.readTile(20 + (i % 8), 15 + Math.floor(i / 8));
      if (bytes) tiles.push(Buffer.from(prepareJpeg(bytes, grid.encoding)));
    }
    const rgb = await sharp(tiles[0]).raw().toBuffer();
    const raw = { raw: { width: 256, height: 256, channels: 3 as const } };
    const tiny = Buffer.alloc(3);
    const four = (i: number) => [0, 1, 2, 3].map((k) => tiles[(i + k) % tiles.length]);
    const rows: [string, number][] = [
      [
        'sharp: a 1×1 raw image to raw (the fixed cost of a call)',
        await timed(() =>
          sharp(tiny, { raw: { width: 1, height: 1, channels: 3 } })
            .raw()
            .toBuffer(),
        ),
      ],
      [
        'sharp: decode one 256² JPEG tile to RGB',
        await timed((i) =>
          sharp(tiles[i % tiles.length])
            .raw()
            .toBuffer(),
        ),
      ],
      [
        'sharp: encode 256² RGB as JPEG q80 4:2:0',
        await timed(() =>
          sharp(rgb, raw).jpeg({ quality: 80, chromaSubsampling: '4:2:0', optimiseCoding: false }).toBuffer(),
        ),
      ],
      [
        'sharp: encode 256² RGB as PNG level 3',
        await timed(() => sharp(rgb, raw).png({ compressionLevel: 3, adaptiveFiltering: false }).toBuffer()),
      ],
      [
        'sharp: 4 tiles joined, a 256² crop, JPEG q80 (the region path, one call)',
        await timed((i) =>
          sharp(four(i), { join: { across: 2 } })
            .extract({ left: 100, top: 100, width: 256, height: 256 })
            .jpeg({ quality: 80, chromaSubsampling: '4:2:0', optimiseCoding: false })
            .toBuffer(),
        ),
      ],
    ];
    const notes: string[] = [];
    const python = await findOpenSlide();
    if (typeof python === 'string') {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-codec-'));
      try {
        await Promise.all(
          tiles.map((t, i) => writeFile(path.join(dir, `${String(i).padStart(2, '0')}.jpg`), t)),
        );
        const { stdout } = await promisify(execFile)(python, ['-c', PIL_SCRIPT, dir, String(CALLS)]);
        const [decode, jpeg, png] = stdout.trim().split('\n').map(Number);
        rows.push(
          ['PIL (libjpeg-turbo): decode one 256² JPEG tile', decode],
          ['PIL: encode 256² RGB as JPEG q80 4:2:0', jpeg],
          ['PIL (zlib): encode 256² RGB as PNG level 3', png],
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } else notes.push(`PIL rows skipped: ${python.missing}`);
    return {
      name: this.name,
      title: this.title,
      tables: [
        {
          title: `${CALLS} calls one at a time on ${tiles.length} stored 256² tiles of the bench pyramid (JPEG q88, tables spliced in): mean ms per call`,
          columns: ['operation', 'ms per call'],
          rows: rows.map(([what, ms]) => [what, ms.toFixed(3)]),
        },
        ...(notes.length ? [{ title: 'notes', columns: ['note'], rows: notes.map((n) => [n]) }] : []),
      ],
      data: Object.fromEntries(rows),
    };
  },
};
