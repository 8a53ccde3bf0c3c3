// Benchmark 3: raw backend read throughput, one 64 KiB or 1 MiB range read after another, each of
// our backends against the bare client of the same transport in the same run: a FileHandle read
// for local disk, the AWS SDK's GetObject for s3rver, a plain fetch for the range server. The
// ratio is what our layer (version checks, retries, statistics, exact-length bodies) costs.

import { promises as fs } from 'node:fs';
import http from 'node:http';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  checkBytes,
  formatRate,
  formatRatio,
  KiB,
  median,
  MiB,
  randomInt,
  seededRandom,
  type Benchmark,
  type ResultTable,
} from '../harness.js';
import { BENCH_BUCKET, type BackendName, type BenchStores } from '../stores.js';
import { expectedBytes, slideBytes, SLIDE_FILE } from './fixture-bytes.js';

/**
 * Each backend and size: ours and the peer read alternately, one read each in turn (ABBA), for
 * this long in all or MAX_PAIRS pairs. Alternating read by read, rather than in long runs, is
 * what keeps a slow spell of the shared machine from landing on one side only.
 */
const BOX_MS = 3000;
const MAX_PAIRS = 20_000;
const SIZES = [64 * KiB, 1 * MiB];
const BACKENDS: Array<Exclude<BackendName, 's3+latency'>> = ['local', 's3', 'http'];

type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

interface Peer {
  name: string;
  read: ReadAt;
  close(): Promise<void>;
}

interface Timings {
  /** Duration of each read, ms, in order. */
  ours: number[];
  peer: number[];
}

/** The bare client our `backend` is built on, reading the same object. */
async function openPeer(backend: Exclude<BackendName, 's3+latency'>, stores: BenchStores): Promise<Peer> {
  switch (backend) {
    case 'local': {
      const handle = await fs.open(SLIDE_FILE, 'r');
      return {
        name: 'fs.promises FileHandle.read',
        read: async (offset, length) => {
          const buffer = new Uint8Array(length);
          for (let filled = 0; filled < length;) {
            const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
            if (bytesRead === 0) throw new Error('short read');
            filled += bytesRead;
          }
          return buffer;
        },
        close: () => handle.close(),
      };
    }
    case 's3': {
      const client = new S3Client({
        endpoint: stores.endpoints.s3Direct,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: { httpAgent: new http.Agent({ keepAlive: true }) },
      });
      return {
        name: 'AWS SDK GetObject + transformToByteArray',
        read: async (offset, length) => {
          const range = `bytes=${offset}-${offset + length - 1}`;
          const out = await client.send(
            new GetObjectCommand({ Bucket: BENCH_BUCKET, Key: stores.key, Range: range }),
          );
          if (out.Body === undefined) throw new Error('no body');
          return out.Body.transformToByteArray();
        },
        close: async () => client.destroy(),
      };
    }
    case 'http': {
      const url = new URL(stores.key, stores.endpoints.http);
      return {
        name: 'fetch + arrayBuffer',
        read: async (offset, length) => {
          const res = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
          if (res.status !== 206) throw new Error(`HTTP ${res.status}`);
          return new Uint8Array(await res.arrayBuffer());
        },
        close: async () => undefined,
      };
    }
  }
}

/** Pairs of reads at seeded random offsets, ours and the peer's at the same offset, alternating. */
async function readAlternately(ours: ReadAt, peer: ReadAt, length: number, what: string): Promise<Timings> {
  const random = seededRandom(0x5eed_0500 + length);
  const last = slideBytes().length - length;
  const first = randomInt(random, 0, last);
  checkBytes(await ours(first, length), expectedBytes(first, length), `${what} ours`);
  checkBytes(await peer(first, length), expectedBytes(first, length), `${what} peer`);
  const timings: Timings = { ours: [], peer: [] };
  const started = performance.now();
  for (let pair = 0; pair < MAX_PAIRS && performance.now() - started < BOX_MS; pair++) {
    const offset = randomInt(random, 0, last);
    const order = pair % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
    for (const side of order) {
      const began = performance.now();
      await (side === 'ours' ? ours : peer)(offset, length);
      timings[side].push(performance.now() - began);
    }
  }
  return timings;
}

export const throughputBenchmark: Benchmark = {
  name: 'throughput',
  title: 'Raw backend read throughput',
  async run(stores: BenchStores) {
    const table: ResultTable = {
      title: `One range read at a time at random offsets, ours and the peer alternating read by read for ${BOX_MS / 1000} s per row; reads/s = reads ÷ their summed time, the median ratio is of the median read times; s3 = s3rver, no added latency; http = test range server`,
      columns: [
        'backend',
        'read size',
        'reads each',
        'ours reads/s',
        'ours MB/s',
        'ours median µs',
        'peer (bare client)',
        'peer reads/s',
        'peer MB/s',
        'peer median µs',
        'ours ÷ peer (reads/s)',
        'ours ÷ peer (median)',
      ],
      rows: [],
    };
    const data: unknown[] = [];
    for (const backend of BACKENDS) {
      const object = await stores.open(backend);
      const peer = await openPeer(backend, stores);
      try {
        for (const length of SIZES) {
          const timings = await readAlternately(
            (o, l) => object.source.read(o, l),
            peer.read,
            length,
            `${backend} ${length} B`,
          );
          const total = (ms: number[]) => ms.reduce((sum, t) => sum + t, 0);
          const [ours, theirs] = [timings.ours, timings.peer].map((ms) => (ms.length / total(ms)) * 1000);
          const mbps = (perSecond: number) => ((perSecond * length) / 1e6).toFixed(0);
          const micros = (ms: number[]) => (median(ms) * 1000).toFixed(0);
          table.rows.push([
            backend,
            length >= MiB ? `${length / MiB} MiB` : `${length / KiB} KiB`,
            String(timings.ours.length),
            formatRate(ours),
            mbps(ours),
            micros(timings.ours),
            peer.name,
            formatRate(theirs),
            mbps(theirs),
            micros(timings.peer),
            formatRatio(ours / theirs),
            formatRatio(median(timings.peer) / median(timings.ours)),
          ]);
          data.push({ backend, length, peer: peer.name, timings });
        }
      } finally {
        await peer.close();
      }
    }
    return { name: this.name, title: this.title, tables: [table], data };
  },
};
