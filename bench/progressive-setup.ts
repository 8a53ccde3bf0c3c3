// What `npm run bench -- progressive` needs before it measures: the data (generated once into
// .bench-cache/progressive/ by bench/progressive-data.py, then indexed with every derived
// representation prepared ahead by `medstream index --prepare`), and the bench page
// (bench/progressive-page/page.ts bundled with esbuild and the radiology viewer's Cornerstone3D
// asset plugin, served from a temporary folder by a static server on 127.0.0.1).

import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { CORNERSTONE_WORKERS, cornerstoneAssets } from '../scripts/cornerstone-assets.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CT_DIR = fileURLToPath(new URL('../../shared/fixtures/volumes/ct-dicom-j2k', import.meta.url));
const MAIN = path.join(ROOT, 'src/cli/main.ts');
export const PROGRESSIVE_CACHE = path.join(ROOT, '.bench-cache', 'progressive');

export interface BenchData {
  /** The folder the server serves: stack3036/, volume174/, tiny64/ and warmup/ (the fixture CT). */
  storage: string;
  /** --data-dir of the server: its catalog and the prepared derived frames. */
  dataDir: string;
}

/** The representations prepared ahead (every configuration's paths). */
const PREPARED = 'htj2k,thumbnails,jls,lossy';
/** Version of bench/progressive-data.py's output (2: the 64x64 image); older data is regenerated. */
const DATA_VERSION = 'data 2';

/** Generates and prepares the data unless a previous run left it complete. */
export async function benchData(): Promise<BenchData> {
  const storage = path.join(PROGRESSIVE_CACHE, 'data');
  const dataDir = path.join(PROGRESSIVE_CACHE, 'server');
  const done = path.join(PROGRESSIVE_CACHE, 'prepared');
  const marker = await readFile(done, 'utf8').catch(() => undefined);
  const [, prepared, version] = marker?.split('\n') ?? [];
  if (prepared === PREPARED && version === DATA_VERSION) return { storage, dataDir };
  // Data from a run that prepared fewer representations: prepare the rest (resumable).
  if (marker !== undefined && version === DATA_VERSION) return prepare(storage, dataDir, done);
  await rm(PROGRESSIVE_CACHE, { recursive: true, force: true });
  await mkdir(path.join(storage, 'warmup'), { recursive: true });
  console.log('generating the 3036² image and the 174-slice series (pydicom)…');
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'bench/progressive-data.py'), CT_DIR, storage], {
    stdio: 'inherit',
  });
  for (const f of await readdir(CT_DIR))
    await copyFile(path.join(CT_DIR, f), path.join(storage, 'warmup', f));
  return prepare(storage, dataDir, done);
}

async function prepare(storage: string, dataDir: string, done: string): Promise<BenchData> {
  console.log(`medstream index --prepare ${PREPARED} (once; cached)…`);
  execFileSync(
    process.execPath,
    ['--import', 'tsx', MAIN, 'index', storage, '--prepare', PREPARED, '--data-dir', dataDir],
    { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT },
  );
  await writeFile(done, `${new Date().toISOString()}\n${PREPARED}\n${DATA_VERSION}\n`);
  return { storage, dataDir };
}

export interface BenchPage {
  url: string;
  close(): Promise<void>;
}

/** Bundles the bench page and serves it (and its workers and WASM) on 127.0.0.1. */
export async function serveBenchPage(): Promise<BenchPage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-progressive-page-'));
  const csFile = (pkg: string, file: string): string =>
    path.join(ROOT, 'node_modules', '@cornerstonejs', pkg, 'dist', 'esm', file);
  const workers = Object.fromEntries(
    Object.entries(CORNERSTONE_WORKERS).map(([file, name]) => [
      name,
      file === 'computeWorker.js' ? csFile('tools', `workers/${file}`) : csFile('dicom-image-loader', file),
    ]),
  );
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { page: 'bench/progressive-page/page.ts', ...workers },
    outdir: dir,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    logLevel: 'warning',
    plugins: [cornerstoneAssets(dir)],
  });
  await writeFile(
    path.join(dir, 'index.html'),
    '<!doctype html><html><body><script type="module" src="page.js"></script></body></html>\n',
  );
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.wasm': 'application/wasm',
  };
  const server = http.createServer((req, res) => {
    const name = path.normalize(decodeURIComponent((req.url ?? '/').split('?')[0])).replace(/^\/+/, '');
    const file = path.join(dir, name === '' ? 'index.html' : name);
    if (!file.startsWith(dir)) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (body) =>
        res
          .writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' })
          .end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
