// Entry point of `npm run bench`: runs every suite, or the suites and benchmarks named as
// arguments (`npm run bench -- io`, `npm run bench -- coalesce singleflight`), prints each result
// as markdown tables and writes the raw measurements to .bench-cache/results-<suite>.json.

import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { compareSuite } from './compare.js';
import { derivedSuite } from './derived.js';
import { dicomwebSuite } from './dicomweb.js';
import { markdownTable, type Benchmark, type BenchmarkResult, type Suite } from './harness.js';
import { inferenceSuite } from './inference.js';
import { ioSuite } from './io.js';
import { openSuite } from './open-budget.js';
import { progressiveSuite } from './progressive.js';
import { replicasSuite } from './replicas.js';
import { segmentSuite } from './segment.js';
import { BenchStores } from './stores.js';
import { tilesSuite } from './tiles.js';

const SUITES: Suite[] = [
  ioSuite,
  tilesSuite,
  compareSuite,
  replicasSuite,
  openSuite,
  dicomwebSuite,
  inferenceSuite,
  segmentSuite,
  derivedSuite,
  progressiveSuite,
];
const CACHE_DIR = fileURLToPath(new URL('../.bench-cache/', import.meta.url));

/** The benchmarks each suite should run for these arguments (all of them for none). */
function select(names: string[]): Map<Suite, Benchmark[]> {
  const chosen = new Map<Suite, Benchmark[]>();
  const known = SUITES.flatMap((suite) => [suite.name, ...suite.benchmarks.map((b) => b.name)]);
  const unknown = names.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new Error(`unknown benchmark ${unknown.join(', ')}; choose from: ${known.join(', ')}`);
  }
  for (const suite of SUITES) {
    const picked =
      names.length === 0 || names.includes(suite.name)
        ? suite.benchmarks
        : suite.benchmarks.filter((b) => names.includes(b.name));
    if (picked.length > 0) chosen.set(suite, picked);
  }
  return chosen;
}

function environment() {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    loadAverage: os.loadavg(),
  };
}

async function runSuite(suite: Suite, benchmarks: Benchmark[]): Promise<void> {
  const started = environment();
  console.log(`# suite ${suite.name} (${started.cpus} × ${started.cpuModel}, node ${started.node})\n`);
  // A suite without a file (segment) reads local fixtures and needs no store peers.
  const stores = suite.file === '' ? undefined : await BenchStores.start(suite.file);
  const results: BenchmarkResult[] = [];
  try {
    for (const benchmark of benchmarks) {
      const began = performance.now();
      const result = await benchmark.run(stores as BenchStores);
      const seconds = ((performance.now() - began) / 1000).toFixed(1);
      console.log(`## ${result.title} (${result.name}, ${seconds} s)\n`);
      for (const table of result.tables) console.log(`${markdownTable(table)}\n`);
      results.push(result);
    }
  } finally {
    await stores?.close();
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const file = `${CACHE_DIR}results-${suite.name}.json`;
  const report = { suite: suite.name, environment: started, finishedAt: new Date().toISOString(), results };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`raw results: ${file}`);
}

async function main(): Promise<void> {
  for (const [suite, benchmarks] of select(process.argv.slice(2))) await runSuite(suite, benchmarks);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
