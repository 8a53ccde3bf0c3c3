// `npm run bench -- dicomweb`: the radiology catalog and QIDO-RS.
//   index-local  indexing rate into SQLite from a local directory, and a re-scan with nothing changed
//   index-s3     the same from S3 (s3rver behind a proxy adding 20 ms per request)
//   qido         at 16 connections (wrk), MedStream vs Orthanc + DICOMweb on the same studies
//                (Orthanc imports them first; MedStream indexes them where they lie): study
//                searches, series metadata (WADO-RS), frames as stored (WADO-RS)
// Dataset size: BENCH_STUDIES (default 100) studies x 2 series x BENCH_PER_SERIES (10) instances.

import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Catalog } from '../src/catalog/catalog.js';
import { Indexer } from '../src/catalog/indexer.js';
import { parseConfig } from '../src/cli/config.js';
import { startServer } from '../src/cli/serve.js';
import { ReadStats } from '../src/io/stats.js';
import { LocalStorage } from '../src/storage/local.js';
import { S3Storage } from '../src/storage/s3.js';
import type { Storage } from '../src/storage/types.js';
import { writeDataset, type BenchDataset } from './dicomweb/data.js';
import {
  LOAD_SETTINGS,
  seededRandom,
  timed,
  type Benchmark,
  type BenchmarkResult,
  type Suite,
} from './harness.js';
import { findOrthanc, Orthanc, ORTHANC_INSTALL } from './peers/orthanc.js';
import { findWrk, wrk, type WrkResult } from './peers/wrk.js';
import { BENCH_BUCKET, type BenchStores } from './stores.js';

const STUDIES = Number(process.env.BENCH_STUDIES ?? 100);
const PER_SERIES = Number(process.env.BENCH_PER_SERIES ?? 10);
const S3_LATENCY_MS = 20;

let dataset: Promise<BenchDataset> | undefined;
function data(): Promise<BenchDataset> {
  dataset ??= mkdtemp(path.join(os.tmpdir(), 'medstream-bench-dicomweb-')).then((dir) =>
    writeDataset(dir, STUDIES, PER_SERIES),
  );
  return dataset;
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);

/** A first scan and a re-scan of `storage` into a fresh SQLite catalog. */
async function scans(storage: Storage, stats: ReadStats, label: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-catalog-'));
  const catalog = await Catalog.open(path.join(dir, 'catalog.sqlite'));
  try {
    const indexer = new Indexer(storage, catalog);
    const before = stats.snapshot();
    const first = await timed(() => indexer.scan({ concurrency: 32 }));
    const middle = stats.snapshot();
    const again = await timed(() => indexer.scan({ concurrency: 32 }));
    const after = stats.snapshot();
    const instances = first.value.indexed;
    return {
      label,
      instances,
      firstMs: first.ms,
      rate: instances / (first.ms / 1000),
      firstReads: middle.read.requests - before.read.requests,
      firstLists: middle.list.requests - before.list.requests,
      againMs: again.ms,
      againReads: after.read.requests - middle.read.requests,
      againLists: after.list.requests - middle.list.requests,
    };
  } finally {
    await catalog.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function scanTable(rows: Awaited<ReturnType<typeof scans>>[]) {
  return {
    title: `Indexing ${rows[0]?.instances ?? 0} instances (${STUDIES} studies) into SQLite, 32 header reads in flight`,
    columns: [
      'storage',
      'first scan',
      'instances/s',
      'reads / lists',
      're-scan, nothing changed',
      'reads / lists',
    ],
    rows: rows.map((r) => [
      r.label,
      `${fmt(r.firstMs)} ms`,
      fmt(r.rate),
      `${r.firstReads} / ${r.firstLists}`,
      `${fmt(r.againMs)} ms`,
      `${r.againReads} / ${r.againLists}`,
    ]),
  };
}

const indexLocal: Benchmark = {
  name: 'index-local',
  title: 'Catalog indexing from local disk',
  async run(): Promise<BenchmarkResult> {
    const d = await data();
    const stats = new ReadStats({ maxKeys: 0 });
    const storage = await LocalStorage.create(d.dir, { observer: stats });
    const row = await scans(storage, stats, 'local disk');
    await storage.close();
    return { name: 'index-local', title: this.title, tables: [scanTable([row])], data: row };
  },
};

const indexS3: Benchmark = {
  name: 'index-s3',
  title: 'Catalog indexing from S3 with 20 ms per request',
  async run(stores: BenchStores): Promise<BenchmarkResult> {
    const d = await data();
    const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const client = new S3Client({
      endpoint: stores.endpoints.s3Direct,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < d.files.length) {
          const file = d.files[next++];
          const key = `radiology/${path.relative(d.dir, file)}`;
          await client.send(
            new PutObjectCommand({ Bucket: BENCH_BUCKET, Key: key, Body: await readFile(file) }),
          );
        }
      }),
    );
    client.destroy();
    await stores.setLatency(S3_LATENCY_MS);
    const stats = new ReadStats({ maxKeys: 0 });
    const storage = new S3Storage({
      bucket: BENCH_BUCKET,
      prefix: 'radiology/',
      endpoint: stores.endpoints.s3Proxied,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
      observer: stats,
    });
    try {
      const row = await scans(storage, stats, `S3 + ${S3_LATENCY_MS} ms`);
      return { name: 'index-s3', title: this.title, tables: [scanTable([row])], data: row };
    } finally {
      await stores.setLatency(0);
      await storage.close();
    }
  },
};

/** Series metadata and first frames of every instance (what a viewer asks to open a series). */
function wadoUrls(d: BenchDataset, root: string) {
  const series = [...new Set(d.instances.map((i) => `${i.study}/series/${i.series}`))];
  return {
    metadata: series.map((s) => `${root}/studies/${s}/metadata`),
    frames: d.instances.map(
      (i) => `${root}/studies/${i.study}/series/${i.series}/instances/${i.sop}/frames/1`,
    ),
  };
}

/** Study searches of the kinds a worklist and a viewer send. */
function queries(d: BenchDataset, root: string): string[] {
  const random = seededRandom(7);
  const pick = () => d.patientIds[Math.floor(random() * d.patientIds.length)];
  const out: string[] = [];
  for (let i = 0; i < 200; i++) {
    const kind = i % 4;
    if (kind === 0) out.push(`${root}/studies?PatientID=${pick()}`);
    else if (kind === 1)
      out.push(`${root}/studies?PatientName=Patient%5E${1 + Math.floor(random() * d.studies)}*`);
    else if (kind === 2) out.push(`${root}/studies?StudyDate=20150101-20191231&limit=25`);
    else
      out.push(
        `${root}/studies?AccessionNumber=ACC${1 + Math.floor(random() * d.studies)}&includefield=00081030`,
      );
  }
  return out;
}

const qido: Benchmark = {
  name: 'qido',
  title:
    'DICOMweb at 16 connections (QIDO study search, WADO series metadata and frames), MedStream vs Orthanc',
  async run(): Promise<BenchmarkResult> {
    const d = await data();
    const wrkBinary = await findWrk();
    if (!wrkBinary) throw new Error('wrk not found (apt-get install -y wrk)');
    const work = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-qido-'));
    const { config } = parseConfig(
      [
        d.dir,
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--log-level',
        'silent',
        '--data-dir',
        work,
        '--no-index-at-start',
      ],
      {},
    );
    const server = await startServer(config);
    const workloads = ['study search', 'series metadata', 'frames as stored'] as const;
    const results: Record<string, Record<string, WrkResult>> = Object.fromEntries(
      workloads.map((w) => [w, {}]),
    );
    const urlsFor = (root: string) => {
      const wado = wadoUrls(d, root);
      return {
        'study search': queries(d, root),
        'series metadata': wado.metadata,
        'frames as stored': wado.frames,
      };
    };
    let orthanc: Orthanc | undefined;
    let note = '';
    try {
      const indexed = await timed(() =>
        fetch(`${server.url}/admin/reindex?wait=true`, { method: 'POST' }).then((r) => r.json()),
      );
      note += `MedStream indexed the files in place in ${fmt(indexed.ms)} ms. `;
      const seconds = LOAD_SETTINGS.durationS;
      const ours = urlsFor('/dicomweb');
      for (const w of workloads)
        results[w].medstream = await wrk(wrkBinary, server.url, ours[w], { connections: 16, seconds });
      const binary = await findOrthanc();
      if (!binary) note += `Orthanc not run: not installed (${ORTHANC_INSTALL}).`;
      else {
        orthanc = await Orthanc.start(binary);
        const imported = await timed(() => orthanc!.importFiles(d.files));
        note += `Orthanc imported them in ${fmt(imported.ms)} ms.`;
        const theirs = urlsFor('/dicom-web');
        for (const w of workloads)
          results[w].orthanc = await wrk(wrkBinary, orthanc.url, theirs[w], { connections: 16, seconds });
      }
    } finally {
      await orthanc?.close();
      await server.close();
      await rm(work, { recursive: true, force: true });
    }
    const rows: string[][] = [];
    for (const w of workloads) {
      const m = results[w].medstream;
      const o = results[w].orthanc;
      const rate = (r: WrkResult) => r.requests / r.seconds;
      for (const [name, r] of [
        ['MedStream', m],
        ['Orthanc', o],
      ] as const) {
        if (r)
          rows.push([
            w,
            name,
            fmt(rate(r)),
            `${r.p50Ms.toFixed(1)} ms`,
            `${r.p99Ms.toFixed(1)} ms`,
            String(r.errors),
          ]);
      }
      rows.push([w, 'MedStream / Orthanc', o ? `${(rate(m) / rate(o)).toFixed(1)}×` : '—', '', '', '']);
    }
    return {
      name: 'qido',
      title: this.title,
      tables: [
        {
          title: `${STUDIES} studies, 16 connections, ${LOAD_SETTINGS.durationS} s per run. ${note}`,
          columns: ['workload', 'server', 'req/s', 'p50', 'p99', 'errors'],
          rows,
        },
      ],
      data: { results, note },
    };
  },
};

export const dicomwebSuite: Suite = {
  name: 'dicomweb',
  // BenchStores uploads one file; the suite uploads its own dataset as well.
  file: path.resolve(
    path.dirname(new URL(import.meta.url).pathname),
    '../../shared/fixtures/volumes/ct-dicom-j2k/CT.1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573',
  ),
  benchmarks: [indexLocal, indexS3, qido],
};
