// `npm run bench -- dicomweb`: the radiology catalog and QIDO-RS.
//   index-local  indexing rate into SQLite from a local directory, and a re-scan with nothing changed
//   index-s3     the same from S3 (s3rver behind a proxy adding 20 ms per request)
//   qido         at 16 connections (wrk), MedStream vs Orthanc + DICOMweb on the same studies
//                (Orthanc imports them first; MedStream indexes them where they lie): study
//                searches, series metadata (WADO-RS), frames as stored (WADO-RS), the same frame
//                bytes as static files behind nginx (the ceiling), and the fixture JPEG 2000 CT
//                transcoded to explicit VR little endian (Orthanc at 2 connections only)
// Dataset size: BENCH_STUDIES (default 100) studies x 2 series x BENCH_PER_SERIES (10) instances.

import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, readdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { findNginx, Nginx, NGINX_INSTALL } from './peers/nginx.js';
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

const CT_FIXTURE = path.resolve(
  path.dirname(new URL(import.meta.url).pathname),
  '../../shared/fixtures/volumes/ct-dicom-j2k',
);
const TRANSCODE_STUDY = '1.2.826.0.1.3680043.9.7779.999';
const TRANSCODE_SERIES = `${TRANSCODE_STUDY}.1`;
const EXPLICIT_VR_LE_ACCEPT =
  'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1';

/**
 * The fixture CT (20 JPEG 2000 lossless 512x512 slices) copied into `dir` with the UIDs it lacks
 * (dcmodify), so Orthanc accepts it too; returns the files and their frame URLs under a root.
 */
async function transcodeSet(dir: string): Promise<{ files: string[]; urls: (root: string) => string[] }> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const sops: string[] = [];
  for (const name of (await readdir(CT_FIXTURE)).sort()) {
    const sop = name.replace(/^CT\./, '');
    const file = path.join(dir, name);
    await copyFile(path.join(CT_FIXTURE, name), file);
    execFileSync('dcmodify', [
      '-nb',
      '-i', `(0020,000D)=${TRANSCODE_STUDY}`,
      '-i', `(0020,000E)=${TRANSCODE_SERIES}`,
      '-i', `(0008,0018)=${sop}`,
      '-i', '(0008,0016)=1.2.840.10008.5.1.4.1.1.2',
      '-i', '(0010,0020)=TRANSCODE',
      file,
    ]); // prettier-ignore
    files.push(file);
    sops.push(sop);
  }
  return {
    files,
    urls: (root) =>
      sops.map(
        (sop) => `${root}/studies/${TRANSCODE_STUDY}/series/${TRANSCODE_SERIES}/instances/${sop}/frames/1`,
      ),
  };
}

/** The stored first frame of every synthetic instance (its last 64x64x2 bytes) as static files. */
async function staticFrames(d: BenchDataset, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const urls: string[] = [];
  for (const [i, file] of d.files.entries()) {
    const bytes = await readFile(file);
    await writeFile(path.join(dir, `f${i}`), bytes.subarray(bytes.length - 64 * 64 * 2));
    urls.push(`/f${i}`);
  }
  return urls;
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
    // The transcode set lies in the served folder while the benchmark runs.
    const transcode = await transcodeSet(path.join(d.dir, 'zz-transcode'));
    const server = await startServer(config);
    const workloads = [
      'study search',
      'series metadata',
      'frames as stored',
      'frames as static files (nginx)',
      'J2K frames transcoded (16 conn.)',
      'J2K frames transcoded (2 conn.)',
    ] as const;
    const results: Record<string, Record<string, WrkResult>> = Object.fromEntries(
      workloads.map((w) => [w, {}]),
    );
    const urlsFor = (root: string) => {
      const wado = wadoUrls(d, root);
      return {
        'study search': queries(d, root),
        'series metadata': wado.metadata,
        'frames as stored': wado.frames,
        'frames as static files (nginx)': [] as string[],
        'J2K frames transcoded (16 conn.)': transcode.urls(root),
        'J2K frames transcoded (2 conn.)': transcode.urls(root),
      };
    };
    let orthanc: Orthanc | undefined;
    let nginx: Nginx | undefined;
    let note = '';
    /** wrk settings per workload: transcodes send an Accept header; Orthanc's GDCM only at 2 connections. */
    const settings = (w: (typeof workloads)[number]) => ({
      connections: w === 'J2K frames transcoded (2 conn.)' ? 2 : 16,
      seconds: LOAD_SETTINGS.durationS,
      accept: w.startsWith('J2K') ? EXPLICIT_VR_LE_ACCEPT : undefined,
    });
    try {
      const indexed = await timed(() =>
        fetch(`${server.url}/admin/reindex?wait=true`, { method: 'POST' }).then((r) => r.json()),
      );
      note += `MedStream indexed the files in place in ${fmt(indexed.ms)} ms. `;
      const seconds = LOAD_SETTINGS.durationS;
      const ours = urlsFor('/dicomweb');
      for (const w of workloads) {
        if (ours[w].length > 0) results[w].medstream = await wrk(wrkBinary, server.url, ours[w], settings(w));
      }
      const nginxBinary = await findNginx();
      if (!nginxBinary) note += `nginx not run: not installed (${NGINX_INSTALL}). `;
      else {
        const root = path.join(work, 'static');
        const urls = await staticFrames(d, root);
        // nginx's worker runs as nobody when the bench runs as root: the folders must be readable.
        await chmod(work, 0o755);
        await chmod(root, 0o755);
        nginx = await Nginx.start(nginxBinary, {
          upstreams: [],
          protocol: 'http',
          balance: 'round-robin',
          root,
        });
        results['frames as static files (nginx)'].nginx = await wrk(wrkBinary, nginx.url, urls, {
          connections: 16,
          seconds,
        });
      }
      const binary = await findOrthanc();
      if (!binary) note += `Orthanc not run: not installed (${ORTHANC_INSTALL}).`;
      else {
        orthanc = await Orthanc.start(binary);
        const imported = await timed(() => orthanc!.importFiles([...d.files, ...transcode.files]));
        note += `Orthanc imported them in ${fmt(imported.ms)} ms.`;
        const theirs = urlsFor('/dicom-web');
        for (const w of workloads) {
          // Orthanc's GDCM transcoder crashes at >= 4 concurrent JPEG 2000 transcodes.
          if (theirs[w].length === 0 || w === 'J2K frames transcoded (16 conn.)') continue;
          results[w].orthanc = await wrk(wrkBinary, orthanc.url, theirs[w], settings(w));
        }
      }
    } finally {
      await orthanc?.close();
      await nginx?.close();
      await server.close();
      await rm(path.join(d.dir, 'zz-transcode'), { recursive: true, force: true });
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
        ['nginx', results[w].nginx],
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
      // A ratio only where Orthanc answered every request (its transcodes can fail: 500).
      if (m && o && o.errors === 0)
        rows.push([w, 'MedStream / Orthanc', `${(rate(m) / rate(o)).toFixed(1)}×`, '', '', '']);
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
