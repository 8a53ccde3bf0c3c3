// Bundles the browser code in src/viewer/ (esbuild) into dist/viewer/, the static assets the
// server answers under /assets/: browser.js, viewer.js (with OpenSeadragon), medstream.css,
// OpenSeadragon's button images, and the third-party licence texts. `npm run build` runs it;
// so does the Vitest global setup before the viewer tests.
//   tsx scripts/build-viewer.ts [--out DIR]

import * as esbuild from 'esbuild';
import { cp, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { CORNERSTONE_WORKERS, cornerstoneAssets } from './cornerstone-assets.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VIEWER_OUT_DIR = path.join(ROOT, 'dist', 'viewer');

export interface BuiltAsset {
  file: string;
  bytes: number;
  gzipBytes: number;
}

/** Builds into a fresh folder beside `outDir`, then swaps it in: a running server sees old or new. */
export async function buildViewer(outDir = VIEWER_OUT_DIR): Promise<BuiltAsset[]> {
  const tmp = `${outDir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: {
      browser: 'src/viewer/browser.ts',
      viewer: 'src/viewer/viewer.ts',
      medstream: 'src/viewer/medstream.css',
    },
    outdir: tmp,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    // Licence headers go to <name>.LEGAL.txt, linked from a comment in the bundle; OpenSeadragon's
    // full licence is copied to openseadragon/LICENSE.txt.
    legalComments: 'linked',
    logLevel: 'warning',
  });
  await buildRadiologyViewer(tmp);
  const osd = path.join(ROOT, 'node_modules', 'openseadragon');
  await cp(path.join(osd, 'build', 'openseadragon', 'images'), path.join(tmp, 'openseadragon', 'images'), {
    recursive: true,
  });
  await cp(path.join(osd, 'LICENSE.txt'), path.join(tmp, 'openseadragon', 'LICENSE.txt'));
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  const assets: BuiltAsset[] = [];
  for (const name of (await readdir(outDir)).sort()) {
    const file = path.join(outDir, name);
    if (!(await stat(file)).isFile()) continue;
    const body = await readFile(file);
    assets.push({ file: name, bytes: body.length, gzipBytes: gzipSync(body).length });
  }
  return assets;
}

/** The radiology viewer (Cornerstone3D): its page script, CSS, decode workers and codec WASM. */
async function buildRadiologyViewer(outDir: string): Promise<void> {
  const csFile = (pkg: string, file: string): string =>
    path.join(ROOT, 'node_modules', '@cornerstonejs', pkg, 'dist', 'esm', file);
  const workers = Object.fromEntries(
    Object.entries(CORNERSTONE_WORKERS).map(([file, name]) => [
      name,
      csFile(
        file === 'computeWorker.js' ? 'tools' : 'dicom-image-loader',
        file === 'computeWorker.js' ? `workers/${file}` : file,
      ),
    ]),
  );
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: {
      radiology: 'src/viewer/radiology/main.ts',
      'radiology-style': 'src/viewer/radiology/radiology.css',
      ...workers,
    },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    legalComments: 'linked',
    logLevel: 'warning',
    plugins: [cornerstoneAssets(outDir)],
  });
}

/** Newest modification time (ms) of the viewer's inputs: its sources and the lockfile. */
export async function viewerSourcesMtime(): Promise<number> {
  const files = [
    ...(await readdir(path.join(ROOT, 'src', 'viewer'))).map((f) => path.join(ROOT, 'src', 'viewer', f)),
    ...(await readdir(path.join(ROOT, 'src', 'viewer', 'radiology'))).map((f) =>
      path.join(ROOT, 'src', 'viewer', 'radiology', f),
    ),
    path.join(ROOT, 'package-lock.json'),
    fileURLToPath(import.meta.url),
  ];
  let newest = 0;
  for (const f of files) newest = Math.max(newest, (await stat(f).catch(() => ({ mtimeMs: 0 }))).mtimeMs);
  return newest;
}

/** Builds unless every asset in `outDir` is newer than the newest input. */
export async function buildViewerIfStale(outDir = VIEWER_OUT_DIR): Promise<boolean> {
  const built = await stat(path.join(outDir, 'viewer.js')).catch(() => undefined);
  if (built && built.mtimeMs > (await viewerSourcesMtime())) return false;
  await buildViewer(outDir);
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]) : VIEWER_OUT_DIR;
  const assets = await buildViewer(out);
  for (const a of assets)
    console.log(
      `${a.file.padEnd(28)} ${(a.bytes / 1024).toFixed(1).padStart(7)} KiB  (gzip ${(a.gzipBytes / 1024).toFixed(1)} KiB)`,
    );
  console.log(`viewer assets in ${path.relative(process.cwd(), out) || '.'}`);
}
