// The corruption suite through the server: hundreds of mutated copies of the real fixtures
// (test/support/corrupt.ts, plus codec-level breakage made here) are served from one directory,
// and every request for them — metadata, a decoded tile, a thumbnail, a Deep Zoom tile — must
// answer an image or a JSON error within a bounded time, with memory bounded by the caches,
// while valid slides keep being served. Hostile requests (absurd levels and sizes, malformed
// percent-encoding, very long ids, unknown routes and methods) get clean 4xx.
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import {
  directoryFuzz,
  headerThenNoise,
  mapTiff,
  notTiff,
  random,
  structuralMutations,
  type Mutation,
} from '../support/corrupt.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';

const SOURCES = [
  'wsi/openslide/small.svs',
  'wsi/openslide/boxes.tiff',
  'wsi/cog/cog.tif',
  'wsi/svs/CMU-1-Small-Region.svs',
  'wsi/svs/tcga-cr-7395-01a-01-ts1.svs',
  'wsi/generated/pyramid-jpeg-bigtiff.tif',
  'wsi/generated/ome-pyramid-subifd.ome.tif',
];
/**
 * Each request must be answered within this: a hang guard, not a speed test (the slowest answer
 * is 2-3 s on a loaded 2-core machine, a hang never ends).
 */
const ANSWER_WITHIN_MS = 10_000;

/** Tile data replaced, in place, for the codec-level cases: bad JPEG tables, bad codestreams. */
function codecMutations(relative: string, original: Uint8Array): Mutation[] {
  const map = mapTiff(original);
  const ifd0 = map.ifds[0];
  const view = new DataView(original.buffer, original.byteOffset, original.byteLength);
  const value = (tag: number, index = 0): number | undefined => {
    const e = ifd0.entries.find((x) => x.tag === tag);
    if (!e) return undefined;
    const size = e.type === 3 ? 2 : e.type === 16 ? 8 : 4;
    const at = (e.valueOffset < 0 ? e.fieldPos : e.valueOffset) + index * size;
    if (size === 2) return view.getUint16(at, map.littleEndian);
    if (size === 8) return Number(view.getBigUint64(at, map.littleEndian));
    return view.getUint32(at, map.littleEndian);
  };
  const out: Mutation[] = [];
  const noise = random(relative.length * 31);
  const offset = value(324) ?? value(273);
  const count = value(325) ?? value(279);
  if (offset !== undefined && count !== undefined && count > 16) {
    for (const [name, from, to] of [
      ['tile 0 body is noise', 2, count - 2],
      ['tile 0 first half is noise', 2, count >> 1],
      ['tile 0 ends early (EOI in the middle)', count >> 1, count],
    ] as const) {
      const bytes = original.slice();
      for (let i = offset + from; i < offset + to; i++)
        bytes[i] = name.includes('EOI') ? 0 : (noise() * 256) | 0;
      if (name.includes('EOI')) bytes.set([0xff, 0xd9], offset + from);
      out.push({ name: `${relative}: ${name}`, bytes, expect: { kind: 'typed' } });
    }
  }
  const tables = ifd0.entries.find((e) => e.tag === 347);
  if (tables && tables.valueOffset >= 0) {
    for (const [name, change] of [
      [
        'JPEGTables are noise',
        (b: Uint8Array) => {
          for (let i = 2; i < tables.count - 2; i++) b[tables.valueOffset + i] = (noise() * 256) | 0;
        },
      ],
      [
        'JPEGTables without their Huffman tables',
        (b: Uint8Array) => {
          for (let i = 2; i < tables.count - 2; i++)
            if (b[tables.valueOffset + i] === 0xc4) b[tables.valueOffset + i] = 0x01;
        },
      ],
    ] as const) {
      const bytes = original.slice();
      change(bytes);
      out.push({ name: `${relative}: ${name}`, bytes, expect: { kind: 'typed' } });
    }
  }
  return out;
}

function allMutations(): { file: string; mutation: Mutation }[] {
  const cases: { file: string; mutation: Mutation }[] = [];
  const add = (prefix: string, mutations: Mutation[]) =>
    mutations.forEach((mutation, i) =>
      cases.push({ file: `${prefix}-${String(i).padStart(3, '0')}.tif`, mutation }),
    );
  for (const relative of SOURCES) {
    const original = new Uint8Array(readFileSync(fixture(relative)));
    const stem = path.basename(relative).replace(/\W+/g, '_');
    add(`${stem}-structural`, structuralMutations(original));
    add(`${stem}-fuzz`, directoryFuzz(original, 12, relative.length * 104729));
    add(`${stem}-codec`, codecMutations(relative, original));
  }
  add('not-tiff', [...headerThenNoise(), ...notTiff()]);
  return cases;
}

const cases = allMutations();
let server: RunningServer;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-corrupt-'));
  for (const { file, mutation } of cases) await writeFile(path.join(dir, file), mutation.bytes);
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'valid.svs'));
  // Small caches, so "memory bounded by the caches" is a meaningful bound.
  server = await startTestServer(dir, [
    '--cache-tiles',
    '16MB',
    '--cache-blocks',
    '16MB',
    '--cache-slides',
    '16',
  ]);
}, 120_000);

afterAll(async () => {
  await server?.close();
});

/** 200 image answers that do not decode, collected so that a failure lists every one. */
const brokenImages: string[] = [];

interface Answer {
  route: string;
  status: number;
}

/** Why the body does not decode completely as the image type it claims; undefined when it does. */
async function undecodable(body: Buffer, type: string): Promise<string | undefined> {
  try {
    const meta = await sharp(body).metadata();
    if (`image/${meta.format}` !== type) return `${type} body is ${meta.format}`;
    // failOn 'warning': the strictest check, so a truncated or damaged image is refused too.
    await sharp(body, { failOn: 'warning' }).raw().toBuffer();
    return undefined;
  } catch (e) {
    return `${type} body does not decode: ${String(e)}`;
  }
}

/** GET with a deadline; the answer must be an image or a typed JSON error. */
async function answered(route: string): Promise<Answer> {
  const started = performance.now();
  const res = await request(server, route, { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
  expect(performance.now() - started).toBeLessThan(ANSWER_WITHIN_MS);
  const type = res.headers.get('content-type') ?? '';
  if (res.status === 200) {
    expect(type, route).toMatch(/^(image\/|application\/(json|xml))/);
    // An image answer must be a whole, valid image: garbage never passes as success.
    const broken = type.startsWith('image/') ? await undecodable(res.body, type) : undefined;
    if (broken !== undefined) brokenImages.push(`${route}: ${broken}`);
  } else {
    expect(res.status, route).toBeGreaterThanOrEqual(400);
    expect(type, route).toMatch(/^application\/json/);
    const body = res.json() as { error: string; message: string; status: number };
    expect(body, route).toMatchObject({
      error: expect.any(String),
      message: expect.any(String),
      status: res.status,
    });
    expect(body.message, route).not.toMatch(/\n\s+at /); // no stack traces
    expect(body.error, route).not.toBe('internal_error'); // every failure is a typed one
  }
  return { route, status: res.status };
}

describe('the corruption suite through the server', () => {
  it(`has at least 200 mutated files (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(200);
  });

  it('answers every request for every mutated file with an image or a typed JSON error, in bounded time and memory', async () => {
    const rssBefore = process.memoryUsage().rss;
    const outcomes = new Map<string, number>();
    let slowest = 0;
    for (const [i, { file }] of cases.entries()) {
      for (const route of [
        `/slides/${file}`,
        `/tiles/${file}/0/0/0.png`,
        `/tiles/${file}/0/0/0.jpg`,
        `/slides/${file}/thumbnail?max_size=64`,
        `/slides/${file}/dzi_files/8/0_0.jpg`,
      ]) {
        const started = performance.now();
        const { status } = await answered(route);
        slowest = Math.max(slowest, performance.now() - started);
        const kind = `${route.split('/')[1]}${route.includes('dzi') ? ' dzi' : route.includes('thumbnail') ? ' thumbnail' : ''} → ${status}`;
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
      }
      // The server keeps serving valid slides in between.
      if (i % 40 === 0) expect((await request(server, '/tiles/valid.svs/0/1/1.jpg')).status).toBe(200);
    }
    const rssGrowthMiB = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    console.info(
      [
        `${cases.length} mutated files, ${cases.length * 5} requests, slowest ${slowest.toFixed(0)} ms, RSS +${rssGrowthMiB.toFixed(0)} MiB`,
        ...[...outcomes.entries()].sort().map(([k, n]) => `  ${k}: ${n}`),
      ].join('\n'),
    );
    // Caches total 32 MiB here; the rest is decode buffers and the allocator's slack.
    expect(rssGrowthMiB).toBeLessThan(400);
    expect(brokenImages).toEqual([]);
    expect((await request(server, '/slides/valid.svs')).status).toBe(200);
  }, 600_000);
});

describe('hostile requests', () => {
  const LONG = 'a'.repeat(5000);
  it.each([
    ['/tiles/valid.svs/99999999999/0/0.jpg', 400],
    ['/tiles/valid.svs/-1/0/0.jpg', 400],
    ['/tiles/valid.svs/0/-5/0.jpg', 400],
    ['/tiles/valid.svs/0/0/99999999999999999999.jpg', 400],
    ['/tiles/valid.svs/0/1e3/0.jpg', 400],
    ['/slides/valid.svs/region?x=0&y=0&width=100000&height=100000', 400],
    ['/slides/valid.svs/region?x=99999999999&y=0&width=10&height=10', 400],
    ['/iiif/3/valid.svs/full/99999,99999/0/default.jpg', 400],
    ['/iiif/3/valid.svs/full/^pct:100000/0/default.jpg', 400],
    ['/iiif/3/valid.svs/0,0,9999999999,10/max/0/default.jpg', 200], // clipped to the image
    ['/iiif/3/valid.svs/0,0,999999999999,10/max/0/default.jpg', 400],
    ['/slides/valid.svs/dzi_files/99999/0_0.jpg', 400],
    ['/slides/valid.svs/thumbnail?max_size=99999999999999', 400],
    ['/slides/%E0%A4%A', 400],
    ['/tiles/%zz/0/0/0.jpg', 400],
    ['/slides/%00', 400],
    ['/no/such/route', 404],
  ])('GET %s → %i', async (route, status) => {
    const res = await request(server, route, { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    expect(res.status).toBe(status);
    if (status !== 200) {
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.json()).toMatchObject({ error: expect.any(String), status });
    }
  });

  it('a 5000-character id is refused as too long, in the JSON shape', async () => {
    const res = await request(server, `/slides/${LONG}`);
    expect(res.status).toBe(414);
    expect(res.json()).toMatchObject({ error: 'bad_request', status: 414 });
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('%s on an image route is a clean 4xx', async (method) => {
    const res = await request(server, '/tiles/valid.svs/0/0/0.jpg', {
      method,
      body: method === 'DELETE' ? undefined : 'x',
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  });
});
