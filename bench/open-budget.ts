// The `open` suite (issue 21): what opening a slide on S3 costs, per file layout, with 20 ms of
// latency on every storage request — GETs, bytes and wall time of "open + first level-0 tile"
// (a fresh MedStream process asked for the middle level-0 tile first), of the next tile
// beside it, and then of the slide's metadata (what a lazy open left for later: the rest of the
// directory chain). Layouts: the compare bench's 60000x45000 Aperio-layout SVS (every directory and its
// tile tables at the end), a real Aperio SVS (directories after each level's data), the bench's
// libvips pyramid, a COG (directories first), NDPI, and a DICOM WSI series (a folder id: a LIST,
// then one header per instance).
//
//   npm run bench -- open            (BENCH_BIG=0 leaves out the 60000x45000 SVS)
//
// Requests are counted at the latency proxy (everything that reached "S3") and split by
// MedStream's own statistics (/metrics): HEAD (stat), LIST and range GETs.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  checkThat,
  formatBytes,
  formatMs,
  type Benchmark,
  type BenchmarkResult,
  type ResultTable,
  type Suite,
} from './harness.js';
import { benchPyramid, benchSvs, FIXTURES } from './slides.js';
import { BENCH_BUCKET, type BenchStores } from './stores.js';
import { ServerProcess } from './tiles.js';

const S3RVER = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
const LATENCY_MS = 20;
const BIG = process.env.BENCH_BIG !== '0';

interface Layout {
  layout: string;
  /** The slide id in URLs (a folder id ends in `/`). */
  id: string;
  /** Objects to upload: key → local path. */
  objects: [string, string][];
}

async function layouts(): Promise<Layout[]> {
  const one = (layout: string, file: string): Layout => ({
    layout,
    id: path.basename(file),
    objects: [[path.basename(file), file]],
  });
  const dicomDir = path.join(FIXTURES, 'dicom-wsi/cmu-1-small-region');
  const dicom: Layout = {
    layout: 'DICOM WSI series, 12 instances (folder id)',
    id: 'dicom-cmu/',
    objects: (await readdir(dicomDir)).sort().map((n) => [`dicom-cmu/${n}`, path.join(dicomDir, n)]),
  };
  return [
    ...(BIG ? [one('Aperio layout, 60000x45000 (bench SVS)', (await benchSvs()).file)] : []),
    one('Aperio SVS (real, directories per level)', path.join(FIXTURES, 'svs/CMU-1-Small-Region.svs')),
    one('libvips pyramid, 20000x16000 (bench TIFF)', (await benchPyramid()).file),
    one('COG (directories first)', path.join(FIXTURES, 'cog/cog.tif')),
    one('Hamamatsu NDPI', path.join(FIXTURES, 'ndpi/test3-DAPI-2.ndpi')),
    dicom,
  ];
}

interface Counts {
  reads: number;
  stats: number;
  lists: number;
  bytes: number;
}

async function scrape(base: string): Promise<Counts> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const get = (name: string, kind: string) =>
    Number(new RegExp(`^${name}\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    reads: get('medstream_storage_requests_total', 'read'),
    stats: get('medstream_storage_requests_total', 'stat'),
    lists: get('medstream_storage_requests_total', 'list'),
    bytes: get('medstream_storage_bytes_total', 'read'),
  };
}

interface Step {
  status: number;
  ms: number;
  proxy: number;
  reads: number;
  stats: number;
  lists: number;
  bytes: number;
  body: number;
}

async function step(server: ServerProcess, stores: BenchStores, url: string): Promise<Step> {
  const before = await scrape(server.url);
  const proxyBefore = (await stores.counts()).proxy;
  const t0 = performance.now();
  const res = await fetch(server.url + url);
  const body = (await res.arrayBuffer()).byteLength;
  const ms = performance.now() - t0;
  const after = await scrape(server.url);
  return {
    status: res.status,
    ms,
    proxy: (await stores.counts()).proxy - proxyBefore,
    reads: after.reads - before.reads,
    stats: after.stats - before.stats,
    lists: after.lists - before.lists,
    bytes: after.bytes - before.bytes,
    body,
  };
}

function requests(s: Step): string {
  const parts = [
    `${s.reads} GET`,
    ...(s.stats ? [`${s.stats} HEAD`] : []),
    ...(s.lists ? [`${s.lists} LIST`] : []),
  ];
  return `${s.proxy} (${parts.join(' + ')})`;
}

const openBudget: Benchmark = {
  name: 'open-budget',
  title: `Open + first level-0 tile on S3 (s3rver + ${LATENCY_MS} ms/request), and the next tile, per file layout`,
  async run(stores: BenchStores): Promise<BenchmarkResult> {
    const all = await layouts();
    const client = new S3Client({
      endpoint: stores.endpoints.s3Direct,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER.AWS_ACCESS_KEY_ID, secretAccessKey: S3RVER.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    try {
      for (const { objects } of all)
        for (const [key, file] of objects)
          await client.send(
            new PutObjectCommand({ Bucket: BENCH_BUCKET, Key: key, Body: await readFile(file) }),
          );
    } finally {
      client.destroy();
    }
    await stores.setLatency(LATENCY_MS);
    const flags = [
      '--cache-tiles',
      '0',
      '--s3-endpoint',
      stores.endpoints.s3Proxied,
      '--s3-force-path-style',
      '--s3-region',
      'us-east-1',
    ];
    const rows: string[][] = [];
    const data: unknown[] = [];
    try {
      for (const layout of all) {
        // A fresh process per layout: nothing of the object is cached.
        const server = await ServerProcess.start(`s3://${BENCH_BUCKET}`, flags, S3RVER, 'warn');
        try {
          const id = encodeURIComponent(layout.id);
          // The middle tile, found without touching the server that is measured.
          const probe = await ServerProcess.start(`s3://${BENCH_BUCKET}`, flags, S3RVER, 'warn');
          let mid: [number, number];
          let beside: [number, number];
          try {
            const meta = (await (await fetch(`${probe.url}/slides/${id}`)).json()) as {
              levels: { tiles_x: number; tiles_y: number }[];
            };
            const { tiles_x: across, tiles_y: down } = meta.levels[0];
            mid = [across >> 1, down >> 1];
            // The tile to its right, else the one below (a one-column level).
            beside = mid[0] + 1 < across ? [mid[0] + 1, mid[1]] : [mid[0], Math.min(mid[1] + 1, down - 1)];
          } finally {
            await probe.close();
          }
          const first = await step(server, stores, `/tiles/${id}/0/${mid[0]}/${mid[1]}.jpg`);
          const next = await step(server, stores, `/tiles/${id}/0/${beside[0]}/${beside[1]}.jpg`);
          const meta = await step(server, stores, `/slides/${id}`);
          checkThat(
            first.status === 200 && next.status === 200 && meta.status === 200,
            `${layout.id}: tiles and metadata answered 200 (got ${first.status}, ${next.status}, ${meta.status})`,
          );
          rows.push([
            layout.layout,
            requests(first),
            formatBytes(first.bytes),
            formatMs(first.ms),
            requests(next),
            formatBytes(next.bytes),
            formatMs(next.ms),
            requests(meta),
            formatBytes(meta.bytes),
            formatMs(meta.ms),
          ]);
          data.push({ layout, mid, beside, first, next, meta });
        } finally {
          await server.close();
        }
      }
    } finally {
      await stores.setLatency(0);
    }
    const table: ResultTable = {
      title: `Fresh MedStream process per layout, tile cache off, default block cache (64 KiB blocks); requests counted at the ${LATENCY_MS} ms latency proxy, split by MedStream's own statistics; bytes = range-read bytes (the tile's own included)`,
      columns: [
        'layout',
        'open + first tile: requests',
        'bytes',
        'wall ms',
        'next tile: requests',
        'bytes',
        'wall ms',
        'then metadata: requests',
        'bytes',
        'wall ms',
      ],
      rows,
    };
    return { name: this.name, title: this.title, tables: [table], data };
  },
};

export const openSuite: Suite = {
  name: 'open',
  // run.ts uploads a suite's file to its stores; this suite uploads its layouts itself.
  file: path.join(FIXTURES, 'svs/CMU-1-Small-Region.svs'),
  benchmarks: [openBudget],
};
