// Benchmark 2: tile reads issued together (a viewer asking for a 4×4 viewport) through the range
// coalescer, against the same reads sent to the backend one request each, all at once. On S3 with
// 20 ms per request: requests, bytes fetched beyond what was asked (gap bytes), and wall time.
// Also: a lone tile through the coalescer costs one request of exactly its own bytes.

import { createReaderFactory } from '../../src/io/reader.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { CoalescerStats, DEFAULT_GAP_BYTES } from '../../src/io/coalesce.js';
import type { ByteSource } from '../../src/storage/types.js';
import {
  checkBytes,
  checkThat,
  counted,
  formatBytes,
  formatMs,
  formatRatio,
  interleaved,
  KiB,
  median,
  randomInt,
  seededRandom,
  type Benchmark,
  type ResultTable,
} from '../harness.js';
import type { BenchStores, OpenedObject } from '../stores.js';
import { S3_LATENCY_MS } from './block-cache.js';
import { expectedBytes, firstImageTiles, slideBytes } from './fixture-bytes.js';

const ROUNDS = 12;

interface Range {
  offset: number;
  length: number;
}

interface Run {
  ms: number;
  requests: number;
  bytesAsked: number;
  bytesFetched: number;
}

interface Scenario {
  name: string;
  /** The reads of round `round` (a different viewport each round). */
  reads(round: number): Range[];
}

/** 16 tiles of 8–30 KiB, each adjacent to the last or up to 2 KiB after it. */
const syntheticViewport: Scenario = {
  name: '16 tiles 8–30 KiB, gaps 0–2 KiB',
  reads(round) {
    const random = seededRandom(0x5eed_0200 + round);
    const sizes = Array.from({ length: 16 }, () => ({
      length: randomInt(random, 8 * KiB, 30 * KiB),
      gap: random() < 0.5 ? 0 : randomInt(random, 1, 2 * KiB),
    }));
    const span = sizes.reduce((sum, { length, gap }) => sum + length + gap, 0);
    let offset = randomInt(random, 0, slideBytes().length - span);
    return sizes.map(({ length, gap }) => {
      offset += gap;
      const range = { offset, length };
      offset += length;
      return range;
    });
  },
};

/** A 4×4 block of the slide's own tiles: 4 rows of 4 adjacent tiles, the rows a slide row apart. */
const realViewport: Scenario = {
  name: '4×4 viewport of real SVS tiles',
  reads(round) {
    const grid = firstImageTiles();
    const random = seededRandom(0x5eed_0300 + round);
    const column = randomInt(random, 0, grid.tilesAcross - 4);
    const row = randomInt(random, 0, grid.tilesDown - 4);
    const ranges: Range[] = [];
    for (let y = row; y < row + 4; y++) {
      for (let x = column; x < column + 4; x++) {
        const tile = y * grid.tilesAcross + x;
        ranges.push({ offset: grid.offsets[tile], length: grid.byteCounts[tile] });
      }
    }
    return ranges;
  },
};

/** One real tile, alone. */
const loneTile: Scenario = {
  name: 'lone real SVS tile',
  reads(round) {
    const grid = firstImageTiles();
    const tile = randomInt(seededRandom(0x5eed_0400 + round), 0, grid.offsets.length - 1);
    return [{ offset: grid.offsets[tile], length: grid.byteCounts[tile] }];
  },
};

async function readTogether(source: ByteSource, reads: Range[], what: string): Promise<void> {
  const answers = await Promise.all(reads.map((r) => source.read(r.offset, r.length, { purpose: 'data' })));
  answers.forEach((bytes, i) => checkBytes(bytes, expectedBytes(reads[i].offset, reads[i].length), what));
}

async function measure(object: OpenedObject, scenario: Scenario): Promise<Record<string, Run[]>> {
  const asked = (reads: Range[]) => reads.reduce((sum, r) => sum + r.length, 0);
  return interleaved<Run>(ROUNDS, {
    individual: async (round) => {
      const reads = scenario.reads(round);
      const run = await counted(object.stats, () => readTogether(object.source, reads, 'individual'));
      return { ms: run.ms, requests: run.requests, bytesAsked: asked(reads), bytesFetched: run.bytes };
    },
    coalesced: async (round) => {
      const reads = scenario.reads(round);
      const coalescerStats = new CoalescerStats();
      const blockCache = new BlockCache({ maxBytes: 0 });
      const source = createReaderFactory({ blockCache, coalescerStats })(object.source);
      const run = await counted(object.stats, () => readTogether(source, reads, 'coalesced'));
      checkThat(coalescerStats.requests === run.requests, 'coalescer and backend agree on requests');
      return { ms: run.ms, requests: run.requests, bytesAsked: asked(reads), bytesFetched: run.bytes };
    },
  });
}

export const coalesceBenchmark: Benchmark = {
  name: 'coalesce',
  title: 'Coalescing: tile reads issued together',
  async run(stores: BenchStores) {
    await stores.setLatency(S3_LATENCY_MS);
    const object = await stores.open('s3+latency');
    const table: ResultTable = {
      title: `S3 (s3rver) with ${S3_LATENCY_MS} ms/request; ${ROUNDS} rounds, a different viewport each; gap limit ${DEFAULT_GAP_BYTES / KiB} KiB; sums are per round (median)`,
      columns: [
        'reads',
        'variant',
        'requests',
        'bytes asked',
        'bytes fetched',
        'gap bytes fetched',
        'wall ms (median)',
        'speed-up (individual ÷ this)',
      ],
      rows: [],
    };
    const data: unknown[] = [];
    for (const scenario of [syntheticViewport, realViewport, loneTile]) {
      const storeBefore = await stores.requestsSeen('s3+latency');
      const runs = await measure(object, scenario);
      const storeAfter = await stores.requestsSeen('s3+latency');
      const sent = [...runs.individual, ...runs.coalesced].reduce((sum, run) => sum + run.requests, 0);
      checkThat(storeAfter! - storeBefore! === sent, 'the store saw every request we counted');
      if (scenario === loneTile) {
        for (const run of runs.coalesced) {
          checkThat(
            run.requests === 1 && run.bytesFetched === run.bytesAsked,
            'a lone tile costs its own bytes',
          );
        }
      }
      const individualMs = median(runs.individual.map((run) => run.ms));
      for (const variant of ['individual', 'coalesced'] as const) {
        const ms = median(runs[variant].map((run) => run.ms));
        const pick = (field: keyof Run) => median(runs[variant].map((run) => run[field]));
        table.rows.push([
          scenario.name,
          variant === 'individual' ? 'one request per read, all at once' : 'CachedSource + RangeCoalescer',
          String(pick('requests')),
          formatBytes(pick('bytesAsked')),
          formatBytes(pick('bytesFetched')),
          formatBytes(median(runs[variant].map((run) => run.bytesFetched - run.bytesAsked))),
          formatMs(ms),
          variant === 'individual' ? '1× (peer)' : formatRatio(individualMs / ms),
        ]);
      }
      data.push({ scenario: scenario.name, rounds: ROUNDS, runs });
    }
    return { name: this.name, title: this.title, tables: [table], data };
  },
};
