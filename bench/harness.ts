// What every benchmark shares: the result shape run.ts prints and saves, timing, counting the
// requests a step caused, a seeded random source, and number formatting. The machine is shared
// and noisy, so a benchmark measures a variant and its peer in the same run, interleaved, and
// reports their ratio beside the raw numbers.

import type { ReadStats } from '../src/io/stats.js';
import type { BenchStores } from './stores.js';

/** A table as printed to the terminal and pasted into BENCHMARKS.md (markdown). */
export interface ResultTable {
  title: string;
  columns: string[];
  rows: string[][];
}

export interface BenchmarkResult {
  name: string;
  title: string;
  tables: ResultTable[];
  /** The raw measurements behind the tables, for the JSON file. */
  data: unknown;
}

export interface Benchmark {
  /** Short name, selectable on the command line (`npm run bench -- coalesce`). */
  name: string;
  title: string;
  run(stores: BenchStores): Promise<BenchmarkResult>;
}

export interface Suite {
  name: string;
  /** The file every benchmark of the suite reads, uploaded to each store. */
  file: string;
  benchmarks: Benchmark[];
}

const SHORT = process.env.BENCH_SHORT === '1';

/**
 * The settings of the wrk-driven suites (`compare`, `replicas`), from the environment (run.ts
 * takes only benchmark names): BENCH_SHORT=1 (3 s runs, 1 round: for development),
 * BENCH_DURATION (seconds per wrk run, 10), BENCH_ROUNDS (interleaved rounds, 2),
 * BENCH_CONNECTIONS (`16,64`).
 */
export const LOAD_SETTINGS = {
  short: SHORT,
  durationS: Number(process.env.BENCH_DURATION ?? (SHORT ? 3 : 10)),
  rounds: Number(process.env.BENCH_ROUNDS ?? (SHORT ? 1 : 2)),
  connections: (process.env.BENCH_CONNECTIONS ?? '16,64').split(',').map(Number),
};

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

/** Read requests and bytes a storage reported while `fn` ran (each retry counts as a request). */
export async function counted<T>(
  stats: ReadStats,
  fn: () => Promise<T>,
): Promise<{ ms: number; value: T; requests: number; bytes: number }> {
  const before = stats.snapshot().read;
  const { ms, value } = await timed(fn);
  const after = stats.snapshot().read;
  return { ms, value, requests: after.requests - before.requests, bytes: after.bytes - before.bytes };
}

/**
 * Runs each variant `rounds` times, alternating the order every round (ABBA...) so that a slow
 * spell of the shared machine hits both alike; returns each variant's results in run order.
 */
export async function interleaved<T>(
  rounds: number,
  variants: Record<string, (round: number) => Promise<T>>,
): Promise<Record<string, T[]>> {
  const names = Object.keys(variants);
  const results: Record<string, T[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) results[name].push(await variants[name](round));
  }
  return results;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** mulberry32: a tiny seeded PRNG, so every run reads the same offsets. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max]. */
export function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** Throws unless `actual` equals `expected`: a benchmark that got wrong bytes measured nothing. */
export function checkBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.compare(actual, expected) !== 0) throw new Error(`${what}: wrong bytes`);
}

/** Throws when a benchmark's own expectation (e.g. "one request") does not hold. */
export function checkThat(condition: boolean, what: string): void {
  if (!condition) throw new Error(`benchmark expectation failed: ${what}`);
}

export const KiB = 1024;
export const MiB = 1024 * KiB;

export function formatBytes(bytes: number): string {
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(2)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

export function formatRate(perSecond: number): string {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

/** `peer / ours` as a speed-up factor, e.g. `12.3×`. */
export function formatRatio(ratio: number): string {
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

export function markdownTable(table: ResultTable): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `**${table.title}**`,
    '',
    line(table.columns),
    line(table.columns.map(() => '---')),
    ...table.rows.map(line),
  ].join('\n');
}
